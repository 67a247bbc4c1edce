"""A real OpenID Connect provider (npm ``oidc-provider``, see server.mjs) run on loopback for the tests.

Fixtures: ``idp`` (the running provider, one per test module) and ``proxy_ports`` (the loopback ports whose
``/sso/callback`` the provider's client accepts; a proxy under test takes one from the pool and gives it back).
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).parent
CLIENT_ID = "hookjailtests"
CLIENT_SECRET = "s3cretForTests42"
POOL_SIZE = 4


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PortPool:
    """Loopback ports registered as redirect URIs with the provider."""

    free: list[int]
    all: tuple[int, ...] = field(default=())

    def take(self) -> int:
        if not self.free:
            raise RuntimeError("no free proxy port left in the pool; stop a proxy first")
        return self.free.pop(0)

    def give_back(self, port: int) -> None:
        if port not in self.free:
            self.free.append(port)


@dataclass(frozen=True)
class IdP:
    """A running provider and its one confidential client."""

    issuer: str
    client_id: str
    client_secret: str

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def generic_env(self, *, discovery: bool = True) -> dict[str, str]:
        """LiteLLM's GENERIC_* variables for this provider."""
        env = {
            "GENERIC_CLIENT_ID": self.client_id,
            "GENERIC_CLIENT_SECRET": self.client_secret,
            "GENERIC_CLIENT_USE_PKCE": "true",
        }
        if discovery:
            env["GENERIC_DISCOVERY_URL"] = self.discovery_url
        else:
            env |= {
                "GENERIC_AUTHORIZATION_ENDPOINT": f"{self.issuer}/auth",
                "GENERIC_TOKEN_ENDPOINT": f"{self.issuer}/token",
                "GENERIC_USERINFO_ENDPOINT": f"{self.issuer}/me",
            }
        return env


@pytest.fixture(scope="session")
def proxy_ports() -> PortPool:
    ports = [free_port() for _ in range(POOL_SIZE)]
    return PortPool(free=list(ports), all=tuple(ports))


class IdPNotInstalled(RuntimeError):
    """node or the provider's npm packages are missing."""


def start_idp(redirect_uris: Iterable[str]) -> tuple[IdP, subprocess.Popen[str]]:
    """Start server.mjs with one client whose redirect URIs are ``redirect_uris``; stop it with :func:`stop_idp`."""
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / "oidc-provider").is_dir():
        raise IdPNotInstalled("the test IdP needs node and `npm ci --prefix tests/idp` (see .ci/run)")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "IDP_PORT": str(free_port()),
        "IDP_CLIENT_ID": CLIENT_ID,
        "IDP_CLIENT_SECRET": CLIENT_SECRET,
        "IDP_REDIRECT_URIS": " ".join(redirect_uris),
    }
    process = subprocess.Popen(
        [node, str(HERE / "server.mjs")],
        cwd=HERE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        issuer = _wait_ready(process, timeout=20.0)
    except BaseException:
        stop_idp(process)
        raise
    return IdP(issuer=issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET), process


def stop_idp(process: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL after 5 s; reaped, its pipe closed."""
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    assert process.stdout is not None
    process.stdout.close()


@contextmanager
def running_idp(redirect_uris: Iterable[str]) -> Iterator[IdP]:
    """The provider for a fixture (see :func:`start_idp`): the test fails if node is missing."""
    try:
        provider, process = start_idp(redirect_uris)
    except IdPNotInstalled as missing:
        pytest.fail(str(missing))
    try:
        yield provider
    finally:
        stop_idp(process)


@pytest.fixture(scope="module")
def idp(proxy_ports: PortPool) -> Iterator[IdP]:
    # Module scope (it starts in about 0.4 s): no provider process outlives the modules that use it, so tests
    # elsewhere that count this process's children see none of it.
    with running_idp(f"http://127.0.0.1:{p}/sso/callback" for p in proxy_ports.all) as provider:
        yield provider


def _wait_ready(process: subprocess.Popen[str], *, timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.1)
        if ready:
            line = process.stdout.readline()
            if line.startswith("ready "):
                return line.split(" ", 1)[1].strip()
            if not line and process.poll() is not None:
                break
    raise RuntimeError(f"the test IdP did not start (exit code {process.poll()})")
