"""The hook's result, validated strictly as ``SSOUserDefinedValues``, then checked against the operator's
policy.

Nothing a hook returns is written or turned into a session before it passes both steps here. The policy
refuses rather than clamps (a budget over the cap, a role not allowed, an unknown model): silently changing what
the operator's hook decided would hide its bug, and the refusal names the field. ``user_role: None`` is refused
too (LiteLLM's TypedDict allows it, but a login needs a role).
"""

from __future__ import annotations

from collections.abc import Set

# The validation itself is the SDK's, so that hook authors' tests (sdk.testing) give the proxy's verdict.
from sdk._values import DURATION_PATTERN, UserValues, ValuesInvalid, validate_values

from ._config import HookPolicy

__all__ = (
    "DURATION_PATTERN",
    "UserValues",
    "ValuesInvalid",
    "ValuesRefused",
    "apply_policy",
    "idp_defaults",
    "validate_values",
)


class ValuesRefused(Exception):
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
