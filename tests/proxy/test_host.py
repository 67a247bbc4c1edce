"""The proxy's host-call handler against a real database: grants, argument checks, staged writes, records."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from proxy._config import HookPolicy
from proxy._db import Database, RunRecord, normalize_url, utcnow
from proxy._directory import new_team, new_user
from proxy._host import MAX_RECORDED_CALLS, HostUnavailable, LoginHost
from runner import HookLimitExceeded
from sdk._fakehost import FakeHost
from sdk._hostapi import ERROR_TYPES, METHODS, Conflict, Invalid, MemberArgs, NewUserArgs, NotFound
from tests.proxy.inprocess import login_record

pytestmark = pytest.mark.anyio

ALL = list(METHODS)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(normalize_url("sqlite:///hj.db", tmp_path))
    await db.upgrade()
    async with db.transaction() as rows:
        await new_user(rows, NewUserArgs(user_id="alice", user_email="alice@example.com", user_role="proxy_admin"))
        await new_team(
            rows, team_id="eng", team_alias="Eng", models=["gpt-4o"], max_budget=5.0,
            members=[MemberArgs(user_id="alice", role="admin")],
        )  # fmt: skip
    yield db
    await db.close()


def run_of(run_id: str, host: LoginHost) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        started_at=utcnow(),
        outcome="ok",
        duration_ms=1.0,
        subject="x",
        provider="generic",
        host_calls=host.calls,
    )


async def test_user_info_answers_litellm_shape_from_the_database(database: Database) -> None:
    host = LoginHost(database, ["user_info"])
    answer = await host("user_info", {"user_id": "alice"})
    assert answer["user_id"] == "alice"
    assert answer["keys"] == []
    assert answer["user_info"]["user_role"] == "proxy_admin"
    assert answer["user_info"]["teams"] == ["eng"]
    assert answer["teams"][0]["members_with_roles"] == [
        {"user_id": "alice", "user_email": "alice@example.com", "role": "admin"}
    ]
    assert host.calls == [
        {"method": "user_info", "args": {"user_id": "alice"}, "outcome": "ok", "ms": pytest.approx(0, abs=5000)}
    ]


async def test_unknown_user_is_not_found(database: Database) -> None:
    host = LoginHost(database, ["user_info"])
    with pytest.raises(NotFound, match="User ghost not found"):
        await host("user_info", {"user_id": "ghost"})
    assert host.calls[0]["outcome"] == "NotFound"


async def test_cant_call_a_method_that_is_not_granted(database: Database) -> None:
    host = LoginHost(database, ["user_info"])
    with pytest.raises(PermissionError, match=r"add new_user to hook_settings\.permissions"):
        await host("new_user", {"user_id": "mallory"})
    assert host.calls[0]["outcome"] == "PermissionError"
    async with database.reader() as rows:
        assert await rows.user("mallory") is None


@pytest.mark.parametrize("method", ["complete_login", "record_run", "__call__", "_answer", "sql", ""])
async def test_cant_reach_anything_else_through_the_channel(database: Database, method: str) -> None:
    host = LoginHost(database, ALL)
    with pytest.raises(PermissionError, match="there is no host call named"):
        await host(method, {})


@pytest.mark.parametrize(
    ("method", "args", "field"),
    [
        ("user_info", {}, "user_id"),
        ("user_info", {"user_id": 42}, "user_id"),
        ("user_info", {"user_id": "alice", "sql": "drop table users"}, "sql"),
        ("new_user", {"user_id": "bob", "user_role": "root"}, "user_role"),
        ("new_user", {"user_id": "bob", "max_budget": -1.0}, "max_budget"),
        ("add_new_member", {"team_id": "eng", "member": {"role": "user"}}, "member"),
        ("team_info", {"team_id": ["eng"]}, "team_id"),
    ],
)
async def test_bad_arguments_are_invalid_naming_the_field(
    database: Database, method: str, args: dict[str, Any], field: str
) -> None:
    host = LoginHost(database, ALL)
    with pytest.raises(Invalid, match=field):
        await host(method, args)


async def test_metadata_must_be_json_data(database: Database) -> None:
    host = LoginHost(database, ALL)
    with pytest.raises(Invalid, match="metadata"):
        await host("new_user", {"user_id": "bob", "metadata": {"blob": b"\x00\x01"}})
    assert host.calls[0]["args"] == {"user_id": "bob", "metadata": {"blob": "<2 bytes>"}}


async def test_writes_are_staged_visible_to_the_hook_and_committed_with_the_login(database: Database) -> None:
    host = LoginHost(database, ALL)
    created = await host("new_user", {"user_id": "bob", "user_email": "bob@example.com", "teams": ["eng"]})
    assert created["key"] is None
    assert created["teams"] == ["eng"]
    added = await host("add_new_member", {"team_id": "eng", "member": [{"user_email": "carol@example.com"}]})
    carol_id = added["updated_users"][0]["user_id"]
    # the hook sees its own writes ...
    assert (await host("user_info", {"user_id": "bob"}))["user_info"]["teams"] == ["eng"]
    team = await host("team_info", {"team_id": "eng"})
    assert [m["user_id"] for m in team["team_info"]["members_with_roles"]] == ["alice", "bob", carol_id]
    with pytest.raises(Conflict):
        await host("new_user", {"user_id": "bob"})
    # ... nobody else does until the login commits
    async with database.reader() as rows:
        assert await rows.user("bob") is None
    await database.complete_login(login_record("bob", "s1"), run_of("r1", host), host.staged)
    async with database.reader() as rows:
        bob = await rows.user("bob")
        assert bob is not None
        assert bob.role == "internal_user"  # the login's values win over new_user's default
        assert [m.user_id for m in await rows.memberships_of_team("eng")] == ["alice", "bob", carol_id]
    run = await database.get_run("r1")
    assert run is not None
    assert [c["method"] for c in run.host_calls or []] == [
        "new_user", "add_new_member", "user_info", "team_info", "new_user"
    ]  # fmt: skip
    assert (run.host_calls or [])[-1]["outcome"] == "Conflict"


async def test_a_dropped_login_writes_nothing(database: Database) -> None:
    host = LoginHost(database, ALL)
    await host("new_user", {"user_id": "dave", "teams": ["eng"]})
    await database.record_run(run_of("r2", host))  # what a failed login records
    async with database.reader() as rows:
        assert await rows.user("dave") is None
        assert [m.user_id for m in await rows.memberships_of_team("eng")] == ["alice"]
    run = await database.get_run("r2")
    assert run is not None
    assert run.host_calls is not None
    assert run.host_calls[0]["args"] == {"user_id": "dave", "teams": ["eng"]}


async def test_a_concurrent_creation_fails_the_whole_login(database: Database) -> None:
    host = LoginHost(database, ALL)
    await host("new_user", {"user_id": "erin"})
    async with database.transaction() as rows:  # the management API creates erin meanwhile
        await new_user(rows, NewUserArgs(user_id="erin", user_role="proxy_admin"))
    with pytest.raises(IntegrityError):
        await database.complete_login(login_record("frank", "s9"), run_of("r3", host), host.staged)
    assert await database.get_session("s9") is None
    assert await database.get_run("r3") is None
    async with database.reader() as rows:
        erin = await rows.user("erin")
        assert erin is not None
        assert erin.role == "proxy_admin"


async def test_a_huge_answer_is_a_limit(database: Database) -> None:
    host = LoginHost(database, ["team_info"], max_reply_bytes=200)
    with pytest.raises(HookLimitExceeded) as caught:
        await host("team_info", {"team_id": "eng"})
    assert caught.value.limit == "host_reply"
    assert host.calls[0]["outcome"] == "limit"


async def test_cant_stage_more_than_the_cap(database: Database) -> None:
    host = LoginHost(database, ALL, max_staged_rows=5)
    members = [{"user_id": f"m{i}"} for i in range(3)]  # 3 users + 3 memberships
    with pytest.raises(HookLimitExceeded) as caught:
        await host("add_new_member", {"team_id": "eng", "member": members})
    assert caught.value.limit == "host_writes"


async def test_database_errors_do_not_reach_the_hook(database: Database) -> None:
    host = LoginHost(database, ["user_info"])
    await database.close()
    database.engine.sync_engine.pool.dispose()
    Path(database.engine.url.database or "").unlink()
    Path(database.engine.url.database or "").mkdir()  # the file is now a directory: every read fails
    with pytest.raises(HostUnavailable) as caught:
        await host("user_info", {"user_id": "alice"})
    assert "hj.db" not in str(caught.value)
    assert "could not answer" in str(caught.value)
    assert host.calls[0]["outcome"] == "HostUnavailable"
    # the SDK knows this error type: the hook gets a HostUnavailableError (503), not a bare ProxyException
    assert type(caught.value).__name__ in ERROR_TYPES


async def test_only_the_first_calls_are_recorded(database: Database) -> None:
    host = LoginHost(database, ["user_info"])
    for _ in range(MAX_RECORDED_CALLS + 5):
        await host("user_info", {"user_id": "alice"})
    recorded = host.record()
    assert len(recorded) == MAX_RECORDED_CALLS + 1
    assert recorded[-1] == {"unrecorded": 5}


async def test_long_arguments_are_recorded_cut_short(database: Database) -> None:
    host = LoginHost(database, ["user_info"])
    with pytest.raises(Invalid):
        await host("user_info", {"user_id": "x" * 5000})
    recorded = host.calls[0]["args"]
    assert isinstance(recorded, str)
    assert len(recorded) < 1100
    assert recorded.endswith("characters)")


async def test_the_policy_applies_to_users_the_hook_creates(database: Database) -> None:
    policy = HookPolicy(allowed_roles=["internal_user", "internal_user_viewer"], max_budget=10.0)
    host = LoginHost(database, ALL, policy=policy)
    with pytest.raises(PermissionError, match=r"'proxy_admin' is not in hook_settings\.policy\.allowed_roles"):
        await host("new_user", {"user_id": "eve", "user_role": "proxy_admin", "max_budget": 1.0})
    with pytest.raises(PermissionError, match="max_budget unlimited is over"):
        await host("new_user", {"user_id": "eve", "user_role": "internal_user"})
    created = await host("new_user", {"user_id": "eve", "user_role": "internal_user", "max_budget": 10.0})
    assert created["user_role"] == "internal_user"


async def test_the_policy_applies_to_users_add_new_member_creates(database: Database) -> None:
    # Found by red-teaming: adding a member who is not a user yet creates one as internal_user, which the
    # policy must see like a new_user call.
    host = LoginHost(database, ALL, policy=HookPolicy(allowed_roles=["internal_user_viewer"]))
    with pytest.raises(PermissionError, match=r"add_new_member: a new user's role 'internal_user' is not in"):
        await host("add_new_member", {"team_id": "eng", "member": {"user_id": "mallory", "role": "admin"}})
    with pytest.raises(NotFound):
        await host("user_info", {"user_id": "mallory"})
    # an existing user may still be added: nobody is created
    await host("new_user", {"user_id": "vic", "user_role": "internal_user_viewer"})
    added = await host("add_new_member", {"team_id": "eng", "member": {"user_id": "vic"}})
    assert [user["user_id"] for user in added["updated_users"]] == ["vic"]


async def test_models_must_exist_applies_to_new_users(database: Database) -> None:
    host = LoginHost(database, ALL, policy=HookPolicy(models_must_exist=True), model_names={"gpt-4o"})
    with pytest.raises(PermissionError, match="models not in model_list: o3"):
        await host("new_user", {"user_id": "eve", "models": ["gpt-4o", "o3"]})
    await host("new_user", {"user_id": "eve", "models": ["gpt-4o"]})


def _comparable(value: Any) -> Any:
    """An answer with its generated ids replaced (new users without a given id get a fresh uuid)."""
    text = json.dumps(value, sort_keys=True)
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", text)
    return json.loads(text)


CALLS: list[tuple[str, dict[str, Any]]] = [
    ("user_info", {"user_id": "alice"}),
    ("user_info", {"user_id": "ghost"}),
    ("team_info", {"team_id": "eng"}),
    ("team_info", {"team_id": "nope"}),
    ("new_user", {"user_id": "bob", "user_email": "bob@example.com", "user_role": "internal_user", "teams": ["eng"]}),
    ("new_user", {"user_id": "bob"}),
    ("new_user", {"user_id": "zed", "user_role": "team", "teams": ["nope"]}),
    ("add_new_member", {"team_id": "eng", "member": [{"user_email": "carol@example.com", "role": "admin"}]}),
    ("add_new_member", {"team_id": "eng", "member": {"user_id": "bob"}}),
    ("add_new_member", {"team_id": "nope", "member": {"user_id": "bob"}}),
    ("add_new_member", {"team_id": "eng", "member": {"user_id": "dan"}, "max_budget_in_team": 3.0}),
    ("user_info", {"user_id": "bob"}),
    ("user_info", {"user_id": "dan"}),
    ("team_info", {"team_id": "eng"}),
    ("user_info", {"user_id": 7}),
    ("new_user", {"user_id": "nora", "user_email": "nora@example.com"}),  # no role: internal_user_viewer
    ("user_info", {"user_id": "nora"}),
    ("new_user", {"user_email": "nameless@example.com", "teams": ["eng"]}),  # no id either
    ("team_info", {"team_id": "eng"}),
    ("teams_delete", {"team_id": "eng"}),
    ("x" * 100, {}),
]


def fake_host(grants: list[str]) -> FakeHost:
    """A FakeHost seeded like the ``database`` fixture."""
    return FakeHost(
        users=[{"user_id": "alice", "user_email": "alice@example.com", "user_role": "proxy_admin", "teams": []}],
        teams=[
            {
                "team_id": "eng",
                "team_alias": "Eng",
                "models": ["gpt-4o"],
                "max_budget": 5.0,
                "members_with_roles": [{"user_id": "alice", "user_email": "alice@example.com", "role": "admin"}],
            }
        ],
        grants=grants,
    )


async def answers_of(host: FakeHost | LoginHost, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """What ``host`` answers to each call: the answer, or the error type and message."""
    answers: list[Any] = []
    for method, args in calls:
        try:
            answers.append(("ok", _comparable(await host(method, args))))
        except Exception as exc:
            answers.append((type(exc).__name__, str(exc)))
    return answers


async def test_answers_exactly_like_the_sdks_fake_host(database: Database) -> None:
    """The SDK's FakeHost is what hook authors test against: the proxy must answer the same, errors word for
    word."""
    fake, real = await answers_of(fake_host(ALL), CALLS), await answers_of(LoginHost(database, ALL), CALLS)
    for (method, args), expected, got in zip(CALLS, fake, real, strict=True):
        assert got == expected, f"{method}({args})"
    nora = fake[CALLS.index(("user_info", {"user_id": "nora"}))]
    assert nora[1]["user_info"]["user_role"] == "internal_user_viewer"


@pytest.mark.parametrize("grants", [[], ["user_info"], ["team_info", "new_user"]])
async def test_refuses_ungranted_and_unknown_calls_exactly_like_the_fake_host(
    database: Database, grants: list[str]
) -> None:
    calls = [(method, {"user_id": "alice", "team_id": "eng"}) for method in (*ALL, "delete_user", "")]
    fake, real = await answers_of(fake_host(grants), calls), await answers_of(LoginHost(database, grants), calls)
    assert real == fake
    refused = [answer for (method, _), answer in zip(calls, real, strict=True) if method not in grants]
    assert {error_type for error_type, _ in refused} == {"PermissionError"}
    assert any("must add" in message and "hook_settings.permissions" in message for _, message in refused)
    assert any("there is no host call named 'delete_user'" in message for _, message in refused)


async def test_deeply_nested_arguments_are_refused_not_a_crash(database: Database) -> None:
    nested: dict[str, Any] = {}
    for _ in range(5000):
        nested = {"x": nested}
    host = LoginHost(database, ALL)
    with pytest.raises(Invalid):
        await host("new_user", {"user_id": "deep", "metadata": nested})
    assert host.calls[0]["outcome"] == "Invalid"


async def test_cant_create_the_proxy_admins_account_through_new_user(database: Database) -> None:
    host = LoginHost(database, ALL, reserved_user_ids={"admin-1"}, allowed_email_domains={"example.com"})
    with pytest.raises(PermissionError, match="PROXY_ADMIN_ID"):
        await host("new_user", {"user_id": "admin-1", "user_email": "x@example.com"})
    assert not host.staged.users


async def test_cant_create_users_outside_allowed_email_domains(database: Database) -> None:
    host = LoginHost(database, ALL, allowed_email_domains={"example.com"})
    with pytest.raises(PermissionError, match="ALLOWED_EMAIL_DOMAINS"):
        await host("new_user", {"user_id": "eve", "user_email": "eve@evil.example"})
    with pytest.raises(PermissionError, match="ALLOWED_EMAIL_DOMAINS"):
        await host("add_new_member", {"team_id": "t1", "member": [{"user_email": "eve@evil.example"}]})
    assert (await host("new_user", {"user_id": "bob", "user_email": "bob@example.com"}))["user_id"] == "bob"


async def test_huge_arguments_are_not_recorded_whole(database: Database) -> None:
    host = LoginHost(database, ["user_info"])
    with pytest.raises(Invalid):
        await host("user_info", {"user_id": "x", "padding": [0] * 200_000})
    assert re.fullmatch(r"<2000\d\d bytes of arguments, not recorded>", host.calls[0]["args"])
