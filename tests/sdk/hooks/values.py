"""Hooks returning values the proxy accepts or refuses."""

from __future__ import annotations

from typing import Any, cast

from sdk import LitellmUserRoles, OpenID, SSOUserDefinedValues


def _good(user: OpenID) -> dict[str, Any]:
    return {
        "models": ["gpt-4o-mini"],
        "user_id": user.id,
        "user_email": user.email,
        "user_role": LitellmUserRoles.INTERNAL_USER,
        "max_budget": 10,
        "budget_duration": "30d",
    }


def returns_good_values(user: OpenID) -> SSOUserDefinedValues:
    print(f"hello {user.id}")
    return cast(SSOUserDefinedValues, _good(user))


async def returns_unknown_role(user: OpenID) -> dict[str, Any]:
    return {**_good(user), "user_role": "root"}


async def returns_extra_key(user: OpenID) -> dict[str, Any]:
    return {**_good(user), "is_admin": True}


async def returns_bad_duration(user: OpenID) -> dict[str, Any]:
    return {**_good(user), "budget_duration": "forever"}


async def raises(user: OpenID) -> dict[str, Any]:
    raise RuntimeError(f"no entry for {user.id}")
