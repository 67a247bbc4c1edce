"""Keep an existing user's admin role: look the user up with ``user_info`` (a host call) first.

New users (``user_info`` answers 404) become internal users, and so does everyone if the lookup is not
granted (never more than the default without evidence); users the proxy already knows keep their role if
it is an admin role, so promoting someone in the admin UI survives their next login. Needs the ``user_info``
grant (the default).
"""

from __future__ import annotations

from sdk import LitellmUserRoles, NotFoundError, OpenID, SSOUserDefinedValues, hook, user_info

KEPT_ROLES = frozenset({LitellmUserRoles.PROXY_ADMIN.value, LitellmUserRoles.PROXY_ADMIN_VIEW_ONLY.value})
DEFAULT_MODELS = ["gpt-4o-mini"]
ADMIN_MODELS = ["gpt-4o", "gpt-4o-mini"]


@hook
async def custom_sso_handler(userIDPInfo: OpenID) -> SSOUserDefinedValues:
    if not userIDPInfo.id:
        raise ValueError("the identity provider sent no user id")
    role = LitellmUserRoles.INTERNAL_USER.value
    try:
        existing = await user_info(user_id=userIDPInfo.id)
    except NotFoundError:
        print(f"{userIDPInfo.id} logs in for the first time")
    except PermissionError:
        # The operator took away the user_info grant: without a lookup nobody keeps an admin role.
        print("user_info is not granted: everyone gets the default role")
    else:
        if existing.user_info.user_role in KEPT_ROLES:
            role = existing.user_info.user_role
    is_admin = role in KEPT_ROLES
    return SSOUserDefinedValues(
        models=ADMIN_MODELS if is_admin else DEFAULT_MODELS,
        user_id=userIDPInfo.id,
        user_email=userIDPInfo.email,
        user_role=role,
        max_budget=100.0 if is_admin else 10.0,
        budget_duration="30d",
    )
