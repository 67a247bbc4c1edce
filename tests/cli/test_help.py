"""``--help`` documents every flag of every command, and its default."""

from __future__ import annotations

import argparse
import importlib.metadata
import tomllib
from pathlib import Path

import pytest

from proxy import cli
from tests.cli.helpers import REPO, hookjail, write_config

PARSERS = {
    "serve": cli._serve_parser,
    "check": cli._check_parser,
    "bench": cli._bench_parser,
    "demo": cli._demo_parser,
    "replay": cli._replay_parser,
}


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_every_flag_has_help_with_its_default(command: str) -> None:
    parser = PARSERS[command]()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._VersionAction):
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


def pyproject_version() -> str:
    with (REPO / "pyproject.toml").open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])


def test_version_flag() -> None:
    for args in (["--version"], ["serve", "--version"]):
        result = hookjail(*args, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"hookjail {importlib.metadata.version('hookjail')}\n"
    assert importlib.metadata.version("hookjail") == pyproject_version()


def test_version_falls_back_to_the_checkouts_pyproject(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert cli.version() == pyproject_version()


def test_usage_lists_the_subcommands() -> None:
    expected = [
        "usage: hookjail [serve] --config PATH [options]",
        "       hookjail check --config PATH [options]",
        "       hookjail bench --config PATH [options]",
        "       hookjail demo [options]",
        "       hookjail replay --config PATH --candidate PATH.py:FUNCTION [options]",
        "       hookjail --version",
    ]
    result = hookjail(timeout=60)  # no arguments: the usage and what is missing, not only "required: --config"
    assert result.returncode == 2
    assert result.stderr.splitlines()[: len(expected)] == expected
    assert "the following arguments are required: --config" in result.stderr
    result = hookjail("--help", timeout=60)
    assert result.returncode == 0
    assert result.stdout.splitlines()[: len(expected)] == expected


def test_serve_subcommand_is_the_same_as_no_subcommand(tmp_path: Path) -> None:
    config = write_config(tmp_path, "def custom_sso_handler(user):\n    return {}\n", hook_settings={"timeout": -1})
    for args in (["serve", "--config", config], ["--config", config]):
        result = hookjail(*args, "--port", "1", timeout=60)  # a config error stops it before it listens
        assert result.returncode == 2
        assert result.stderr.startswith("hookjail: configuration error: config.yaml: hook_settings.timeout:")
    assert hookjail("serve", "--help", timeout=60).stdout == hookjail("--help", timeout=60).stdout
