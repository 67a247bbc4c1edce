"""Run the real ``hookjail`` command against the test IdP, and sign in through it with httpx.

Shared by the httpx-level tests here and the browser tests in tests/e2e.
"""

from __future__ import annotations

import html
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
import yaml

from tests.idp.provider import IdP, PortPool

REPO = Path(__file__).resolve().parents[2]
MASTER_KEY = "sk-test-master-key"

#: A hook that maps the email domain to a role and models, like examples/custom_sso.py.
DOMAIN_HOOK = """
from sdk import LitellmUserRoles, OpenID, SSOUserDefinedValues

ROLES = {
    "admin.example.com": (LitellmUserRoles.PROXY_ADMIN, ["gpt-4o", "gpt-4o-mini"], 50.0),
    "example.com": (LitellmUserRoles.INTERNAL_USER, ["gpt-4o-mini"], 5.0),
}


async def custom_sso_handler(userIDPInfo: OpenID) -> SSOUserDefinedValues:
    print("hook saw", userIDPInfo.email)
    domain = (userIDPInfo.email or "").rpartition("@")[2]
    role, models, budget = ROLES.get(domain, (LitellmUserRoles.INTERNAL_USER_VIEW_ONLY, [], 0.0))
    return SSOUserDefinedValues(
        models=models,
        user_id=userIDPInfo.id,
        user_email=userIDPInfo.email,
        user_role=role.value,
        max_budget=budget,
        budget_duration="30d",
    )
"""

MODEL_LIST = [
    {"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o", "api_key": "os.environ/UNSET_KEY"}},
    {"model_name": "gpt-4o-mini", "litellm_params": {"model": "openai/gpt-4o-mini"}},
    {"model_name": "claude-sonnet", "litellm_params": {"model": "anthropic/claude-sonnet"}},
]


