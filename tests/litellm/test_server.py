"""``litellm --config`` itself with the adapter: it starts and serves, stops the sandbox with it, and refuses
to start with hookjail's message when ``hook_settings`` is broken or the handler does not import.

The three LiteLLM servers start at once (each takes seconds to import LiteLLM) in one module fixture.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.idp.provider import free_port
from tests.litellm.conftest import litellm_env, litellm_venv, write_config

GOOD_HANDLER = """
from litellm.proxy._types import SSOUserDefinedValues

async def custom_sso_handler(userIDPInfo):
    return SSOUserDefinedValues(models=[], user_id=userIDPInfo.id, user_email=userIDPInfo.email,
                                user_role="internal_user", max_budget=None, budget_duration=None)
"""
BROKEN_HANDLER = """
import does_not_exist_anywhere

async def custom_sso_handler(userIDPInfo):
    return {}
"""


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    output: Path
    tmp: Path

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_exit(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _start(directory: Path) -> Server:
    port = free_port()
    tmp = directory / "tmp"  # the runner's temporary directory lands here (TMPDIR): checked empty at the end
    tmp.mkdir(mode=0o755)
    tmp.chmod(0o755)
    output = directory / "litellm.log"
    with output.open("wb") as log:
        process = subprocess.Popen(
            [str(litellm_venv() / "bin" / "litellm"), "--config", str(directory / "config.yaml"), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=directory,
            env=litellm_env(TMPDIR=str(tmp)),
        )
    return Server(process, port, output, tmp)


@pytest.fixture(scope="module")
def servers(config_dir: Path) -> Iterator[dict[str, Server]]:
    cases = {
        "good": ({"handler": "custom_sso.custom_sso_handler", "timeout": 5}, GOOD_HANDLER),
        "bad_settings": ({"handler": "custom_sso.custom_sso_handler", "timeout": -1, "handlr": "x"}, GOOD_HANDLER),
        "bad_handler": ({"handler": "custom_sso.custom_sso_handler"}, BROKEN_HANDLER),
    }
    started: dict[str, Server] = {}
    try:
        for name, (settings, source) in cases.items():
            directory = config_dir / name
            directory.mkdir(mode=0o755)
            directory.chmod(0o755)
            (directory / "custom_sso.py").write_text(source)
            (directory / "custom_sso.py").chmod(0o644)
            write_config(directory, settings)
            started[name] = _start(directory)
        yield started
    finally:
        for server in started.values():
            server.stop()


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry))
    return found


def test_litellm_starts_with_the_adapter_serves_and_stops_the_sandbox_with_it(servers: dict[str, Server]) -> None:
    server = servers["good"]
    deadline = time.monotonic() + 90
    status = None
    while time.monotonic() < deadline and server.process.poll() is None:
        try:
            status = httpx.get(f"http://127.0.0.1:{server.port}/health/liveliness", timeout=2).status_code
        except httpx.TransportError:
            status = None
        if status == 200:
            break
        time.sleep(0.2)
    assert status == 200, server.text()[-4000:]
    log = server.text()
    assert "hookjail: custom_sso handler custom_sso.custom_sso_handler runs sandboxed" in log
    assert "layers OFF" not in log
    # the runner was started on LiteLLM's event loop: its worker template is a child of LiteLLM
    deadline = time.monotonic() + 30
    while not _children(server.process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _children(server.process.pid), "no worker template under LiteLLM"
    assert any(server.tmp.iterdir())  # the runner's temporary directory

    server.process.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal it caught: death by SIGTERM, after the lifespan
    assert server.wait_exit(60) in (0, -signal.SIGTERM)
    log = server.text()
    assert "Application shutdown complete" in log, log[-4000:]
    assert _children(server.process.pid) == []
    assert list(server.tmp.iterdir()) == []  # the runner was closed, not just killed with its parent


def test_broken_hook_settings_stop_litellm_at_start_with_hookjails_message(servers: dict[str, Server]) -> None:
    server = servers["bad_settings"]
    assert server.wait_exit(120) != 0
    log = server.text()
    assert "hookjail: config.yaml: 2 problems:" in log, log[-4000:]
    assert "hook_settings.handlr: unknown key; did you mean 'handler'?" in log
    assert "hook_settings.timeout: Input should be greater than 0 (got -1)" in log
    assert "Application startup failed" in log
    assert "Uvicorn running" not in log


def test_a_handler_that_does_not_import_stops_litellm_at_start(servers: dict[str, Server]) -> None:
    server = servers["bad_handler"]
    assert server.wait_exit(120) != 0
    log = server.text()
    assert "hookjail: " in log, log[-4000:]
    assert "does_not_exist_anywhere" in log
    assert "Application startup failed" in log
    assert "Uvicorn running" not in log
