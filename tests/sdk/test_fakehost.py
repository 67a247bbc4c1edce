"""FakeHost answers exactly as the wire contract says (no sandbox needed to check the host itself)."""

from __future__ import annotations

import pytest

from sdk._hostapi import Conflict, Invalid, NotFound
from sdk.testing import FakeHost

pytestmark = pytest.mark.anyio


def team_host() -> FakeHost:
    return FakeHost(
        users=[{"user_id": "bob", "user_email": "Bob@example.com"}],
        teams=[{"team_id": "eng"}],
        grants=("add_new_member", "user_info", "new_user"),
    )


def test_unknown_grant_is_refused() -> None:
    with pytest.raises(ValueError, match="delete_user"):
        FakeHost(grants=("user_info", "delete_user"))


async def test_grants_default_to_user_info_only() -> None:
    host = FakeHost(users=[{"user_id": "bob"}])
    await host("user_info", {"user_id": "bob"})
    with pytest.raises(PermissionError, match=r"hook_settings\.permissions"):
        await host("new_user", {"user_id": "carl"})


async def test_unknown_method_is_refused() -> None:
    with pytest.raises(PermissionError, match="no host call named 'drop_tables'"):
        await FakeHost()("drop_tables", {})


async def test_forged_arguments_are_invalid() -> None:
    with pytest.raises(Invalid, match="unknown argument"):
        await FakeHost()("user_info", {"user_id": "bob", "sql": "1=1"})


async def test_unknown_user_is_not_found() -> None:
    with pytest.raises(NotFound, match="User carl not found"):
        await FakeHost()("user_info", {"user_id": "carl"})


async def test_member_by_email_is_the_existing_user() -> None:
    host = team_host()
    answer = await host("add_new_member", {"team_id": "eng", "member": {"user_email": "bob@example.com"}})
    assert [user["user_id"] for user in answer["updated_users"]] == ["bob"]


async def test_member_who_is_not_a_user_becomes_one() -> None:
    host = team_host()
    await host("add_new_member", {"team_id": "eng", "member": [{"user_id": "dora", "role": "admin"}]})
    assert (host.users["dora"].user_role, host.users["dora"].teams) == ("internal_user", ["eng"])


async def test_member_already_in_team_is_a_conflict() -> None:
    host = team_host()
    await host("add_new_member", {"team_id": "eng", "member": {"user_id": "bob"}})
    with pytest.raises(Conflict, match="already in team eng"):
        await host("add_new_member", {"team_id": "eng", "member": {"user_id": "bob"}})


async def test_new_user_without_role_is_a_viewer_as_in_the_proxy() -> None:
    host = team_host()
    answer = await host("new_user", {"user_id": "vic"})
    assert answer["user_role"] == host.users["vic"].user_role == "internal_user_viewer"


async def test_new_user_without_id_gets_a_fresh_one() -> None:
    host = team_host()
    answer = await host("new_user", {"user_email": "eve@example.com"})
    assert answer["user_id"] in host.users
    assert answer["key"] is None


async def test_every_call_is_recorded_with_its_outcome() -> None:
    host = team_host()
    await host("user_info", {"user_id": "bob"})
    with pytest.raises(NotFound):
        await host("user_info", {"user_id": "nobody"})
    assert [(c.method, c.args, c.outcome) for c in host.calls] == [
        ("user_info", {"user_id": "bob"}, "ok"),
        ("user_info", {"user_id": "nobody"}, "NotFound"),
    ]
