"""examples/litellm_compat: LiteLLM's documented handler, unchanged, with its user_info() call answered."""

from __future__ import annotations

import pytest

from runner import HookRaised
from sdk.testing import FakeHost

from .conftest import check, run_example

pytestmark = pytest.mark.anyio

ALICE = {"id": "alice", "email": "alice@example.com", "provider": "generic"}


def known_alice() -> FakeHost:
    return FakeHost(users=[{"user_id": "alice", "user_email": "alice@example.com", "user_role": "internal_user"}])


async def test_known_user_logs_in_with_the_seeds_values() -> None:
    result = await run_example("litellm_compat", ALICE, host=known_alice())
    assert result.value == {
        "models": [],
        "user_id": "alice",
        "user_email": "alice@example.com",
        "user_role": "internal_user",
        "max_budget": 0.01,
        "budget_duration": "1d",
    }


async def test_user_info_call_returns_the_users_data() -> None:
    result = await run_example("litellm_compat", ALICE, host=known_alice())
    assert "_user_info from litellm DB  user_id='alice' user_info=UserRecord(user_id='alice'" in result.stdout


async def test_unknown_user_fails_as_in_litellm() -> None:
    with pytest.raises(HookRaised, match="Exception: Failed custom auth"):
        await run_example("litellm_compat", ALICE, host=FakeHost())


def test_hookjail_check_imports_the_seed_unchanged() -> None:
    report = check("litellm_compat")
    assert report["stdout"].startswith("inside custom sso handler\n")
    assert (report["outcome"], report["error"]) == ("raised", "Exception: Failed custom auth")
