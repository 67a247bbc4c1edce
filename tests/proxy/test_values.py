"""The hook's result: strict SSOUserDefinedValues validation, then the operator's policy."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from proxy._config import HookPolicy
from proxy._values import ValuesInvalid, ValuesRefused, apply_policy, validate_values

GOOD: dict[str, Any] = {
    "models": ["gpt-4o"],
    "user_id": "alice",
    "user_email": "alice@example.com",
    "user_role": "internal_user",
    "max_budget": 10.0,
    "budget_duration": "30d",
}


def invalid(**changes: Any) -> ValuesInvalid:
    value = {**GOOD, **changes}
    with pytest.raises(ValuesInvalid) as caught:
        validate_values({k: v for k, v in value.items() if v is not ...})
    return caught.value


def test_seed_values_are_valid() -> None:
    seed = GOOD | {"models": [], "max_budget": 0.01, "budget_duration": "1d"}
    assert validate_values(seed).max_budget == 0.01


def test_int_budget_and_nulls_are_valid() -> None:
    values = validate_values(GOOD | {"max_budget": 5, "budget_duration": None, "user_email": None})
    assert values.max_budget == 5


@pytest.mark.parametrize("key", sorted(GOOD))
def test_every_key_is_required(key: str) -> None:
    error = invalid(**{key: ...})
    assert error.field == key
    assert "required key is missing" in error.message


def test_unknown_key_is_refused() -> None:
    assert invalid(is_admin=True).field == "is_admin"


@pytest.mark.parametrize("role", ["admin", "PROXY_ADMIN", None, 1])
def test_role_must_be_a_litellm_role(role: Any) -> None:
    assert invalid(user_role=role).field == "user_role"


@pytest.mark.parametrize("budget", [-1.0, math.inf, math.nan, "10", True])
def test_budget_must_be_finite_non_negative(budget: Any) -> None:
    assert invalid(max_budget=budget).field == "max_budget"


@pytest.mark.parametrize("duration", ["30", "1y", "d", "0d", "1 d", ""])
def test_duration_must_look_like_litellm(duration: str) -> None:
    assert invalid(budget_duration=duration).field == "budget_duration"


@pytest.mark.parametrize("duration", ["30s", "30m", "1h", "1d", "30d", "1mo"])
def test_litellm_durations_are_valid(duration: str) -> None:
    assert validate_values(GOOD | {"budget_duration": duration}).budget_duration == duration


@pytest.mark.parametrize("user_id", ["", "   ", None, 5])
def test_user_id_must_be_a_non_blank_string(user_id: Any) -> None:
    assert invalid(user_id=user_id).field == "user_id"


@pytest.mark.parametrize("models", ["gpt-4o", [1], [""], None])
def test_models_must_be_a_list_of_names(models: Any) -> None:
    assert invalid(models=models).field == "models"


def test_non_dict_result_is_invalid() -> None:
    with pytest.raises(ValuesInvalid, match="returned list"):
        validate_values([GOOD])


def test_policy_refuses_a_role_not_allowed() -> None:
    values = validate_values(GOOD | {"user_role": "proxy_admin"})
    with pytest.raises(ValuesRefused) as caught:
        apply_policy(values, HookPolicy(allowed_roles=["internal_user"]), set())
    assert caught.value.field == "user_role"


def test_policy_caps_the_budget() -> None:
    policy = HookPolicy(max_budget=5.0)
    with pytest.raises(ValuesRefused, match="over the cap") as caught:
        apply_policy(validate_values(GOOD), policy, set())
    assert caught.value.field == "max_budget"
    with pytest.raises(ValuesRefused, match="unlimited"):
        apply_policy(validate_values(GOOD | {"max_budget": None}), policy, set())
    assert apply_policy(validate_values(GOOD | {"max_budget": 5}), policy, set()).max_budget == 5


def test_policy_models_must_exist() -> None:
    policy = HookPolicy(models_must_exist=True)
    with pytest.raises(ValuesRefused, match="not in model_list: gpt-4o") as caught:
        apply_policy(validate_values(GOOD), policy, {"claude"})
    assert caught.value.field == "models"
    assert apply_policy(validate_values(GOOD), policy, {"gpt-4o"}).models == ["gpt-4o"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"user_id": b"admin"}, "user_id: must be a string, got bytes"),
        ({"user_email": bytearray(b"a@example.com")}, "user_email: must be a string or null, got bytearray"),
        ({"user_role": b"proxy_admin"}, "user_role: must be a string (a LitellmUserRoles value), got bytes"),
        ({"models": {"gpt-4o"}}, "models: must be a list of strings, got set"),
        ({"models": ("gpt-4o",)}, "models: must be a list of strings, got tuple"),
        ({"models": ["gpt-4o", b"gpt"]}, "models.1: must be a string, got bytes"),
        ({"max_budget": datetime(2030, 1, 1, tzinfo=UTC)}, "max_budget: must be a number or null, got datetime"),
        ({"budget_duration": timedelta(days=30)}, "budget_duration: must be a string or null, got timedelta"),
        ({"user_id": frozenset()}, "user_id: must be a string, got frozenset"),
    ],
)
def test_values_that_are_not_plain_data_name_the_field_and_type(changes: dict[str, Any], message: str) -> None:
    error = invalid(**changes)
    assert error.message == message
    assert error.field == message.partition(":")[0].partition(".")[0]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"user_id": {"nested": [b"x", {1}]}}, "user_id"),
        ({"models": [["gpt-4o", b"x"]]}, "models"),
        ({b"is_admin": True}, "<bytes>"),
        ({"user_role": "\x1b[2J"}, "user_role"),
    ],
)
def test_nested_oddities_are_invalid_not_a_crash(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValuesInvalid) as caught:
        validate_values(GOOD | changes)
    assert caught.value.field == field
