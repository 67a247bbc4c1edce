"""``--help`` documents every flag of every command, and its default."""

from __future__ import annotations

import argparse

import pytest

from proxy import cli
from tests.cli.helpers import hookjail

PARSERS = {
    "serve": cli._serve_parser,
    "check": cli._check_parser,
    "bench": cli._bench_parser,
    "demo": cli._demo_parser,
}


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_every_flag_has_help_with_its_default(command: str) -> None:
    parser = PARSERS[command]()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{command} {action.option_strings} has no help"
        if not action.required:
            assert "default" in action.help, f"{command} {action.option_strings}: the help does not say the default"


@pytest.mark.parametrize("command", ["check", "bench", "demo"])
def test_subcommand_help_prints_and_exits_0(command: str) -> None:
    result = hookjail(command, "--help", timeout=60)
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: hookjail {command}")
    for action in PARSERS[command]()._actions:
        for flag in action.option_strings:
            assert flag in result.stdout


def test_serve_help_names_the_subcommands() -> None:
    result = hookjail("--help", timeout=60)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # argparse wraps the description
    for command in ("check", "bench", "demo"):
        assert f"hookjail {command} --help" in text
