"""The hook's result, validated strictly as ``SSOUserDefinedValues``, then checked against the operator's
policy.

Nothing a hook returns is written or turned into a session before it passes both steps here. The policy
refuses rather than clamps (a budget over the cap, a role not allowed, an unknown model): silently changing what
the operator's hook decided would hide its bug, and the refusal names the field. ``user_role: None`` is refused
too (LiteLLM's TypedDict allows it, but a login needs a role).
"""

from __future__ import annotations

import re
from collections.abc import Set
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._config import HookPolicy, RoleName

__all__ = (
    "DURATION_PATTERN",
    "UserValues",
    "ValuesInvalid",
    "ValuesRefused",
    "apply_policy",
    "idp_defaults",
    "validate_values",
)

DURATION_PATTERN = re.compile(r"^[1-9][0-9]{0,5}(s|m|h|d|mo)$")

MAX_ID_LENGTH = 256
MAX_MODELS = 1000


class ValuesInvalid(Exception):
    """Raised when the hook's result is not a valid ``SSOUserDefinedValues``; ``field`` names the bad key."""

    outcome = "invalid"

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ValuesRefused(Exception):
    """Raised when valid values break the operator's policy or ``ui_access_mode``; ``field`` names the key."""

    outcome = "refused"

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class UserValues(BaseModel):
    """LiteLLM's ``SSOUserDefinedValues``, strict: all six keys, nothing else, each with a usable value."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    models: Annotated[list[Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]], Field(max_length=MAX_MODELS)]
    user_id: Annotated[str, Field(max_length=MAX_ID_LENGTH)]
    user_email: Annotated[str, Field(max_length=320)] | None
    user_role: RoleName
    max_budget: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None
    budget_duration: str | None

    @field_validator("user_id")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("budget_duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and not DURATION_PATTERN.fullmatch(value):
            raise ValueError("must look like 30s, 30m, 1h, 1d, 30d or 1mo")
        return value


def idp_defaults(user_id: str, email: str | None) -> UserValues:
    """LiteLLM's values for a user no hook decided about: a view-only internal user with no models."""
    return UserValues(
        models=[],
        user_id=user_id,
        user_email=email,
        user_role="internal_user_viewer",
        max_budget=None,
        budget_duration=None,
    )


def validate_values(value: Any) -> UserValues:
    """Validate what the hook returned (already plain msgpack data).

    Raises:
        ValuesInvalid: naming the first offending field.
    """
    if not isinstance(value, dict):
        raise ValuesInvalid(f"the hook returned {type(value).__name__}, expected SSOUserDefinedValues", field="")
    try:
        return UserValues.model_validate(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        location = ".".join(str(part) for part in error["loc"] if not _is_union_tag(part))
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif error["type"] == "literal_error":
            message = "must be one of the LitellmUserRoles values"
        given = error.get("input")
        if error["type"] not in ("missing", "extra_forbidden") and _short(given):
            message += f" (got {given!r})"
        raise ValuesInvalid(f"{location}: {message}", field=location.split(".")[0]) from None


def apply_policy(values: UserValues, policy: HookPolicy, model_names: Set[str]) -> UserValues:
    """Check validated values against ``hook_settings.policy``; values pass unchanged or are refused.

    Raises:
        ValuesRefused: naming the field that breaks the policy.
    """
    if policy.allowed_roles is not None and values.user_role not in policy.allowed_roles:
        raise ValuesRefused(f"user_role: {values.user_role!r} is not an allowed role", field="user_role")
    if policy.max_budget is not None:
        if values.max_budget is None:
            raise ValuesRefused(
                f"max_budget: unlimited, but the policy caps it at {policy.max_budget:g}", field="max_budget"
            )
        if values.max_budget > policy.max_budget:
            raise ValuesRefused(
                f"max_budget: {values.max_budget:g} is over the cap of {policy.max_budget:g}",
                field="max_budget",
            )
    if policy.models_must_exist:
        unknown = sorted(set(values.models) - set(model_names))
        if unknown:
            raise ValuesRefused(f"models: not in model_list: {', '.join(unknown)}", field="models")
    return values


def _short(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and len(repr(value)) <= 80


def _is_union_tag(part: str | int) -> bool:
    return isinstance(part, str) and (part in ("float", "int", "str", "bool", "none") or "[" in part)
