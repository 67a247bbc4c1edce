"""How ``PROXY_ADMIN_ID``, ``ALLOWED_EMAIL_DOMAINS``, ``ui_access_mode`` and ``hook_settings.policy`` combine
with a hook's values, and how the worker's text is bounded and escaped on the way to the log and the database —
in-process, with a stand-in for the sandboxed hook (tests/proxy/test_login.py does the same through a real
identity provider and a real hook)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from proxy import load_config
from proxy._db import Database, utcnow
from proxy._hook import HookService, HookSource
from proxy._login import LoginFailed, LoginGranted, LoginService
from proxy._sessions import SessionCodec
from proxy._sso import SSOSettings
from runner import CallResult, HookError, HookRaised, HostHandler
from tests.proxy.inprocess import sqlite_database

pytestmark = pytest.mark.anyio

ADMIN = "oscar"


class StandInHook:
    """Answers every call with ``value`` (or raises ``error``), as the sandboxed hook would."""

    def __init__(self, value: Any = None, *, error: HookError | None = None, stdout: str = "") -> None:
        self.value = value
        self.error = error
        self.stdout = stdout

    async def reload_if_changed(self) -> None:
        """Its source never changes."""

    def describe(self) -> HookSource:
        return HookSource(file="stand_in.py", sha256="5" * 64, loaded_at=utcnow())

    async def call(self, openid: dict[str, Any], *, run_id: str, host: HostHandler | None = None) -> CallResult:
        if self.error is not None:
            raise self.error
        return CallResult(value=self.value, duration=0.001, run_id=run_id, stdout=self.stdout)


def values(user_id: str, role: str = "internal_user_viewer", **changes: Any) -> dict[str, Any]:
    return {
        "models": [],
        "user_id": user_id,
        "user_email": f"{user_id}@example.com",
        "user_role": role,
        "max_budget": 1.0,
        "budget_duration": "1d",
    } | changes


def openid(user: str) -> dict[str, Any]:
    return {"id": user, "email": f"{user}@example.com", "provider": "generic"}


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    async with sqlite_database(tmp_path) as db:
        yield db


def service(
    database: Database,
    tmp_path: Path,
    hook: StandInHook | None,
    *,
    policy: dict[str, Any] | None = None,
    admin_only: bool = False,
    domains: frozenset[str] = frozenset(),
    **hook_settings: Any,
) -> LoginService:
    (tmp_path / "custom_sso.py").write_text("def custom_sso_handler(user):\n    return {}\n")
    general: dict[str, Any] = {"custom_sso": "custom_sso.custom_sso_handler"} if hook is not None else {}
    if admin_only:
        general["ui_access_mode"] = "admin_only"
    document = {
        "model_list": [{"model_name": "gpt-4o"}],
        "general_settings": general,
        "hook_settings": {"policy": policy or {}, **hook_settings},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(document))
    return LoginService(
        config=load_config(tmp_path / "config.yaml", {}),
        sso=SSOSettings(
            kind="generic", client_id="c", client_secret="s", proxy_admin_id=ADMIN, allowed_email_domains=domains
        ),
        hook=cast(HookService, hook),
        database=database,
        sessions=SessionCodec("sk-identity"),
    )


VIEWERS_ONLY = {"allowed_roles": ["internal_user_viewer"]}


async def refused(login: LoginService, user: str) -> LoginFailed:
    with pytest.raises(LoginFailed) as caught:
        await login.login(openid(user))
    return caught.value


async def test_a_hook_may_not_log_anyone_else_in_as_proxy_admin_id(database: Database, tmp_path: Path) -> None:
    login = service(database, tmp_path, StandInHook(values(ADMIN)), policy=VIEWERS_ONLY)
    failed = await refused(login, "mallory")
    assert (failed.status, failed.outcome) == (403, "refused")
    assert "(user_id)" in failed.reason
    assert await database.get_user(ADMIN) is None
    run = await database.get_run(failed.run_id or "")
    assert run is not None
    assert (run.outcome, run.subject, run.user_id) == ("refused", "mallory", None)
    assert "PROXY_ADMIN_ID" in (run.error or "")


async def test_the_identity_providers_admin_is_proxy_admin_whatever_allowed_roles_say(
    database: Database, tmp_path: Path
) -> None:
    login = service(database, tmp_path, StandInHook(values(ADMIN)), policy=VIEWERS_ONLY, admin_only=True)
    granted = await login.login(openid(ADMIN))
    assert (granted.values.user_id, granted.values.user_role) == (ADMIN, "proxy_admin")
    user = await database.get_user(ADMIN)
    assert user is not None
    assert user.role == "proxy_admin"


async def test_the_admins_other_policy_limits_still_apply(database: Database, tmp_path: Path) -> None:
    login = service(database, tmp_path, StandInHook(values(ADMIN, max_budget=50.0)), policy={"max_budget": 10})
    failed = await refused(login, ADMIN)
    assert "(max_budget)" in failed.reason


async def test_an_admin_mapped_to_another_user_id_is_not_promoted(database: Database, tmp_path: Path) -> None:
    login = service(database, tmp_path, StandInHook(values("oscar.smith")), policy=VIEWERS_ONLY)
    granted = await login.login(openid(ADMIN))
    assert (granted.values.user_id, granted.values.user_role) == ("oscar.smith", "internal_user_viewer")


async def test_a_hook_granting_proxy_admin_is_refused_by_allowed_roles_before_admin_only(
    database: Database, tmp_path: Path
) -> None:
    login = service(database, tmp_path, StandInHook(values("bob", "proxy_admin")), policy=VIEWERS_ONLY, admin_only=True)
    failed = await refused(login, "bob")
    assert "(user_role)" in failed.reason
    assert await database.get_user("bob") is None


async def test_admin_only_refuses_a_non_admin(database: Database, tmp_path: Path) -> None:
    login = service(database, tmp_path, StandInHook(values("bob")), admin_only=True)
    failed = await refused(login, "bob")
    assert failed.reason == "This admin UI is limited to proxy admins."
    assert await database.get_user("bob") is None


@pytest.mark.parametrize("on_failure", ["deny", "idp_defaults"])
async def test_without_a_working_hook_the_admin_is_still_keyed_on_the_identity_provider(
    database: Database, tmp_path: Path, on_failure: str
) -> None:
    hook = StandInHook(error=HookRaised("RuntimeError: boom", type_name="RuntimeError"))
    login = service(database, tmp_path, hook, policy=VIEWERS_ONLY, on_failure=on_failure)
    if on_failure == "deny":
        assert (await refused(login, ADMIN)).outcome == "raised"
        return
    granted = await login.login(openid(ADMIN))
    assert granted.values.user_role == "proxy_admin"
    assert (await login.login(openid("bob"))).values.user_role == "internal_user_viewer"


async def test_without_a_hook_proxy_admin_id_applies(database: Database, tmp_path: Path) -> None:
    login = service(database, tmp_path, None, policy=VIEWERS_ONLY)
    assert (await login.login(openid(ADMIN))).values.user_role == "proxy_admin"
    assert (await login.login(openid("bob"))).values.user_role == "internal_user_viewer"


@pytest.mark.parametrize(
    ("email", "allowed"),
    [
        ("bob@example.com", True),
        ("Bob@EXAMPLE.com", True),
        (None, True),
        ("bob@evil.org", False),
        ("bob@evil.org@example.com", False),
        ("@example.com", False),
        ("bob@sub.example.com", False),
    ],
)
async def test_the_hooks_email_must_be_in_allowed_email_domains(
    database: Database, tmp_path: Path, email: str | None, allowed: bool
) -> None:
    hook = StandInHook(values("bob", user_email=email))
    login = service(database, tmp_path, hook, domains=frozenset({"example.com"}))
    if allowed:
        granted = await login.login(openid("bob"))
        assert isinstance(granted, LoginGranted)
        return
    failed = await refused(login, "bob")
    assert (failed.outcome, failed.status) == ("refused", 403)
    assert "(user_email)" in failed.reason
    assert await database.get_user("bob") is None


async def test_the_identity_providers_email_is_checked_before_the_hook(database: Database, tmp_path: Path) -> None:
    hook = StandInHook(values("eve", user_email="eve@example.com"))
    login = service(database, tmp_path, hook, domains=frozenset({"example.com"}))
    with pytest.raises(LoginFailed) as caught:
        await login.login({"id": "eve", "email": "eve@evil.org"})
    assert "email domain" in caught.value.reason
    assert caught.value.run_id is None


async def test_a_hooks_text_is_bounded_in_the_run_and_one_line_in_the_log(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    message = "boom\nINFO:     hookjail.login: forged line\r\x1b[2J" + "x" * 10_000
    error = HookRaised(f"RuntimeError: {message}", type_name="RuntimeError")
    error.stdout = "out\x00put " * 20_000
    login = service(database, tmp_path, StandInHook(error=error))
    with caplog.at_level(logging.WARNING, logger="hookjail.login"):
        failed = await refused(login, "bob")
    run = await database.get_run(failed.run_id or "")
    assert run is not None
    assert run.error is not None
    assert len(run.error) <= 2000
    assert run.error.startswith("RuntimeError: boom\nINFO:")  # stored as it was, only cut short
    assert "\x00" not in (run.stdout or "")
    lines = [record.getMessage() for record in caplog.records]
    assert lines
    for line in lines:
        assert line.isprintable(), line
        assert len(line) < 2200
    assert any("boom\\nINFO:     hookjail.login: forged line\\r\\x1b[2J" in line for line in lines)


async def test_invalid_values_that_are_not_plain_data_are_named(database: Database, tmp_path: Path) -> None:
    login = service(database, tmp_path, StandInHook(values("bob") | {"user_id": b"bob"}))
    failed = await refused(login, "bob")
    assert (failed.status, failed.outcome) == (403, "invalid")
    assert "(user_id)" in failed.reason
    run = await database.get_run(failed.run_id or "")
    assert run is not None
    assert run.error == "user_id: must be a string, got bytes"
