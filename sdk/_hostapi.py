"""The host API: what a hook may ask the proxy for during a login, and the one wire contract both sides use.

Inside the worker, :func:`user_info`, :func:`new_user`, :func:`add_new_member` and :func:`team_info` are async
functions with LiteLLM's call shapes; each one checks its arguments against the method's args model, sends
them to the proxy through :func:`runner.host_call` (a blocking round trip that counts toward the login's
timeout) and returns the answer as a LiteLLM-like response object.

The proxy imports this module to answer: :func:`parse_args` checks what a hook sent against
``ARGS_MODELS[method]`` (strict, unknown keys refused), :func:`dump_result` shapes the answer with
``RESULT_MODELS[method]``, and an error is answered by raising :class:`NotFound`, :class:`Invalid`,
:class:`Conflict` or :class:`PermissionError` (the runner sends the exception's class name as the error type).

========================  =========================================  =======================================
method                    args                                       result
========================  =========================================  =======================================
``user_info``             :class:`UserInfoArgs` ``{user_id}``        :class:`UserInfoResponse`
``new_user``              :class:`NewUserArgs`                       :class:`NewUserResponse` (``key``: None)
``add_new_member``        :class:`AddMemberArgs` ``{team_id,         :class:`TeamAddMemberResponse`
                          member: Member | [Member], ...}``
``team_info``             :class:`TeamInfoArgs` ``{team_id}``        :class:`TeamInfoResponse`
========================  =========================================  =======================================

Error types the host may answer with, and what the hook sees:

========================  ===============================================================================
error type                raised in the hook
========================  ===============================================================================
``"PermissionError"``     :class:`PermissionError`: not a host call, or not granted (message from
                          :func:`check_granted`, the same in the proxy and in :class:`~sdk.testing.FakeHost`)
``"NotFound"``            :class:`~sdk.NotFoundError` (404)
``"Invalid"``,            :class:`~sdk.InvalidRequestError` (400)
``"ValueError"``
``"Conflict"``            :class:`~sdk.ConflictError` (409)
``"HostUnavailable"``     :class:`~sdk.HostUnavailableError` (503): the proxy could not answer for a reason
                          of its own (its database); the details are in the proxy's log, not in the message
anything else             :class:`~sdk.ProxyException` (500)
========================  ===============================================================================
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from runner import HostCallError, host_call

from ._errors import ConflictError, HostUnavailableError, InvalidRequestError, NotFoundError, ProxyException
from ._types import LitellmUserRoles, RoleName
from ._values import DURATION_PATTERN, MAX_ID_LENGTH, MAX_MODELS

__all__ = (
    "ARGS_MODELS",
    "DEFAULT_MEMBER_ROLE",
    "DEFAULT_USER_ROLE",
    "ERROR_TYPES",
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

MAX_TEAMS = 100
MAX_MEMBERS = 100

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
Email = Annotated[str, Field(min_length=1, max_length=320)]
Budget = Annotated[float, Field(ge=0, allow_inf_nan=False)]
TeamRole = Literal["admin", "user"]

#: The role of a user ``new_user`` creates without one: LiteLLM's least-privileged UI role.
DEFAULT_USER_ROLE: Final = "internal_user_viewer"
#: The role of a user created because they were added to a team before they existed (as LiteLLM does).
DEFAULT_MEMBER_ROLE: Final = "internal_user"


# --- host-side errors: raise these in the proxy's host handler ------------------------------------------------


class NotFound(LookupError):  # the class name is the wire's error type
    """Raised by the host when the user or team named in a host call does not exist (error type "NotFound")."""


class Invalid(ValueError):  # the class name is the wire's error type
    """Raised by the host when a host call's arguments are refused (error type "Invalid")."""


class Conflict(Exception):  # the class name is the wire's error type
    """Raised by the host when a host call would create what already exists (error type "Conflict")."""


class HostUnavailable(Exception):  # the class name is the wire's error type
    """Raised by the host when it cannot answer a host call for a reason of its own, such as its database
    (error type "HostUnavailable"); the message must not reveal the host's internals."""


#: The error types a host may answer with (the name of the exception it raised).
ERROR_TYPES: Final = ("PermissionError", "NotFound", "Invalid", "ValueError", "Conflict", "HostUnavailable")


def check_granted(method: str, grants: Container[str]) -> None:
    """Refuse a host call that does not exist or that the operator did not grant (host side).

    The proxy and :class:`~sdk.testing.FakeHost` both call this first, so a hook sees the same refusal,
    word for word, in its tests and in production.

    Args:
        method: the method the hook asked for.
        grants: the granted methods (``hook_settings.permissions``).

    Raises:
        PermissionError: ``method`` is not a host call, or it is not in ``grants``.

    Example:
        >>> check_granted("user_info", {"user_info"})
        >>> try:
        ...     check_granted("new_user", {"user_info"})
        ... except PermissionError as exc:
        ...     str(exc).endswith("must add new_user to hook_settings.permissions in config.yaml")
        True
    """
    if method not in METHODS:
        raise PermissionError(_unknown_method(method))
    if method not in grants:
        raise PermissionError(
            f"host call {method!r} is not granted to this hook: the operator must add {method} to "
            "hook_settings.permissions in config.yaml"
        )


