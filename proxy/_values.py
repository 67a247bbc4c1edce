"""The hook's result, validated strictly as ``SSOUserDefinedValues``, then checked against the operator's
policy.

Nothing a hook returns is written or turned into a session before it passes both steps here. The policy
refuses rather than clamps (a budget over the cap, a role not allowed, an unknown model): silently changing what
the operator's hook decided would hide its bug, and the refusal names the field. ``user_role: None`` is refused
too (LiteLLM's TypedDict allows it, but a login needs a role).

Values that are not plain data (bytes — msgpack can carry them —, sets, datetimes, ...) are ``invalid`` naming
the field and the type (``user_id: must be a string, got bytes``), checked here before the SDK's validation.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any

# The validation itself is the SDK's, so that hook authors' tests (sdk.testing) give the proxy's verdict.
from sdk.contract import DURATION_PATTERN, UserValues, ValuesInvalid
from sdk.contract import validate_values as _sdk_validate_values

from ._config import HookPolicy
from ._errors import ProxyError

__all__ = (
    "DURATION_PATTERN",
    "UserValues",
    "ValuesInvalid",
    "ValuesRefused",
    "apply_policy",
    "idp_defaults",
    "validate_values",
)


#: What each key must hold, as said when it holds something that is not plain data.
_EXPECTED = {
    "models": "a list of strings",
    "user_id": "a string",
    "user_email": "a string or null",
    "user_role": "a string (a LitellmUserRoles value)",
    "max_budget": "a number or null",
    "budget_duration": "a string or null",
}
_PLAIN = (str, bool, int, float, list, dict, type(None))


def validate_values(value: Any) -> UserValues:
    """Validate what a hook returned as strict ``SSOUserDefinedValues`` (see :func:`sdk.validate_values`),
    first refusing values of types that are not plain data with a message naming the field and the type.

    Raises:
        ValuesInvalid: naming the first offending field, e.g. ``"user_id: must be a string, got bytes"``.
    """
    if isinstance(value, dict):
        for key, expected in _EXPECTED.items():
            if key not in value:
                continue
            item = value[key]
            if not isinstance(item, _PLAIN):
                raise ValuesInvalid(f"{key}: must be {expected}, got {type(item).__name__}", field=key)
            if key == "models" and isinstance(item, list):
                for index, model in enumerate(item):
                    if not isinstance(model, _PLAIN):
                        raise ValuesInvalid(
                            f"models.{index}: must be a string, got {type(model).__name__}", field="models"
                        )
    return _sdk_validate_values(value)


class ValuesRefused(ProxyError):
    """Raised when valid values break the operator's policy or ``ui_access_mode``; ``field`` names the key."""

    outcome = "refused"

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


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


def apply_policy(
    values: UserValues, policy: HookPolicy, model_names: Set[str], *, check_role: bool = True
) -> UserValues:
    """Check validated values against ``hook_settings.policy``; values pass unchanged or are refused.

    Args:
        values: the validated values (after the login's identity overrides).
        policy: ``hook_settings.policy``.
        model_names: the ``model_name`` of every ``model_list`` entry.
        check_role: check ``allowed_roles`` (``False`` only for the role ``PROXY_ADMIN_ID`` gave the
            identity provider's admin: the operator's choice, not the hook's).

    Raises:
        ValuesRefused: naming the field that breaks the policy.
    """
    if check_role and policy.allowed_roles is not None and values.user_role not in policy.allowed_roles:
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
