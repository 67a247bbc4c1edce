"""One transaction per login, in-process: the hook's host-call writes commit with the login or not at all.

A stand-in for the hook service makes host calls through the real :class:`~proxy._host.LoginHost` and then
ends the way each test needs (values, an exception, invalid values), so every path of
:meth:`proxy._login.LoginService.login` is exercised deterministically against a real database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from proxy import load_config
from proxy._db import Database, utcnow
from proxy._directory import new_user
from proxy._hook import HookService, HookSource
from proxy._login import LoginFailed, LoginService
from proxy._sessions import SessionCodec
from proxy._sso import SSOSettings
from runner import CallResult, HookRaised, HostHandler
from sdk._hostapi import NewUserArgs
from tests.proxy.inprocess import sqlite_database

pytestmark = pytest.mark.anyio

OPENID = {"id": "bob", "email": "bob@example.com", "provider": "generic"}

Script = Callable[[HostHandler], Awaitable[Any]]


class ScriptedHook:
    """Runs ``script(host)`` in place of a sandboxed hook; what it returns is the hook's value."""

    def __init__(self) -> None:
        self.script: Script | None = None

    async def reload_if_changed(self) -> None:
        """Its source never changes."""

    def describe(self) -> HookSource:
        return HookSource(file="stand_in.py", sha256="5" * 64, loaded_at=utcnow())

    async def call(self, openid: dict[str, Any], *, run_id: str, host: HostHandler | None = None) -> CallResult:
        assert self.script is not None
        assert host is not None
        return CallResult(value=await self.script(host), duration=0.001, run_id=run_id)


def values(role: str = "internal_user", **changes: Any) -> dict[str, Any]:
    return {
        "models": [],
        "user_id": "bob",
        "user_email": "bob@example.com",
        "user_role": role,
        "max_budget": 1.0,
        "budget_duration": "1d",
    } | changes


async def write_then(host: HostHandler) -> None:
    await host("new_user", {"user_id": "bob", "user_email": "bob@example.com", "user_role": "internal_user"})
    await host("add_new_member", {"team_id": "eng", "member": [{"user_id": "bob"}, {"user_email": "x@example.com"}]})


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    async with sqlite_database(tmp_path, teams=("eng",)) as db:
        yield db


def service(database: Database, hook: ScriptedHook, tmp_path: Path, **hook_settings: Any) -> LoginService:
    (tmp_path / "custom_sso.py").write_text("def custom_sso_handler(user):\n    return {}\n")
    settings = {"permissions": ["user_info", "new_user", "add_new_member", "team_info"], **hook_settings}
    document = {"general_settings": {"custom_sso": "custom_sso.custom_sso_handler"}, "hook_settings": settings}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(document))
    return LoginService(
        config=load_config(tmp_path / "config.yaml", {}),
        sso=SSOSettings(kind="generic", client_id="c", client_secret="s"),
        hook=cast(HookService, hook),
        database=database,
        sessions=SessionCodec("sk-transaction"),
    )


def _session_id(token: str) -> str:
    return SessionCodec("sk-transaction").verify(token).session_id


async def nothing_written(database: Database) -> None:
    async with database.reader() as rows:
        assert await rows.user("bob") is None
        assert await rows.user_by_email("x@example.com") is None
        assert await rows.memberships_of_team("eng") == []


async def test_success_commits_the_writes_with_the_user_run_and_session(database: Database, tmp_path: Path) -> None:
    hook = ScriptedHook()

    async def script(host: HostHandler) -> dict[str, Any]:
        await write_then(host)
        return values()

    hook.script = script
    granted = await service(database, hook, tmp_path).login(OPENID)
    async with database.reader() as rows:
        carol = await rows.user_by_email("x@example.com")
        assert carol is not None
        assert {m.user_id for m in await rows.memberships_of_team("eng")} == {"bob", carol.id}
        bob = await rows.user("bob")
        assert bob is not None
        assert (bob.role, bob.provider, bob.last_login_at is not None) == ("internal_user", "generic", True)
    assert await database.get_session(_session_id(granted.token)) is not None
    run = await database.get_run(granted.run_id or "")
    assert run is not None
    assert [(c["method"], c["outcome"]) for c in run.host_calls or []] == [("new_user", "ok"), ("add_new_member", "ok")]


@pytest.mark.parametrize(
    ("ending", "status", "outcome"),
    [
        ("raise", 502, "raised"),
        ("invalid", 403, "invalid"),
        ("refused", 403, "refused"),
    ],
)
async def test_a_failed_login_drops_the_writes_and_records_the_run(
    database: Database, tmp_path: Path, ending: str, status: int, outcome: str
) -> None:
    hook = ScriptedHook()

    async def script(host: HostHandler) -> dict[str, Any]:
        await write_then(host)
        if ending == "raise":
            raise HookRaised("RuntimeError: boom", type_name="RuntimeError")
        if ending == "invalid":
            return values(role="root")
        return values(role="proxy_admin")  # not in allowed_roles

    hook.script = script
    login = service(database, hook, tmp_path, policy={"allowed_roles": ["internal_user"]})
    with pytest.raises(LoginFailed) as caught:
        await login.login(OPENID)
    assert (caught.value.status, caught.value.outcome) == (status, outcome)
    await nothing_written(database)
    run = await database.get_run(caught.value.run_id or "")
    assert run is not None
    assert run.outcome == outcome
    assert [c["method"] for c in run.host_calls or []] == ["new_user", "add_new_member"]


async def test_idp_defaults_after_a_failure_drop_the_writes(database: Database, tmp_path: Path) -> None:
    hook = ScriptedHook()

    async def script(host: HostHandler) -> dict[str, Any]:
        await write_then(host)
        raise HookRaised("RuntimeError: boom", type_name="RuntimeError")

    hook.script = script
    granted = await service(database, hook, tmp_path, on_failure="idp_defaults").login(OPENID)
    assert granted.fallback == "idp_defaults"
    async with database.reader() as rows:
        bob = await rows.user("bob")
        assert bob is not None
        assert bob.role == "internal_user_viewer"
        assert await rows.memberships_of_team("eng") == []
        assert await rows.user_by_email("x@example.com") is None


async def test_a_concurrent_creation_is_a_409_and_nothing_is_written(database: Database, tmp_path: Path) -> None:
    hook = ScriptedHook()

    async def script(host: HostHandler) -> dict[str, Any]:
        await host("new_user", {"user_id": "carol", "user_role": "internal_user"})
        async with database.transaction() as rows:  # the management API creates carol meanwhile
            await new_user(rows, NewUserArgs(user_id="carol", user_role="proxy_admin"))
        return values()

    hook.script = script
    with pytest.raises(LoginFailed) as caught:
        await service(database, hook, tmp_path).login(OPENID)
    assert (caught.value.status, caught.value.outcome) == (409, "conflict")
    assert "try again" in caught.value.reason
    async with database.reader() as rows:
        assert await rows.user("bob") is None
        carol = await rows.user("carol")
        assert carol is not None
        assert carol.role == "proxy_admin"
    run = await database.get_run(caught.value.run_id or "")
    assert run is not None
    assert (run.outcome, run.http_status) == ("conflict", 409)
    assert [c["method"] for c in run.host_calls or []] == ["new_user"]
