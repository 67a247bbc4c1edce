"""The strict validation of what a hook returns: the proxy applies exactly this before anything is written.

Hook authors get the same verdict from :func:`sdk.testing.run_hook` as a login would give.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._types import RoleName

__all__ = (
    "DURATION_PATTERN",
    "MAX_ID_LENGTH",
    "MAX_MODELS",
    "BudgetDuration",
    "UserValues",
    "ValuesInvalid",
    "error_location",
    "validate_values",
)

#: A budget duration: a number then ``s``, ``m``, ``h``, ``d`` or ``mo`` (``30s``, ``1h``, ``30d``, ``1mo``).
DURATION_PATTERN = re.compile(r"^[1-9][0-9]{0,5}(s|m|h|d|mo)$")


def _check_duration(value: str) -> str:
    if not DURATION_PATTERN.fullmatch(value):
        raise ValueError("must look like 30s, 30m, 1h, 1d, 30d or 1mo")
    return value


#: A budget period as LiteLLM writes it (``30s``, ``30m``, ``1h``, ``1d``, ``30d``, ``1mo``).
BudgetDuration = Annotated[str, AfterValidator(_check_duration)]

MAX_ID_LENGTH = 256
MAX_MODELS = 1000


class ValuesInvalid(Exception):
    """Raised when a hook's result is not a valid ``SSOUserDefinedValues``; ``field`` names the bad key."""

    outcome = "invalid"

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class UserValues(BaseModel):
    """LiteLLM's ``SSOUserDefinedValues``, strict: all six keys, nothing else, each with a usable value.

    Example:
        >>> UserValues.model_validate(
        ...     {"models": [], "user_id": "alice", "user_email": None, "user_role": "internal_user",
        ...      "max_budget": 1.5, "budget_duration": "30d"}
        ... ).user_role
        'internal_user'
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    models: Annotated[list[Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]], Field(max_length=MAX_MODELS)]
    user_id: Annotated[str, Field(max_length=MAX_ID_LENGTH)]
    user_email: Annotated[str, Field(max_length=320)] | None
    user_role: RoleName
    max_budget: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None
    budget_duration: BudgetDuration | None

    @field_validator("user_id")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


def validate_values(value: Any) -> UserValues:
    """Validate what a hook returned (plain data, as it comes out of the sandbox).

    Args:
        value: the hook's return value after the sandbox encoded it (dicts, lists, strings, numbers).

    Returns:
        The validated values.

    Raises:
        ValuesInvalid: naming the first offending field, e.g. ``"user_role: must be one of the
            LitellmUserRoles values (got 'root')"``.

    Example:
        >>> validate_values({"models": [], "user_id": "alice"})
        Traceback (most recent call last):
        ...
        sdk._values.ValuesInvalid: user_email: required key is missing
    """
    if not isinstance(value, dict):
        raise ValuesInvalid(f"the hook returned {type(value).__name__}, expected SSOUserDefinedValues", field="")
    # Unknown keys are refused before pydantic sees them: a hook returning 200,000 keys would otherwise make it
    # build 200,000 errors, in the proxy, per login.
    for key in value:
        if key not in UserValues.model_fields:
            shown = key if isinstance(key, str) and len(key) <= 80 else f"<{type(key).__name__}>"
            raise ValuesInvalid(f"{shown}: unknown key", field=str(shown))
    try:
        return UserValues.model_validate(value)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        location = ".".join(map(str, error_location(error["loc"])))
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


def _short(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and len(repr(value)) <= 80


def error_location(loc: Sequence[str | int]) -> list[str | int]:
    """The location of a pydantic error (``error["loc"]``) as the user wrote it: without the branch tags pydantic
    adds for an Optional or a Union (``"float"``, ``"str"``, ``"none"``, ``"list[str]"``, ...); list indexes are kept.

    Public as :func:`sdk.contract.error_location` (defined here, where :func:`validate_values` needs it).

    Example:
        >>> error_location(("budget", "float", 0))
        ['budget', 0]
    """
    return [part for part in loc if not _is_union_tag(part)]


def _is_union_tag(part: str | int) -> bool:
    return isinstance(part, str) and (part in ("float", "int", "str", "bool", "none") or "[" in part)