def _unknown_method(method: str) -> str:
    return f"there is no host call named {method[:64]!r} (host calls: {', '.join(METHODS)})"


# --- the wire: what a hook sends (strict, unknown keys refused) -----------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class UserInfoArgs(_Wire):
    """Args of ``user_info``: the user to look up."""

    user_id: Id


class TeamInfoArgs(_Wire):
    """Args of ``team_info``: the team to look up."""

    team_id: Id


class NewUserArgs(_Wire):
    """Args of ``new_user``: the user to create (LiteLLM's ``NewUserRequest`` fields that hookjail stores).

    ``user_id`` defaults to a fresh id chosen by the host. ``teams`` are team ids the user joins as "user".
    """

    user_id: Id | None = None
    user_email: Email | None = None
    user_alias: Annotated[str, Field(max_length=MAX_ID_LENGTH)] | None = None
    user_role: RoleName | None = None
    models: Annotated[list[Id], Field(max_length=MAX_MODELS)] = Field(default_factory=list)
    max_budget: Budget | None = None
    budget_duration: str | None = None
    teams: Annotated[list[Id], Field(max_length=MAX_TEAMS)] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("budget_duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and not DURATION_PATTERN.fullmatch(value):
            raise ValueError("must look like 30s, 30m, 1h, 1d, 30d or 1mo")
        return value


class MemberArgs(_Wire):
    """One team member on the wire: a user id or an email (or both) and a team role."""

    role: TeamRole = "user"
    user_id: Id | None = None
    user_email: Email | None = None

    @model_validator(mode="after")
    def _someone(self) -> MemberArgs:
        if self.user_id is None and self.user_email is None:
            raise ValueError("a member needs a user_id or a user_email")
        return self


class AddMemberArgs(_Wire):
    """Args of ``add_new_member``: the team and one member or a list of them."""

    team_id: Id
    member: MemberArgs | Annotated[list[MemberArgs], Field(min_length=1, max_length=MAX_MEMBERS)]
    max_budget_in_team: Budget | None = None

    @property
    def members(self) -> list[MemberArgs]:
        """``member`` as a list."""
        return self.member if isinstance(self.member, list) else [self.member]


# --- the results: what the host answers (plain data shaped by these models) -----------------------------------


class _Response(BaseModel):
    """A response object: attribute access like LiteLLM's models, and ``r["key"]`` / ``r.get("key")`` as for
    the dicts some LiteLLM versions return."""

    model_config = ConfigDict(extra="allow")

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self.model_dump()

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when there is no such field."""
        return getattr(self, key, default)


class UserRecord(_Response):
    """A user as the proxy stores it (LiteLLM's ``LiteLLM_UserTable`` fields that hookjail has)."""

    user_id: str
    user_email: str | None = None
    user_alias: str | None = None
    user_role: str | None = None
    models: list[str] = Field(default_factory=list)
    max_budget: float | None = None
    budget_duration: str | None = None
    spend: float = 0.0
    teams: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


class TeamMemberRecord(_Response):
    """One entry of a team's ``members_with_roles``."""

    user_id: str | None = None
    user_email: str | None = None
    role: str = "user"


class TeamRecord(_Response):
    """A team as the proxy stores it (LiteLLM's ``LiteLLM_TeamTable`` fields that hookjail has)."""

    team_id: str
    team_alias: str | None = None
    models: list[str] = Field(default_factory=list)
    max_budget: float | None = None
    members_with_roles: list[TeamMemberRecord] = Field(default_factory=list)


class TeamMembershipRecord(_Response):
    """A user's membership of a team (LiteLLM's ``LiteLLM_TeamMembership``)."""

    user_id: str
    team_id: str
    spend: float = 0.0
    max_budget_in_team: float | None = None


class UserInfoResponse(_Response):
    """The answer to ``user_info``: LiteLLM's ``UserInfoResponse``. hookjail has no API keys: ``keys`` is
    always empty."""

    user_id: str
    user_info: UserRecord
    keys: list[Any] = Field(default_factory=list)
    teams: list[TeamRecord] = Field(default_factory=list)


class NewUserResponse(_Response):
    """The answer to ``new_user``: LiteLLM's ``NewUserResponse`` without a key (hookjail issues no API keys,
    so ``key`` is always None)."""

    key: None = None
    user_id: str
    user_email: str | None = None
    user_alias: str | None = None
    user_role: str | None = None
    models: list[str] = Field(default_factory=list)
    max_budget: float | None = None
    budget_duration: str | None = None
    teams: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


class TeamAddMemberResponse(TeamRecord):
    """The answer to ``add_new_member``: the team after the change, and the users and memberships touched."""

    updated_users: list[UserRecord] = Field(default_factory=list)
    updated_team_memberships: list[TeamMembershipRecord] = Field(default_factory=list)


class TeamInfoResponse(_Response):
    """The answer to ``team_info``: LiteLLM's shape (``keys`` always empty)."""

    team_id: str
    team_info: TeamRecord
    keys: list[Any] = Field(default_factory=list)
    team_memberships: list[TeamMembershipRecord] = Field(default_factory=list)


ARGS_MODELS: Final[Mapping[str, type[_Wire]]] = {
    "user_info": UserInfoArgs,
    "new_user": NewUserArgs,
    "add_new_member": AddMemberArgs,
    "team_info": TeamInfoArgs,
}
RESULT_MODELS: Final[Mapping[str, type[_Response]]] = {
    "user_info": UserInfoResponse,
    "new_user": NewUserResponse,
    "add_new_member": TeamAddMemberResponse,
    "team_info": TeamInfoResponse,
}
#: Every host call a hook can make (``hook_settings.permissions`` grants a subset).
METHODS: Final = tuple(ARGS_MODELS)


def parse_args(method: str, args: Any) -> _Wire:
    """Check a host call's arguments against the method's args model (host side).

    Raises:
        PermissionError: ``method`` is not a host call at all.
        Invalid: the arguments do not match (the message names the field).

    Example:
        >>> parse_args("user_info", {"user_id": "alice"})
        UserInfoArgs(user_id='alice')
    """
    model = ARGS_MODELS.get(method)
    if model is None:
        raise PermissionError(_unknown_method(method))
    try:
        return model.model_validate(args)
    except ValidationError as exc:
        raise Invalid(f"{method}: {_first_error(exc)}") from None


def dump_result(method: str, value: Any) -> dict[str, Any]:
    """Shape an answer (a result model or a dict) with the method's result model, as plain data (host side).

    Raises:
        KeyError: ``method`` is not a host call.
        pydantic.ValidationError: ``value`` does not have the result's shape (a bug in the host).
    """
    return RESULT_MODELS[method].model_validate(value).model_dump(mode="json")


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    location = ".".join(str(part) for part in error["loc"] if isinstance(part, int) or "[" not in part)
    message = "unknown argument" if error["type"] == "extra_forbidden" else error["msg"]
    return f"{location}: {message}" if location else message


# --- LiteLLM's request types, as hooks build them ------------------------------------------------------------


class _Request(BaseModel):
    # LiteLLM's request models have many more fields than hookjail stores: they are accepted and not sent.
    model_config = ConfigDict(extra="allow")


class NewUserRequest(_Request):
    """LiteLLM's ``NewUserRequest``: the user :func:`new_user` creates.

    Fields hookjail does not store (``tpm_limit``, ``send_invite_email``, ...) are accepted and ignored.

    Example:
        >>> NewUserRequest(user_id="bob", user_role=LitellmUserRoles.INTERNAL_USER, models=["gpt-4o"]).user_id
        'bob'
    """

    user_id: str | None = None
    user_email: str | None = None
    user_alias: str | None = None
    user_role: LitellmUserRoles | str | None = None
    models: list[str] = Field(default_factory=list)
    max_budget: float | None = None
    budget_duration: str | None = None
    teams: list[str] | None = None
    metadata: dict[str, Any] | None = None


class Member(_Request):
    """LiteLLM's ``Member``: one team member, by user id or email, with the team role "admin" or "user"."""

    role: TeamRole = "user"
    user_id: str | None = None
    user_email: str | None = None


class TeamMemberAddRequest(_Request):
    """LiteLLM's ``TeamMemberAddRequest``: who :func:`add_new_member` adds to which team."""

    team_id: str
    member: Member | list[Member]
    max_budget_in_team: float | None = None


class UserAPIKeyAuth(_Request):
    """LiteLLM's caller identity. Accepted (and ignored) where LiteLLM's functions take
    ``user_api_key_dict``: inside hookjail a hook acts with the grants the operator gave it."""

    user_id: str | None = None
    user_role: LitellmUserRoles | str | None = None
    api_key: str | None = None


# --- the worker side: what hooks call -------------------------------------------------------------------------


def _wire_args(method: str, data: Any) -> dict[str, Any]:
    """Checks a hook's arguments against the wire model before sending them (422 on a mistake)."""
    try:
        return ARGS_MODELS[method].model_validate(data).model_dump(mode="json", exclude_none=True)
    except ValidationError as exc:
        raise InvalidRequestError(f"{method}: {_first_error(exc)}", code=422) from None


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
    if error_type == "NotFound":
        return NotFoundError(message)
    if error_type in ("Invalid", "ValueError"):
        return InvalidRequestError(message)
    if error_type == "Conflict":
        return ConflictError(message)
    if error_type == "HostUnavailable":
        return HostUnavailableError(message)
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
