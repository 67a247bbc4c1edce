"""Host calls end to end: the real ``hookjail`` process, the real OpenID provider, hooks in the real sandbox.

The seed's LiteLLM handler (examples/litellm_compat, unchanged) logs in a user created through the management
API; grants are enforced inside the hook; a login's writes commit with it or not at all; floods, huge answers
and forged frames are stopped without harming the proxy. One proxy serves most tests here (every host call
granted, each test writes the hook it needs), one the default grants, one tighter limits and a policy.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.idp.provider import IdP, PortPool
from tests.proxy.harness import MASTER_KEY, REPO, Proxy, ProxyFactory, login, new_client

ALL_GRANTS = ["user_info", "new_user", "add_new_member", "team_info"]

#: Grant-dependent: catches a refused call and says so in its output; succeeds either way.
CATCHING_HOOK = """
from sdk import LitellmUserRoles, NewUserRequest, SSOUserDefinedValues, new_user

async def custom_sso_handler(userIDPInfo):
    try:
        await new_user(NewUserRequest(user_id="minion-" + userIDPInfo.id, user_role="proxy_admin"))
        print("new_user: allowed")
    except PermissionError as exc:
        print(f"new_user: refused: {type(exc).__name__}: {exc}")
    return SSOUserDefinedValues(
        models=[], user_id=userIDPInfo.id, user_email=userIDPInfo.email,
        user_role=LitellmUserRoles.INTERNAL_USER_VIEW_ONLY.value, max_budget=1.0, budget_duration="1d",
    )
"""

#: Makes a refused call and lets the PermissionError escape.
UNCAUGHT_HOOK = """
from sdk import team_info

async def custom_sso_handler(userIDPInfo):
    await team_info(team_id="eng")
"""

#: Creates the user if needed, joins team "eng", reads its own writes back; then fails as its email asks.
WRITING_HOOK = """
from sdk import (
    LitellmUserRoles, Member, NewUserRequest, NotFoundError, SSOUserDefinedValues, TeamMemberAddRequest,
    add_new_member, new_user, team_info, user_info,
)

async def custom_sso_handler(userIDPInfo):
    try:
        await user_info(user_id=userIDPInfo.id)
    except NotFoundError:
        await new_user(NewUserRequest(
            user_id=userIDPInfo.id, user_email=userIDPInfo.email, user_role="internal_user",
            metadata={"created_by": "hook"},
        ))
    await add_new_member(TeamMemberAddRequest(team_id="eng", member=Member(user_id=userIDPInfo.id)))
    mine = await user_info(user_id=userIDPInfo.id)
    team = await team_info(team_id="eng")
    print("teams", mine.user_info.teams, "members", len(team.team_info.members_with_roles))
    assert "eng" in mine.user_info.teams
    if userIDPInfo.email.startswith("fail"):
        raise RuntimeError("directory sync failed after the writes")
    role = LitellmUserRoles.INTERNAL_USER.value
    if userIDPInfo.email.startswith("invalid"):
        role = "superuser"
    elif userIDPInfo.email.startswith("viewer"):
        role = LitellmUserRoles.INTERNAL_USER_VIEW_ONLY.value
    return {
        "models": [], "user_id": userIDPInfo.id, "user_email": userIDPInfo.email,
        "user_role": role, "max_budget": 1.0, "budget_duration": "1d",
    }
"""

FLOOD_HOOK = """
from sdk import NotFoundError, user_info

async def custom_sso_handler(userIDPInfo):
    for _ in range(10_000):
        try:
            await user_info(user_id="nobody")
        except NotFoundError:
            pass
"""

ENDLESS_HOOK = """
from sdk import NotFoundError, new_user, user_info

async def custom_sso_handler(userIDPInfo):
    await new_user({"user_id": "ghost-writer", "user_role": "internal_user"})
    while True:
        try:
            await user_info(user_id="nobody")
        except NotFoundError:
            pass
"""

BIG_ANSWER_HOOK = """
from sdk import user_info

async def custom_sso_handler(userIDPInfo):
    await user_info(user_id="hoarder")
"""

#: Bypasses the SDK: the runner's channel with a raw frame (the {frame} placeholder).
RAW_FRAME_HOOK = """
import time
from runner import _hostcall

def custom_sso_handler(userIDPInfo):
    frame = {frame}
    _hostcall._channel.sendall(len(frame).to_bytes(4, "big") + frame)
    time.sleep(3600)
"""

#: Bypasses the SDK: the runner's host_call with a method or arguments of its choosing.
RAW_CALL_HOOK = """
from runner import host_call

def custom_sso_handler(userIDPInfo):
    host_call({method!r}, {args!r})
