"""Run the real ``hookjail`` command in a subprocess, on configs written into a temporary directory."""

from __future__ import annotations

import json
import os
import pty
import select
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]

MODEL_LIST = [
    {"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o"}},
    {"model_name": "gpt-4o-mini", "litellm_params": {"model": "openai/gpt-4o-mini"}},
]

#: Returns the email it was given as the user id: shows which OpenID the hook saw.
ECHO_HOOK = """
from sdk import OpenID, SSOUserDefinedValues

def custom_sso_handler(userIDPInfo: OpenID) -> SSOUserDefinedValues:
    print("hook saw", userIDPInfo.email)
    return SSOUserDefinedValues(
        models=["gpt-4o-mini"], user_id=userIDPInfo.id, user_email=userIDPInfo.email,
        user_role="internal_user", max_budget=5.0, budget_duration="30d",
    )
"""

RAISING_HOOK = """
def custom_sso_handler(userIDPInfo):
    raise LookupError("not in the HR directory")
"""

SLEEPING_HOOK = """
import time

def custom_sso_handler(userIDPInfo):
    time.sleep(30)
"""


def write_config(directory: Path, hook_source: str, *, hook_settings: dict[str, Any] | None = None) -> Path:
    """config.yaml (LiteLLM-style, with ``hook_settings``) and the hook beside it; returns the config path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "custom_sso.py").write_text(textwrap.dedent(hook_source))
    config = {
        "model_list": MODEL_LIST,
        "general_settings": {"custom_sso": "custom_sso.custom_sso_handler"},
        "hook_settings": {"timeout": 5, **(hook_settings or {})},
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def hookjail(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``hookjail ARGS...`` (as ``python -m proxy``) from the repository, capturing its output."""
    return subprocess.run(  # noqa: PLW1510 (the exit code is the subject of the tests)
        [sys.executable, "-m", "proxy", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def hookjail_on_a_terminal(*args: str | Path) -> tuple[int, bytes, bytes]:
    """Run ``hookjail ARGS...`` with its stderr on a pseudo-terminal and its stdout piped: the exit code, what it
    printed on stdout, and what it drew on the terminal (read until it closed its end)."""
    controller, terminal = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "proxy", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=terminal,
        cwd=REPO,
    ) as process:
        os.close(terminal)
        drawn = b""
        while select.select([controller], [], [], 60)[0]:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the process closed its end
                break
            if not chunk:
                break
            drawn += chunk
        assert process.stdout is not None
        out = process.stdout.read()
        code = process.wait(timeout=60)
    os.close(controller)
    return code, out, drawn


def hookjail_json(*args: str | Path) -> tuple[int, dict[str, Any]]:
    """Run ``hookjail ARGS... --json``: the exit code and the one JSON object printed."""
    result = hookjail(*args, "--json")
    assert result.stdout, result.stderr
    report = json.loads(result.stdout)
    assert isinstance(report, dict)
    return result.returncode, report


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
