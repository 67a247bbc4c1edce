"""The host API from inside the real sandbox: LiteLLM's call shapes, results and errors, answered by FakeHost."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sdk._hostapi import HostUnavailable
from sdk.testing import FakeHost, RunResult, run_hook

from .conftest import hook

pytestmark = pytest.mark.anyio

ALICE = {"id": "alice", "email": "alice@example.com"}


def seeded(*grants: str) -> FakeHost:
    return FakeHost(
        users=[
            {"user_id": "alice", "user_email": "alice@example.com", "user_role": "proxy_admin"},
            {"user_id": "bob", "user_email": "bob@example.com", "user_role": "internal_user"},
        ],
        teams=[
            {
                "team_id": "eng",
                "team_alias": "Engineering",
                "members_with_roles": [{"user_id": "bob", "role": "admin"}],
            }
        ],
        grants=grants or ("user_info",),
    )


def seen(result: RunResult) -> Any:
    return json.loads(result.stdout.strip().splitlines()[-1])


async def test_user_info_returns_litellms_shape() -> None:
    result = await run_hook(hook("host_api", "lookup_user"), {"id": "bob"}, host=seeded())
    assert seen(result) == {
        "user_id": "bob",
        "role": "internal_user",
        "role_by_key": "internal_user",
        "teams": ["eng"],
        "members": ["bob"],
        "keys": [],
    }


async def test_user_info_of_unknown_user_raises_404_in_the_hook() -> None:
    result = await run_hook(hook("host_api", "lookup_unknown_user"), {"id": "carol"}, host=seeded())
    assert seen(result) == {
        "type": "NotFoundError",
        "status": 404,
        "code": "404",
        "message": "User carol not found",
        "is_lookup_error": True,
    }


async def test_host_unavailable_raises_503_in_the_hook() -> None:
    result = await run_hook(hook("host_api", "lookup_when_unavailable"), ALICE, host=_unavailable_host)
    assert seen(result) == {
        "type": "HostUnavailableError",
        "status": 503,
        "code": "503",
        "message": "the proxy could not answer this host call; try the login again",
        "is_host_unavailable": True,
    }


async def _unavailable_host(method: str, args: dict[str, Any]) -> Any:
    raise HostUnavailable("the proxy could not answer this host call; try the login again")


async def test_ungranted_call_raises_permission_error_in_the_hook() -> None:
    host = seeded("user_info")
    result = await run_hook(hook("host_api", "lookup_without_grant"), ALICE, host=host)
    assert seen(result)["type"] == "PermissionError"
    assert "team_info" in seen(result)["message"]
    assert [(c.method, c.outcome) for c in host.calls] == [("team_info", "PermissionError")]


async def test_host_calls_without_a_host_are_refused() -> None:
    result = await run_hook(hook("host_api", "lookup_without_grant"), ALICE, host=_no_host)
    assert seen(result) == {"type": "PermissionError", "message": "not granted"}


async def _no_host(method: str, args: dict[str, Any]) -> Any:
    raise PermissionError("not granted")


async def test_bad_arguments_raise_422_without_reaching_the_host() -> None:
    host = seeded()
    result = await run_hook(hook("host_api", "lookup_with_bad_arguments"), ALICE, host=host)
    assert seen(result)["status"] == 422
    assert seen(result)["is_value_error"] is True
    assert host.calls == []


async def test_new_user_creates_the_user_with_no_key() -> None:
    host = seeded("new_user")
    result = await run_hook(hook("host_api", "create_user"), ALICE, host=host)
    assert seen(result) == {"key": None, "user_id": "alice-created", "teams": ["eng"], "role": "internal_user"}
    created = host.users["alice-created"]
    assert (created.models, created.max_budget, created.budget_duration) == (["gpt-4o-mini"], 5.0, "30d")


async def test_new_user_sends_only_the_fields_hookjail_stores() -> None:
    host = seeded("new_user")
    await run_hook(hook("host_api", "create_user"), ALICE, host=host)
    assert "tpm_limit" not in host.calls[0].args


async def test_new_user_accepts_a_dict() -> None:
    result = await run_hook(hook("host_api", "create_user_from_dict"), ALICE, host=seeded("new_user"))
    assert seen(result) == {"user_id": "alice-created", "email": "alice@example.com"}


async def test_new_user_for_existing_user_raises_409() -> None:
    result = await run_hook(hook("host_api", "create_existing_user"), ALICE, host=seeded("new_user"))
    assert seen(result)["status"] == 409
    assert seen(result)["type"] == "ConflictError"


async def test_new_user_with_unknown_role_raises_422() -> None:
    result = await run_hook(hook("host_api", "create_user_with_bad_role"), ALICE, host=seeded("new_user"))
    assert seen(result)["status"] == 422
    assert "user_role" in seen(result)["message"]


async def test_add_new_member_reports_updated_users_and_memberships() -> None:
    host = seeded("add_new_member")
    result = await run_hook(hook("host_api", "add_member"), ALICE, host=host)
    assert seen(result) == {
        "team_id": "eng",
        "members": ["bob", "alice"],
        "updated_users": ["alice"],
        "memberships": [["eng", "alice"]],
    }
    assert host.users["alice"].teams == ["eng"]


async def test_add_new_member_to_unknown_team_raises_404() -> None:
    result = await run_hook(hook("host_api", "add_member_to_unknown_team"), ALICE, host=seeded("add_new_member"))
    assert seen(result)["message"] == "Team nope not found"


async def test_team_info_lists_members_and_memberships() -> None:
    result = await run_hook(hook("host_api", "lookup_team"), ALICE, host=seeded("team_info"))
    assert seen(result) == {
        "team_id": "eng",
        "alias": "Engineering",
        "members": [["bob", "admin"]],
        "memberships": ["bob"],
    }


async def test_runner_records_each_host_call() -> None:
    result = await run_hook(hook("host_api", "lookup_unknown_user"), {"id": "carol"}, host=seeded())
    assert result.host_calls == (("user_info", "NotFound"),)
