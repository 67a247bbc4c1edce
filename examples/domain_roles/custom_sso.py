"""Email domain -> role and models, with a budget per role.

The user's email domain picks a role (unknown domains get a view-only role); the role decides the models and
the monthly budget. Subdomains count as their parent domain (``eng.example.com`` is ``example.com``) unless
listed themselves.

    hookjail check --config examples/domain_roles/config.yaml --openid '{"id": "ada", "email": "ada@admin.example.com"}'
"""

from __future__ import annotations

from dataclasses import dataclass

from sdk import LitellmUserRoles, OpenID, SSOUserDefinedValues, hook


@dataclass(frozen=True)
class Grant:
    """What one role gets."""

    models: tuple[str, ...]
    max_budget: float
    budget_duration: str = "30d"


ROLE_BY_DOMAIN: dict[str, LitellmUserRoles] = {
    "admin.example.com": LitellmUserRoles.PROXY_ADMIN,
    "example.com": LitellmUserRoles.INTERNAL_USER,
    "partner.example.org": LitellmUserRoles.INTERNAL_USER_VIEW_ONLY,
}
DEFAULT_ROLE = LitellmUserRoles.INTERNAL_USER_VIEW_ONLY

GRANT_BY_ROLE: dict[LitellmUserRoles, Grant] = {
    LitellmUserRoles.PROXY_ADMIN: Grant(models=("gpt-4o", "gpt-4o-mini", "claude-sonnet"), max_budget=100.0),
    LitellmUserRoles.INTERNAL_USER: Grant(models=("gpt-4o-mini", "claude-sonnet"), max_budget=20.0),
    LitellmUserRoles.INTERNAL_USER_VIEW_ONLY: Grant(models=(), max_budget=0.0),
}


def role_for(email: str | None) -> LitellmUserRoles:
    """The role for an email address: its domain, or the nearest listed parent domain."""
    domain = (email or "").rpartition("@")[2].lower()
    while domain:
        if domain in ROLE_BY_DOMAIN:
            return ROLE_BY_DOMAIN[domain]
        domain = domain.partition(".")[2]
    return DEFAULT_ROLE


@hook
async def custom_sso_handler(userIDPInfo: OpenID) -> SSOUserDefinedValues:
    if not userIDPInfo.id:
        raise ValueError("the identity provider sent no user id")
    role = role_for(userIDPInfo.email)
    grant = GRANT_BY_ROLE[role]
    return SSOUserDefinedValues(
        models=list(grant.models),
        user_id=userIDPInfo.id,
        user_email=userIDPInfo.email,
        user_role=role.value,
        max_budget=grant.max_budget,
        budget_duration=grant.budget_duration,
    )