@dataclass
class Proxy:
    """A running ``hookjail`` process."""

    base_url: str
    port: int
    config_path: Path
    db_path: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def hook_path(self) -> Path:
        return self.config_path.parent / "custom_sso.py"

    def write_hook(self, source: str) -> None:
        """Replace the hook; the proxy re-imports it before the next login."""
        write_hook(self.hook_path, source)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        with sqlite3.connect(self.db_path) as connection:
            connection.row_factory = sqlite3.Row
            return [dict(row) for row in connection.execute(sql, params)]

    def user(self, user_id: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM users WHERE id = ?", user_id)
        return rows[0] if rows else None

    def run(self, run_id: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM hook_runs WHERE run_id = ?", run_id)
        return rows[0] if rows else None

    def sessions(self, user_id: str) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM ui_sessions WHERE user_id = ?", user_id)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def write_hook(path: Path, source: str) -> None:
    """Write a hook file so that its mtime visibly changes even within one clock tick."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(textwrap.dedent(source))
    if path.stat().st_mtime_ns <= before:
        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


def write_config(
    directory: Path,
    *,
    hook_source: str | None = DOMAIN_HOOK,
    hook_settings: dict[str, Any] | None = None,
    general_settings: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """A LiteLLM-style config.yaml (plus the hook beside it) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    general: dict[str, Any] = {"master_key": "os.environ/LITELLM_MASTER_KEY"}
    if hook_source is not None:
        write_hook(directory / "custom_sso.py", hook_source)
        general["custom_sso"] = "custom_sso.custom_sso_handler"
    general |= general_settings or {}
    config: dict[str, Any] = {
        "model_list": MODEL_LIST,
        "litellm_settings": {"drop_params": True, "set_verbose": False},
        "general_settings": general,
        "hook_settings": {"timeout": 2, **(hook_settings or {})},
        **(extra or {}),
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def proxy_env(idp: IdP, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GENERIC_", "GOOGLE_", "MICROSOFT_", "PROXY_", "ALLOWED_EMAIL", "LITELLM_"))
    }
    env |= idp.generic_env()
    env |= {"LITELLM_MASTER_KEY": MASTER_KEY, "PYTHONPATH": str(REPO)}
    env |= extra
    return env


def start_proxy(
    config_path: Path,
    port: int,
    env: dict[str, str],
    *,
    work_dir: Path | None = None,
    extra_args: tuple[str, ...] = (),
    timeout: float = 30.0,
) -> Proxy:
    """Start ``python -m proxy --config config_path`` and wait until /health answers 200.

    With ``work_dir`` the log and the SQLite database go there rather than beside the config.
    """
    work_dir = work_dir or config_path.parent
    log_path = work_dir / "proxy.log"
    db_path = work_dir / "hookjail.db"
    if work_dir != config_path.parent:
        extra_args = ("--database-url", f"sqlite:///{db_path}", *extra_args)
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "proxy",
            "--config",
            str(config_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "info",
            *extra_args,
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    proxy = Proxy(
        base_url=f"http://127.0.0.1:{port}",
        port=port,
        config_path=config_path,
        db_path=db_path,
        process=process,
        log_path=log_path,
        env=env,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the proxy exited with {process.returncode}:\n{proxy.log()}")
        try:
            if httpx.get(f"{proxy.base_url}/health", timeout=1.0).status_code == 200:
                return proxy
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    proxy.stop()
    raise RuntimeError(f"the proxy did not become healthy:\n{proxy.log()}")


class ProxyFactory:
    """Starts proxies for one test and stops them all afterwards."""

    def __init__(self, idp: IdP, ports: PortPool, base: Path) -> None:
        self.idp = idp
        self.ports = ports
        self.base = base
        self.running: list[Proxy] = []

    def __call__(
        self,
        name: str = "proxy",
        *,
        env: dict[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
        **config: Any,
    ) -> Proxy:
        """Write a config (see :func:`write_config`) into a fresh directory and serve it."""
        config_path = write_config(self.base / name, **config)
        return self.serve(config_path, env=env, extra_args=extra_args)

    def serve(
        self,
        config_path: Path,
        *,
        env: dict[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
        work_dir: Path | None = None,
    ) -> Proxy:
        """Serve an existing config file."""
        port = self.ports.take()
        try:
            proxy = start_proxy(
                config_path,
                port,
                proxy_env(self.idp, **(env or {})),
                work_dir=work_dir,
                extra_args=extra_args,
            )
        except BaseException:
            self.ports.give_back(port)
            raise
        self.running.append(proxy)
        return proxy

    def close(self) -> None:
        for proxy in self.running:
            proxy.stop()
            self.ports.give_back(proxy.port)
        self.running.clear()


@pytest.fixture
def start(idp: IdP, proxy_ports: PortPool, tmp_path: Path) -> Iterator[ProxyFactory]:
    factory = ProxyFactory(idp, proxy_ports, tmp_path)
    try:
        yield factory
    finally:
        factory.close()


# --- signing in with httpx ---------------------------------------------------------------------------------

_FORM = re.compile(r"<form[^>]*action=\"([^\"]+)\"[^>]*>(.*?)</form>", re.S)
_INPUT = re.compile(r"<input[^>]*>", re.S)
_ATTR = re.compile(r"(\w+)=\"([^\"]*)\"")


def login(client: httpx.Client, proxy: Proxy, user: str, *, abort: bool = False) -> httpx.Response:
    """Sign in as ``user`` through the IdP's login and consent pages; returns the proxy's final response."""
    response = client.get(f"{proxy.base_url}/sso/key/generate", follow_redirects=True)
    for _ in range(4):
        if urlsplit(str(response.url)).port == proxy.port:
            return response
        if abort:
            abort_link = re.search(r"href=\"([^\"]*/abort)\"", response.text)
            assert abort_link is not None, response.text
            return client.get(urljoin(str(response.url), html.unescape(abort_link.group(1))), follow_redirects=True)
        action, data = idp_form(response, user)
        response = client.post(action, data=data, follow_redirects=True)
    raise AssertionError(f"the login did not come back to the proxy: {response.url}")


def idp_form(response: httpx.Response, user: str) -> tuple[str, dict[str, str]]:
    """The form on an IdP page (login or consent): the URL it posts to and its fields, with ``user`` and a
    password filled in on the login page."""
    match = _FORM.search(response.text)
    assert match is not None, f"no form on the IdP page {response.url}: {response.text[:500]}"
    action, body = html.unescape(match.group(1)), match.group(2)
    data: dict[str, str] = {}
    for tag in _INPUT.findall(body):
        attrs = dict(_ATTR.findall(tag))
        if "name" in attrs:
            data[attrs["name"]] = attrs.get("value", "")
    if "login" in data:
        data |= {"login": user, "password": "any-password"}
    return urljoin(str(response.url), action), data


def new_client() -> httpx.Client:
    return httpx.Client(timeout=20.0)
