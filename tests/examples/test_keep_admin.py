"""examples/keep_admin: a user_info host call keeps an existing user's admin role."""

from __future__ import annotations

import pytest

from sdk.testing import FakeHost

from .conftest import check, run_example

pytestmark = pytest.mark.anyio

ALICE = {"id": "alice", "email": "alice@example.com"}


def directory(role: str) -> FakeHost:
    return FakeHost(users=[{"user_id": "alice", "user_email": "alice@example.com", "user_role": role}])


async def test_existing_admin_keeps_proxy_admin() -> None:
    result = await run_example("keep_admin", ALICE, host=directory("proxy_admin"))
    assert (result.value["user_role"], result.value["models"]) == ("proxy_admin", ["gpt-4o", "gpt-4o-mini"])


async def test_existing_admin_viewer_keeps_their_role() -> None:
    result = await run_example("keep_admin", ALICE, host=directory("proxy_admin_viewer"))
    assert result.value["user_role"] == "proxy_admin_viewer"


async def test_existing_non_admin_role_is_not_carried_over() -> None:
    result = await run_example("keep_admin", ALICE, host=directory("org_admin"))
    assert result.value["user_role"] == "internal_user"


async def test_new_user_becomes_internal_user() -> None:
    result = await run_example("keep_admin", ALICE, host=FakeHost())
    assert (result.value["user_role"], result.value["max_budget"]) == ("internal_user", 10.0)
    assert result.stdout == "alice logs in for the first time\n"


async def test_hook_looks_up_the_user_logging_in() -> None:
    host = directory("proxy_admin")
    await run_example("keep_admin", ALICE, host=host)
    assert [(c.method, c.args, c.outcome) for c in host.calls] == [("user_info", {"user_id": "alice"}, "ok")]


async def test_without_the_grant_nobody_keeps_admin() -> None:
    host = FakeHost(users=[{"user_id": "alice", "user_role": "proxy_admin"}], grants=())
    result = await run_example("keep_admin", ALICE, host=host)
    assert result.value["user_role"] == "internal_user"


def test_hookjail_check_passes() -> None:
    report = check("keep_admin", ALICE)
    assert (report["outcome"], report["values"]["user_role"]) == ("ok", "internal_user")
