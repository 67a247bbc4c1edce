"""Shared pieces of the LiteLLM tests: the LiteLLM virtual environment, config directories, a driver.

These tests run in the main test venv and drive a real LiteLLM (``litellm[proxy]``, pinned in ``.ci/run``)
installed in a venv of its own — ``$HOOKJAIL_LITELLM_VENV`` or ``.venv-litellm`` at the repository root —
through subprocesses: ``litellm --config`` itself, and ``driver.py`` (LiteLLM's own config loader and SSO
callback code, in LiteLLM's interpreter). Without that venv they fail, saying how to make it.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
LITELLM_VERSION = "1.108.7"
#: Starts each answer line of driver.py.
MARK = "@@driver@@ "


def litellm_venv() -> Path:
    """The LiteLLM venv; the test fails when it is missing or holds another LiteLLM."""
    venv = Path(os.environ.get("HOOKJAIL_LITELLM_VENV") or REPO / ".venv-litellm")
    if not venv.is_absolute():
        venv = REPO / venv
    python = venv / "bin" / "python"
    if not python.is_file():
        pytest.fail(
            f"no LiteLLM venv at {venv}: `bash .ci/run` makes it (or: /usr/bin/python3 -m venv {venv} && "
            f"{python} -m pip install 'litellm[proxy]=={LITELLM_VERSION}' && {python} -m pip install -e .)"
        )
    return venv


def litellm_env(**extra: str) -> dict[str, str]:
    """The environment LiteLLM runs with here: a strong master key, no network fetches, nothing of ours."""
    env = {
        "PATH": f"{litellm_venv() / 'bin'}:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "LITELLM_MASTER_KEY": "sk-" + secrets.token_hex(24),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the model price list (no network here)
    }
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def config_dir() -> Iterator[Path]:
    """A directory the worker's own uid can read (not pytest's private tmp), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="hookjail-litellm-test-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def write_config(directory: Path, hook_settings: dict[str, Any], *, name: str = "config.yaml", **top: Any) -> Path:
    """A LiteLLM config.yaml using the adapter, with this ``hook_settings``."""
    config = {
        "model_list": [{"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o", "api_key": "sk-fake"}}],
        "general_settings": {"custom_sso": "proxy.litellm.custom_sso_handler"},
        "hook_settings": hook_settings,
        **top,
    }
    path = directory / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o644)
    return path


class Driver:
    """``driver.py`` running in LiteLLM's interpreter with a config: one JSON request and answer per line."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.stderr_path = config.parent / f"driver-{secrets.token_hex(4)}.err"
        self._stderr = self.stderr_path.open("wb")
        self.process = subprocess.Popen(
            [str(litellm_venv() / "bin" / "python"), str(HERE / "driver.py"), str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            cwd=config.parent,
            env=env,
        )
        self._lock = threading.Lock()
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        try:
            self.ready = self._read(timeout=120)
        except BaseException:
            self.close()
            raise

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(MARK):
                self._lines.put(line[len(MARK) :])
        self._lines.put("")  # end of output

    def _read(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            line = ""
        if not line:
            raise AssertionError(f"the driver did not answer; its stderr:\n{self.stderr()[-4000:]}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def request(self, timeout: float = 60, **request: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        with self._lock:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            return self._read(timeout)

    def login(self, openid: dict[str, Any]) -> dict[str, Any]:
        return self.request(op="login", openid=openid)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def close(self) -> dict[str, Any] | None:
        answer = None
        try:
            if self.process.poll() is None:
                answer = self.request(op="stop", timeout=30)
            self.process.wait(timeout=30)
        except (AssertionError, OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
        self._stderr.close()
        return answer


def run_log(path: Path) -> list[dict[str, Any]]:
    """The records of a ``hook_settings.run_log`` file."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
