"""Example custom SSO handler: the seed's shape, mapping the user's email domain to a role and models.

Runs inside hookjail's sandbox: no network, no database, only this file and the Python installation readable.
Try it with ``hookjail check --config examples/config.yaml``.
"""

from __future__ import annotations

from sdk import LitellmUserRoles, OpenID, SSOUserDefinedValues

# email domain -> (role, models, max budget in USD)
DOMAINS: dict[str, tuple[LitellmUserRoles, list[str], float]] = {
    "admin.example.com": (LitellmUserRoles.PROXY_ADMIN, ["gpt-4o", "gpt-4o-mini", "claude-sonnet"], 100.0),
    "example.com": (LitellmUserRoles.INTERNAL_USER, ["gpt-4o-mini"], 10.0),
}
DEFAULT: tuple[LitellmUserRoles, list[str], float] = (LitellmUserRoles.INTERNAL_USER_VIEW_ONLY, [], 0.0)


async def custom_sso_handler(userIDPInfo: OpenID) -> SSOUserDefinedValues:
    print("inside custom sso handler")  # captured by hookjail, shown by `hookjail check`
    print(f"userIDPInfo: {userIDPInfo}")

    if userIDPInfo.id is None:
        raise ValueError(f"No ID found for user. userIDPInfo.id is None {userIDPInfo}")

    domain = (userIDPInfo.email or "").rpartition("@")[2].lower()
    role, models, budget = DOMAINS.get(domain, DEFAULT)

    return SSOUserDefinedValues(
        models=models,  # models user has access to
        user_id=userIDPInfo.id,  # user id to use in the LiteLLM DB
        user_email=userIDPInfo.email,  # user email to use in the LiteLLM DB
        user_role=role.value,  # role to use for the user
        max_budget=budget,  # max budget for this user
        budget_duration="30d",  # duration of the budget: 30s, 30m, 1h, 1d, 30d, 1mo
    )
