"""A hook written against LiteLLM's and fastapi-sso's modules, reporting what they resolved to."""

from __future__ import annotations

import json
import sys

from fastapi_sso.sso.base import OpenID
from litellm.proxy._types import LitellmUserRoles, NewUserRequest, ProxyException, SSOUserDefinedValues  # type: ignore[import-not-found]
from litellm.proxy.management_endpoints.internal_user_endpoints import new_user, user_info  # type: ignore[import-not-found]
from litellm.proxy.management_endpoints.team_endpoints import add_new_member, team_info  # type: ignore[import-not-found]

import sdk


async def custom_sso_handler(userIDPInfo: OpenID) -> SSOUserDefinedValues:
    print(
        json.dumps(
            {
                "argument_type": type(userIDPInfo).__name__,
                "argument_is_openid": isinstance(userIDPInfo, sdk.OpenID),
                "email_attribute": userIDPInfo.email,
                "dumped": userIDPInfo.model_dump(),
                "same_functions": [
                    user_info is sdk.user_info,
                    new_user is sdk.new_user,
                    add_new_member is sdk.add_new_member,
                    team_info is sdk.team_info,
                ],
                "same_types": [
                    NewUserRequest is sdk.NewUserRequest,
                    ProxyException is sdk.ProxyException,
                    LitellmUserRoles is sdk.LitellmUserRoles,
                ],
                "modules": sorted(name for name in sys.modules if name.startswith(("litellm", "fastapi_sso"))),
            }
        )
    )
    return SSOUserDefinedValues(
        models=[],
        user_id=userIDPInfo.id or "",
        user_email=userIDPInfo.email,
        user_role=LitellmUserRoles.INTERNAL_USER.value,
        max_budget=0.01,
        budget_duration="1d",
    )
