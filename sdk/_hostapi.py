"""The host API: what a hook may ask the proxy for during a login.

Inside the worker, :func:`user_info`, :func:`new_user`, :func:`add_new_member` and :func:`team_info` are async
functions with LiteLLM's call shapes; each one checks its arguments against the method's args model of
:mod:`sdk.contract`, sends them to the proxy through :func:`runner.host_call` (a blocking round trip that counts
toward the login's timeout) and returns the answer as a LiteLLM-like response object. An error the host answers
with is raised as the LiteLLM-shaped error of :data:`HOOK_ERRORS` for its code.

The wire contract itself (args and result models, error codes, LiteLLM's request types) is :mod:`sdk.contract`;
its names are also importable from here, as they were before it existed.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, ValidationError

from runner import HostCallError, host_call

from ._errors import ConflictError, HostUnavailableError, InvalidRequestError, NotFoundError, ProxyException
from ._types import LitellmUserRoles
from .contract import (
    ARGS_MODELS,
    DEFAULT_MEMBER_ROLE,
    DEFAULT_USER_ROLE,
    ERROR_TYPES,
    MAX_TEAMS,
    METHODS,
    RESULT_MODELS,
    AddMemberArgs,
    Conflict,
    HostUnavailable,
    Invalid,
    Member,
    MemberArgs,
    NewUserArgs,
    NewUserRequest,
    NewUserResponse,
    NotFound,
    TeamAddMemberResponse,
    TeamInfoArgs,
    TeamInfoResponse,
    TeamMemberAddRequest,
    TeamMemberRecord,
    TeamMembershipRecord,
    TeamRecord,
    UserInfoArgs,
    UserInfoResponse,
    UserRecord,
    check_granted,
    dump_result,
    first_error,
    parse_args,
)

__all__ = (
    "ARGS_MODELS",
    "DEFAULT_MEMBER_ROLE",
    "DEFAULT_USER_ROLE",
    "ERROR_TYPES",
    "HOOK_ERRORS",
    "MAX_TEAMS",
    "METHODS",
    "RESULT_MODELS",
    "AddMemberArgs",
    "Conflict",
    "HostUnavailable",
    "Invalid",
    "Member",
    "MemberArgs",
    "NewUserArgs",
    "NewUserRequest",
    "NewUserResponse",
    "NotFound",
    "TeamAddMemberResponse",
    "TeamInfoArgs",
    "TeamInfoResponse",
    "TeamMemberAddRequest",
    "TeamMemberRecord",
    "TeamMembershipRecord",
    "TeamRecord",
    "UserAPIKeyAuth",
    "UserInfoArgs",
    "UserInfoResponse",
    "UserRecord",
    "add_new_member",
    "check_granted",
    "dump_result",
    "new_user",
    "parse_args",
    "team_info",
    "user_info",
)

#: What a hook sees for each error code of :data:`sdk.contract.ERROR_CODES` (a code not here: a plain
#: ``ProxyException``, 500). ``PermissionError`` and ``ValueError`` arrive as those builtins (the runner
#: raises them), and are handled in :func:`_call`.
HOOK_ERRORS: Final[Mapping[str, type[ProxyException]]] = MappingProxyType(
    {
        NotFound.code: NotFoundError,
        Invalid.code: InvalidRequestError,
        "ValueError": InvalidRequestError,
        Conflict.code: ConflictError,
        HostUnavailable.code: HostUnavailableError,
    }
)


class UserAPIKeyAuth(BaseModel):
    """LiteLLM's caller identity. Accepted (and ignored) where LiteLLM's functions take
    ``user_api_key_dict``: inside hookjail a hook acts with the grants the operator gave it."""

    model_config = ConfigDict(extra="allow")

    user_id: str | None = None
    user_role: LitellmUserRoles | str | None = None
    api_key: str | None = None


# --- the worker side: what hooks call -------------------------------------------------------------------------


def _wire_args(method: str, data: Any) -> dict[str, Any]:
    """Checks a hook's arguments against the wire model before sending them (422 on a mistake)."""
    try:
        return ARGS_MODELS[method].model_validate(data).model_dump(mode="json", exclude_none=True)
    except ValidationError as exc:
        raise InvalidRequestError(f"{method}: {first_error(exc)}", code=422) from None


def _call(method: str, args: dict[str, Any]) -> Any:
    """One host call, with the host's error translated into the LiteLLM-shaped error a hook expects."""
    try:
        return host_call(method, args)
    except HostCallError as exc:
        raise _translate(exc.error_type, str(exc)) from None
    except (ValueError, TypeError) as exc:  # the host answered "ValueError"/"TypeError": the runner raised it
        raise InvalidRequestError(str(exc)) from None
    except LookupError as exc:  # "LookupError"/"KeyError"
        raise NotFoundError(str(exc)) from None


def _translate(error_type: str, message: str) -> ProxyException:
    error = HOOK_ERRORS.get(error_type)
    if error is not None:
        return error(message)
    return ProxyException(message or f"host call failed ({error_type or 'unknown error'})")


