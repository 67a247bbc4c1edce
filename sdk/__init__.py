"""What hook authors import: the types of LiteLLM's custom SSO handler contract and the host API.

A handler receives the user's :class:`OpenID` and returns :class:`SSOUserDefinedValues`. During the call it
may ask the proxy about users and teams with :func:`user_info`, :func:`team_info`, :func:`new_user` and
:func:`add_new_member` (each needs the operator's grant in ``hook_settings.permissions``; only ``user_info``
is granted by default). To refuse a login on purpose, with a reason the user reads on the error page, raise
:class:`Deny`. Test a hook through the real sandbox with :mod:`sdk.testing`. The wire contract between a
hook and the proxy (host calls, their models and error codes) is :mod:`sdk.contract`.

Example:
    >>> from sdk import OpenID, SSOUserDefinedValues, LitellmUserRoles, hook
    >>> @hook
    ... async def custom_sso_handler(userIDPInfo: OpenID) -> SSOUserDefinedValues:
    ...     return SSOUserDefinedValues(
    ...         models=[],
    ...         user_id=userIDPInfo.id or "",
    ...         user_email=userIDPInfo.email,
    ...         user_role=LitellmUserRoles.INTERNAL_USER.value,
    ...         max_budget=0.01,
    ...         budget_duration="1d",
    ...     )
"""

from __future__ import annotations

from ._deny import Deny as Deny
from ._errors import ConflictError as ConflictError
from ._errors import HostUnavailableError as HostUnavailableError
from ._errors import InvalidRequestError as InvalidRequestError
from ._errors import NotFoundError as NotFoundError
from ._errors import ProxyException as ProxyException
from ._hook import hook as hook
from ._hostapi import add_new_member as add_new_member
from ._hostapi import new_user as new_user
from ._hostapi import team_info as team_info
from ._hostapi import user_info as user_info
from ._types import LitellmUserRoles as LitellmUserRoles
from ._types import OpenID as OpenID
from ._types import SSOUserDefinedValues as SSOUserDefinedValues
from ._values import UserValues as UserValues
from ._values import ValuesInvalid as ValuesInvalid
from ._values import validate_values as validate_values
from .contract import Member as Member
from .contract import NewUserRequest as NewUserRequest
from .contract import NewUserResponse as NewUserResponse
from .contract import TeamAddMemberResponse as TeamAddMemberResponse
from .contract import TeamInfoResponse as TeamInfoResponse
from .contract import TeamMemberAddRequest as TeamMemberAddRequest
from .contract import UserInfoResponse as UserInfoResponse

__all__ = (
    "ConflictError",
    "Deny",
    "HostUnavailableError",
    "InvalidRequestError",
    "LitellmUserRoles",
    "Member",
    "NewUserRequest",
    "NewUserResponse",
    "NotFoundError",
    "OpenID",
    "ProxyException",
    "SSOUserDefinedValues",
    "TeamAddMemberResponse",
    "TeamInfoResponse",
    "TeamMemberAddRequest",
    "UserInfoResponse",
    "UserValues",
    "ValuesInvalid",
    "add_new_member",
    "hook",
    "new_user",
    "team_info",
    "user_info",
    "validate_values",
)
