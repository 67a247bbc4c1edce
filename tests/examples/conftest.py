"""Running the examples as production does: their own config.yaml decides the sandbox, limits and grants."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from proxy import load_config
from proxy._hook import runner_options
from sdk.testing import FakeHost, RunResult, run_hook

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
#: The ``hookjail`` console script of the interpreter running the tests (not a shim found on PATH).
HOOKJAIL = os.path.join(os.path.dirname(sys.executable), "hookjail")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def run_example(
    name: str,
    openid: Mapping[str, Any],
    *,
    host: FakeHost | None = None,
    environ: Mapping[str, str] | None = None,
) -> RunResult:
    """Runs ``examples/<name>`` once through the sandbox with the options its config.yaml gives in production;
    the host (default: an empty FakeHost) is granted exactly the config's ``permissions``."""
    config = load_config(EXAMPLES / name / "config.yaml", environ=environ or {})
    spec, limits, sandbox = runner_options(config)
    if host is None:
        host = FakeHost(grants=config.hook_settings.permissions)
    return await run_hook(f"{spec.path}:{spec.function}", openid, limits=limits, sandbox=sandbox, host=host)


def check(name: str, openid: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Any:
    """``hookjail check --config examples/<name>/config.yaml --json``, parsed."""
    result = check_process(name, openid, env)
    return json.loads(result.stdout)


def check_process(
    name: str, openid: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs ``hookjail check --config examples/<name>/config.yaml --json`` with only ``env`` as environment."""
    command = [HOOKJAIL, "check", "--config", str(EXAMPLES / name / "config.yaml"), "--json"]
    if openid is not None:
        command += ["--openid", json.dumps(openid)]
    return subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=60, env={**BASE_ENV, **(env or {})}
    )


@dataclass
class Directory:
    """A fake HR directory on 127.0.0.1: people by email, and the bearer tokens it was sent."""

    url: str
    token: str
    people: dict[str, dict[str, Any]]
    tokens_seen: list[str] = field(default_factory=list)


@pytest.fixture
def hr_directory() -> Iterator[Directory]:
    directory = Directory(
        url="",
        token="hr-token-for-tests",
        people={
            "ann@example.com": {"department": "Engineering", "title": "SRE", "active": True},
            "rita@example.com": {"department": "Research", "title": "Scientist", "active": True},
            "old@example.com": {"department": "Engineering", "title": "SRE", "active": False},
            "check-user@example.com": {"department": "Engineering", "title": "Tester", "active": True},
        },
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            directory.tokens_seen.append(self.headers.get("Authorization", ""))
            query = parse_qs(urlparse(self.path).query)
            person = directory.people.get(query.get("email", [""])[0])
            if self.headers.get("Authorization") != f"Bearer {directory.token}":
                status, body = 401, {"error": "bad token"}
            elif person is None:
                status, body = 404, {"error": "unknown person"}
            else:
                status, body = 200, person
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    directory.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield directory
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