def _plain(data: Any) -> Any:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json", exclude_none=True)
    if isinstance(data, Mapping):
        return {k: _plain(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_plain(v) for v in data]
    if isinstance(data, LitellmUserRoles):
        return data.value
    return data


def _fields(data: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The wire fields of a LiteLLM request (a model or a dict); the fields hookjail does not store dropped."""
    plain = _plain(data)
    if not isinstance(plain, dict):
        raise InvalidRequestError(f"expected a request object or a dict, got {type(data).__name__}", code=422)
    return {name: plain[name] for name in names if plain.get(name) is not None}


async def user_info(user_id: str | None = None, **_ignored: Any) -> UserInfoResponse:
    """Look up a user in the proxy's database (a host call; needs the ``user_info`` grant, on by default).

    LiteLLM's call shape: ``await user_info(user_id=...)``; other keyword arguments (``request``,
    ``user_api_key_dict``) are accepted and ignored.

    Args:
        user_id: the user to look up.

    Returns:
        ``{user_id, user_info: {user_id, user_email, user_role, models, max_budget, ...}, keys: [], teams}``
        as a :class:`UserInfoResponse` (attribute or item access).

    Raises:
        NotFoundError: no such user (status 404, message ``"User <id> not found"``), as in LiteLLM.
        PermissionError: the operator did not grant ``user_info``.
        HostUnavailableError: the proxy could not answer, e.g. its database is down (503).
        InvalidRequestError: ``user_id`` is missing or not a string.

    Example:
        >>> async def custom_sso_handler(userIDPInfo):  # doctest: +SKIP
        ...     try:
        ...         existing = await user_info(user_id=userIDPInfo.id)
        ...         role = existing.user_info.user_role
        ...     except NotFoundError:
        ...         role = "internal_user"
    """
    args = _wire_args("user_info", {"user_id": user_id} if user_id is not None else {})
    return UserInfoResponse.model_validate(_call("user_info", args))


async def new_user(data: NewUserRequest | Mapping[str, Any], **_ignored: Any) -> NewUserResponse:
    """Create a user in the proxy's database (a host call; needs the ``new_user`` grant).

    Written in the login's transaction: if the login then fails, the user is not created.

    Args:
        data: a :class:`NewUserRequest` or a dict with its fields. Fields hookjail does not store are ignored.

    Returns:
        The created user as a :class:`NewUserResponse`. ``key`` is always None: hookjail issues no API keys.

    Raises:
        ConflictError: a user with this ``user_id`` already exists (409).
        InvalidRequestError: the fields are invalid (e.g. an unknown role or a bad ``budget_duration``).
        PermissionError: the operator did not grant ``new_user``.
        HostUnavailableError: the proxy could not answer, e.g. its database is down (503).

    Example:
        >>> await new_user(NewUserRequest(user_id="bob", user_role="internal_user"))  # doctest: +SKIP
    """
    args = _wire_args("new_user", _fields(data, tuple(NewUserArgs.model_fields)))
    return NewUserResponse.model_validate(_call("new_user", args))


async def add_new_member(data: TeamMemberAddRequest | Mapping[str, Any], **_ignored: Any) -> TeamAddMemberResponse:
    """Add one or more members to a team (a host call; needs the ``add_new_member`` grant).

    Args:
        data: a :class:`TeamMemberAddRequest` or a dict: ``team_id``, ``member`` (one :class:`Member` or a
            list), optional ``max_budget_in_team``.

    Returns:
        The team after the change, with ``updated_users`` and ``updated_team_memberships``.

    Raises:
        NotFoundError: the team does not exist (404).
        ConflictError: a member is already in the team (409).
        InvalidRequestError: the fields are invalid (e.g. a member with neither user id nor email).
        PermissionError: the operator did not grant ``add_new_member``.
        HostUnavailableError: the proxy could not answer, e.g. its database is down (503).

    Example:
        >>> await add_new_member(  # doctest: +SKIP
        ...     TeamMemberAddRequest(team_id="eng", member=Member(user_id="bob", role="user"))
        ... )
    """
    args = _wire_args("add_new_member", _fields(data, tuple(AddMemberArgs.model_fields)))
    return TeamAddMemberResponse.model_validate(_call("add_new_member", args))


async def team_info(team_id: str | None = None, **_ignored: Any) -> TeamInfoResponse:
    """Look up a team (a host call; needs the ``team_info`` grant).

    Args:
        team_id: the team to look up. Other keyword arguments (``http_request``, ...) are ignored.

    Returns:
        ``{team_id, team_info: {team_id, team_alias, models, members_with_roles, ...}, keys: [],
        team_memberships}`` as a :class:`TeamInfoResponse`.

    Raises:
        NotFoundError: no such team (404).
        PermissionError: the operator did not grant ``team_info``.
        HostUnavailableError: the proxy could not answer, e.g. its database is down (503).
    """
    args = _wire_args("team_info", {"team_id": team_id} if team_id is not None else {})
    return TeamInfoResponse.model_validate(_call("team_info", args))