"""


def msgpack(value: Any) -> bytes:
    import msgspec

    return msgspec.msgpack.encode(value)


@pytest.fixture(scope="module")
def factory(idp: IdP, proxy_ports: PortPool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyFactory]:
    proxies = ProxyFactory(idp, proxy_ports, tmp_path_factory.mktemp("host-calls"))
    try:
        yield proxies
    finally:
        proxies.close()


@pytest.fixture(scope="module")
def granted(factory: ProxyFactory) -> Proxy:
    """One proxy for the module, every host call granted; tests write the hook they need."""
    proxy = factory("granted", hook_source=WRITING_HOOK, hook_settings={"permissions": ALL_GRANTS, "timeout": 5})
    api(proxy, "POST", "/team/new", {"team_id": "eng", "team_alias": "Engineering"})
    return proxy


@pytest.fixture(scope="module")
def default_grants(factory: ProxyFactory) -> Proxy:
    """``hook_settings.permissions`` left at its default: only ``user_info``."""
    return factory("default-grants", hook_source=CATCHING_HOOK)


@pytest.fixture(scope="module")
def restricted(factory: ProxyFactory) -> Proxy:
    """Every host call granted, with a policy, a 1 s timeout, room for 10,000 host calls, 32 KiB answers."""
    proxy = factory(
        "restricted",
        hook_source=WRITING_HOOK,
        hook_settings={
            "permissions": ALL_GRANTS,
            "policy": {"allowed_roles": ["internal_user"]},
            "timeout": 1,
            "max_host_calls": 10_000,
            "max_host_reply_kb": 32,
        },
    )
    api(proxy, "POST", "/team/new", {"team_id": "eng"})
    return proxy


def api(proxy: Proxy, method: str, path: str, body: dict[str, Any] | None = None, **params: Any) -> httpx.Response:
    return httpx.request(
        method,
        f"{proxy.base_url}{path}",
        json=body,
        params=params,
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
        timeout=20,
    )


def run_of(proxy: Proxy, response: httpx.Response) -> dict[str, Any]:
    match = re.search(r'id="run-id">([^<]*)<', response.text)
    if match is None:  # a successful login: the newest run of this user
        rows = proxy.query("SELECT * FROM hook_runs ORDER BY started_at DESC LIMIT 1")
    else:
        rows = proxy.query("SELECT * FROM hook_runs WHERE run_id = ?", match.group(1))
    assert rows, response.text[:500]
    run = rows[0]
    run["host_calls"] = json.loads(run["host_calls"]) if run["host_calls"] else []
    return run


def sign_in(proxy: Proxy, user: str) -> httpx.Response:
    with new_client() as client:
        return login(client, proxy, user)


def user_ids_in_eng(proxy: Proxy) -> set[str]:
    members = api(proxy, "GET", "/team/info", team_id="eng").json()["team_memberships"]
    return {m["user_id"] for m in members}


# --- the seed's LiteLLM handler --------------------------------------------------------------------------------


def test_litellm_seed_handler_logs_in_a_user_created_beforehand(start: ProxyFactory, tmp_path: Path) -> None:
    example = tmp_path / "litellm_compat"
    shutil.copytree(REPO / "examples" / "litellm_compat", example)
    assert (example / "custom_sso.py").read_bytes() == (REPO / "examples/litellm_compat/custom_sso.py").read_bytes()
    proxy = start.serve(example / "config.yaml", work_dir=tmp_path)
    created = api(proxy, "POST", "/user/new", {"user_id": "alice", "user_email": "alice@example.com"})
    assert created.status_code == 200, created.text

    response = sign_in(proxy, "alice@example.com")
    assert response.status_code == 200
    assert 'id="user-role">internal_user<' in response.text
    run = run_of(proxy, response)
    assert run["outcome"] == "ok"
    assert [(c["method"], c["args"], c["outcome"]) for c in run["host_calls"]] == [
        ("user_info", {"user_id": "alice"}, "ok")
    ]
    # the handler printed what user_info returned: the user the management API created
    assert "_user_info from litellm DB" in run["stdout"]
    assert "alice@example.com" in run["stdout"].split("_user_info from litellm DB", 1)[1]
    # as in LiteLLM, an unknown user makes user_info raise a 404, which the seed turns into "Failed custom auth"
    response = sign_in(proxy, "bob@example.com")
    assert response.status_code == 502
    run = run_of(proxy, response)
    assert (run["outcome"], run["error"]) == ("raised", "Exception: Failed custom auth")
    assert [(c["method"], c["outcome"]) for c in run["host_calls"]] == [("user_info", "NotFound")]
    assert proxy.user("bob") is None


# --- grants ----------------------------------------------------------------------------------------------------


def test_denied_call_is_a_permission_error_the_hook_can_catch(default_grants: Proxy) -> None:
    proxy = default_grants
    proxy.write_hook(CATCHING_HOOK)
    response = sign_in(proxy, "carol@example.com")
    assert response.status_code == 200
    run = run_of(proxy, response)
    assert (
        "new_user: refused: PermissionError: host call 'new_user' is not granted to this hook: the operator must "
        "add new_user to hook_settings.permissions in config.yaml"
    ) in run["stdout"]
    assert [(c["method"], c["outcome"]) for c in run["host_calls"]] == [("new_user", "PermissionError")]
    assert proxy.user("minion-carol") is None


def test_uncaught_denied_call_fails_the_login_naming_the_permission(default_grants: Proxy) -> None:
    proxy = default_grants
    proxy.write_hook(UNCAUGHT_HOOK)
    response = sign_in(proxy, "dave@example.com")
    assert response.status_code == 502
    assert "The login hook failed with an error" in response.text
    run = run_of(proxy, response)
    assert run["outcome"] == "raised"
    assert run["error"].startswith("PermissionError: host call 'team_info' is not granted")
    assert "hook_settings.permissions" in run["error"]
    assert proxy.user("dave") is None


def test_granted_writes_are_visible_in_the_management_api(granted: Proxy) -> None:
    granted.write_hook(WRITING_HOOK)
    response = sign_in(granted, "erin@example.com")
    assert response.status_code == 200
    info = api(granted, "GET", "/user/info", user_id="erin").json()
    assert info["user_info"]["teams"] == ["eng"]
    assert info["user_info"]["metadata"] == {"created_by": "hook"}
    assert info["user_info"]["user_role"] == "internal_user"
    assert "erin" in user_ids_in_eng(granted)
    run = run_of(granted, response)
    assert [(c["method"], c["outcome"]) for c in run["host_calls"]] == [
        ("user_info", "NotFound"),
        ("new_user", "ok"),
        ("add_new_member", "ok"),
        ("user_info", "ok"),
        ("team_info", "ok"),
    ]
    assert "teams ['eng']" in run["stdout"]


@pytest.mark.parametrize(
    ("user", "status", "outcome"),
    [("fail-frank@example.com", 502, "raised"), ("invalid-ivan@example.com", 403, "invalid")],
    ids=["raised", "invalid-values"],
)
def test_failing_login_rolls_back_the_hooks_writes(granted: Proxy, user: str, status: int, outcome: str) -> None:
    granted.write_hook(WRITING_HOOK)
    user_id = user.partition("@")[0]
    response = sign_in(granted, user)
    assert response.status_code == status
    assert api(granted, "GET", "/user/info", user_id=user_id).status_code == 404
    assert user_id not in user_ids_in_eng(granted)
    assert granted.user(user_id) is None
    assert granted.query("SELECT * FROM team_members WHERE user_id = ?", user_id) == []
    run = run_of(granted, response)
    assert run["outcome"] == outcome
    # the run survives, with the writes the hook made (and saw succeed) before the login failed
    assert [(c["method"], c["outcome"]) for c in run["host_calls"]][1:3] == [
        ("new_user", "ok"),
        ("add_new_member", "ok"),
    ]
    assert run["host_calls"][1]["args"]["user_id"] == user_id


def test_policy_refusal_rolls_back_the_hooks_writes(restricted: Proxy) -> None:
    proxy = restricted
    proxy.write_hook(WRITING_HOOK)
    response = sign_in(proxy, "viewer-gina@example.com")  # new_user(internal_user) passes, the values do not
    assert response.status_code == 403
    run = run_of(proxy, response)
    assert run["outcome"] == "refused"
    assert [(c["method"], c["outcome"]) for c in run["host_calls"]][1:3] == [
        ("new_user", "ok"),
        ("add_new_member", "ok"),
    ]
    assert api(proxy, "GET", "/user/info", user_id="viewer-gina").status_code == 404
    assert user_ids_in_eng(proxy) == set()


def test_concurrent_logins_with_writes_all_commit(granted: Proxy) -> None:
    granted.write_hook(WRITING_HOOK)
    users = [f"crowd{i}@example.com" for i in range(6)]

    def sign_in_or_create(index: int) -> int:
        if index % 2:  # the management API writes meanwhile
            body = {"team_id": "eng", "member": {"user_id": f"admin-added{index}"}}
            return api(granted, "POST", "/team/member_add", body).status_code
        return sign_in(granted, users[index // 2]).status_code

    with ThreadPoolExecutor(max_workers=2 * len(users)) as pool:
        statuses = list(pool.map(sign_in_or_create, range(2 * len(users))))
    assert statuses == [200] * (2 * len(users))
    members = user_ids_in_eng(granted)
    assert {f"crowd{i}" for i in range(6)} <= members
    assert {f"admin-added{i}" for i in range(1, 12, 2)} <= members
    assert "database is locked" not in granted.log()


# --- caps ------------------------------------------------------------------------------------------------------


def test_ten_thousand_host_calls_are_stopped(granted: Proxy) -> None:
    granted.write_hook(FLOOD_HOOK)
    response = sign_in(granted, "flood@example.com")
    assert response.status_code == 502
    assert "went over its resource limits" in response.text
    run = run_of(granted, response)
    assert run["outcome"] == "limit"
    assert "more than 100 host calls" in run["error"]
    assert len(run["host_calls"]) == 100
    assert httpx.get(f"{granted.base_url}/health").status_code == 200


def test_host_calls_count_toward_the_timeout(restricted: Proxy) -> None:
    proxy = restricted
    proxy.write_hook(ENDLESS_HOOK)
    response = sign_in(proxy, "iris@example.com")
    assert response.status_code == 504
    run = run_of(proxy, response)
    assert run["outcome"] == "timeout"
    assert run["host_calls"][0]["method"] == "new_user"
    assert run["host_calls"][1]["method"] == "user_info"  # it was in the loop when the deadline came
    assert api(proxy, "GET", "/user/info", user_id="ghost-writer").status_code == 404
    # cancelled in the middle of a database read, the proxy goes on serving
    proxy.write_hook(WRITING_HOOK)
    assert sign_in(proxy, "iris@example.com").status_code == 200


def test_a_huge_answer_is_stopped(restricted: Proxy) -> None:
    proxy = restricted
    proxy.write_hook(BIG_ANSWER_HOOK)
    blob = {"notes": "x" * 60_000}
    assert api(proxy, "POST", "/user/new", {"user_id": "hoarder", "metadata": blob}).status_code == 200
    response = sign_in(proxy, "henry@example.com")
    assert response.status_code == 502
    run = run_of(proxy, response)
    assert run["outcome"] == "limit"
    assert "more than the 32768 allowed" in run["error"]
    assert [(c["method"], c["outcome"]) for c in run["host_calls"]] == [("user_info", "limit")]
    assert httpx.get(f"{proxy.base_url}/health").status_code == 200


# --- hooks that bypass the SDK ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (msgpack({"type": "host_call", "id": 1, "method": 7, "args": {}}), "malformed"),
        (msgpack({"type": "host_call", "id": "one", "method": "user_info", "args": {}}), "malformed"),
        (msgpack({"type": "host_call", "id": 1, "method": "user_info", "args": ["alice"]}), "malformed"),
        (msgpack({"type": "exec", "command": "id"}), "malformed"),
        (b"\xc1\xc1\xc1", "malformed"),
        (None, "oversized"),
    ],
    ids=["method-not-a-string", "id-not-an-int", "args-not-a-map", "unknown-frame", "not-msgpack", "oversized"],
)
def test_forged_frames_are_a_protocol_error(granted: Proxy, frame: bytes | None, message: str) -> None:
    if frame is None:  # claims a 1 GiB frame, bypassing the runner's encoder
        source = RAW_FRAME_HOOK.replace(
            'frame = {frame}\n    _hostcall._channel.sendall(len(frame).to_bytes(4, "big") + frame)',
            '_hostcall._channel.sendall((1 << 30).to_bytes(4, "big") + b"x" * 100)',
        )
    else:
        source = RAW_FRAME_HOOK.replace("{frame}", repr(frame))
    granted.write_hook(source)
    response = sign_in(granted, "forger@example.com")
    assert response.status_code == 502
    assert "sent a malformed answer" in response.text
    run = run_of(granted, response)
    assert run["outcome"] == "protocol"
    assert message in run["error"]
    assert granted.user("forger") is None
    assert httpx.get(f"{granted.base_url}/health").json()["status"] == "ok"


@pytest.mark.parametrize(
    ("method", "args", "error"),
    [
        ("complete_login", {}, "PermissionError: there is no host call named 'complete_login'"),
        ("user_info", {"user_id": 5}, "user_id: Input should be a valid string"),
        ("new_user", {"user_id": "x", "is_admin": True}, "is_admin: unknown argument"),
    ],
    ids=["unknown-method", "wrong-type", "unknown-argument"],
)
def test_raw_host_calls_get_the_same_checks(granted: Proxy, method: str, args: dict[str, Any], error: str) -> None:
    granted.write_hook(RAW_CALL_HOOK.format(method=method, args=args))
    response = sign_in(granted, "raw@example.com")
    assert response.status_code == 502
    run = run_of(granted, response)
    assert run["outcome"] == "raised"
    assert error in run["error"]
    assert granted.user("x") is None


def test_proxy_still_serves_logins_after_all_that(granted: Proxy) -> None:
    granted.write_hook(WRITING_HOOK)
    assert sign_in(granted, "last@example.com").status_code == 200
