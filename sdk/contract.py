"""The contract between a sandboxed hook and the proxy: the host calls, their arguments, answers and errors.

Both sides import this module: the SDK inside the worker (:mod:`sdk`'s ``user_info`` and friends check their
arguments with it before sending them) and the proxy, which answers: :func:`check_granted` refuses what the
operator did not grant, :func:`parse_args` checks what a hook sent against ``ARGS_MODELS[method]`` (strict,
unknown keys refused), :func:`dump_result` shapes the answer with ``RESULT_MODELS[method]``, and an error is
answered by raising one of the classes of :data:`ERROR_CODES`.

========================  =========================================  =======================================
method                    args (one model per request)               result
========================  =========================================  =======================================
``user_info``             :class:`UserInfoArgs` ``{user_id}``        :class:`UserInfoResponse`
``new_user``              :class:`NewUserArgs`                       :class:`NewUserResponse` (``key``: None)
``add_new_member``        :class:`AddMemberArgs` ``{team_id,         :class:`TeamAddMemberResponse`
                          member: MemberArgs | [MemberArgs], ...}``
``team_info``             :class:`TeamInfoArgs` ``{team_id}``        :class:`TeamInfoResponse`
========================  =========================================  =======================================

LiteLLM's own request types, as a hook builds them and as the proxy's management API reads them
(``POST /user/new``, ``POST /team/member_add``), are defined here once: :class:`NewUserRequest` is
:class:`NewUserArgs` read the lax way (coercion allowed, LiteLLM's other fields accepted and ignored) with
the input bounds of :func:`plain_text` and :func:`email_address`; :class:`Member` is :class:`MemberArgs`
likewise; :class:`TeamMemberAddRequest` carries :class:`Member` objects.

Errors travel as a code, never as a Python class name: :data:`ERROR_CODES` is the table, and renaming a class
does not change the wire. What the hook sees for each code:

========================  ===============================================================================
code                      raised in the hook
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

The host-side errors are subclasses of :class:`runner.HostCallError` that carry their code, which is what the
runner sends; a builtin (``PermissionError``, ``ValueError``) is sent under its own name.
"""

from __future__ import annotations

import re
from collections.abc import Container, Mapping
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from runner import HostCallError

from ._types import RoleName
from ._values import (
    DURATION_PATTERN,
    MAX_ID_LENGTH,
    MAX_MODELS,
    BudgetDuration,
    UserValues,
    ValuesInvalid,
    error_location,
    validate_values,
)

__all__ = (
    "ADAPTER",
    "ARGS_MODELS",
    "DEFAULT_MEMBER_ROLE",
    "DEFAULT_USER_ROLE",
    "DURATION_PATTERN",
    "ERROR_CODES",
    "ERROR_TYPES",
    "MAX_ID_LENGTH",
    "MAX_MEMBERS",
    "MAX_MODELS",
    "MAX_TEAMS",
    "METHODS",
    "RESULT_MODELS",
    "AddMemberArgs",
    "Budget",
    "BudgetDuration",
    "Conflict",
    "HostUnavailable",
    "Invalid",
    "Member",
    "MemberArgs",
    "NewUserArgs",
    "NewUserRequest",
    "NewUserResponse",
    "NotFound",
    "RequestEmail",
    "RequestId",
    "RequestText",
    "RoleName",
    "TeamAddMemberResponse",
    "TeamInfoArgs",
    "TeamInfoResponse",
    "TeamMemberAddRequest",
    "TeamMemberRecord",
    "TeamMembershipRecord",
    "TeamRecord",
    "TeamRole",
    "UserInfoArgs",
    "UserInfoResponse",
    "UserRecord",
    "UserValues",
    "ValuesInvalid",
    "check_granted",
    "dump_result",
    "email_address",
    "error_code",
    "error_location",
    "first_error",
    "parse_args",
    "plain_text",
    "validate_values",
)

#: The runner's ``HookSpec.adapter`` for SSO hooks: run inside the worker on the call's argument (the plain
#: dict of the user's OpenID), so that handlers receive an ``OpenID`` object.
ADAPTER: Final = "sdk._worker:openid_from_dict"

MAX_TEAMS = 100
MAX_MEMBERS = 100

_Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
_Email = Annotated[str, Field(min_length=1, max_length=320)]
Budget = Annotated[float, Field(ge=0, allow_inf_nan=False)]
TeamRole = Literal["admin", "user"]

#: The role of a user ``new_user`` creates without one: LiteLLM's least-privileged UI role.
DEFAULT_USER_ROLE: Final = "internal_user_viewer"
#: The role of a user created because they were added to a team before they existed (as LiteLLM does).
DEFAULT_MEMBER_ROLE: Final = "internal_user"


# --- host-side errors: raise these in the proxy's host handler ------------------------------------------------


class _HostError(HostCallError):
    """A contract error: the runner sends its :attr:`code` (see :data:`ERROR_CODES`) as the reply's error type."""

    code: ClassVar[str]

    def __init__(self, message: str) -> None:
        super().__init__(message, error_type=self.code)


class NotFound(_HostError, LookupError):
    """Raised by the host when the user or team named in a host call does not exist (code "NotFound")."""

    code = "NotFound"


class Invalid(_HostError, ValueError):
    """Raised by the host when a host call's arguments are refused (code "Invalid")."""

    code = "Invalid"


class Conflict(_HostError):
    """Raised by the host when a host call would create what already exists (code "Conflict")."""

    code = "Conflict"


class HostUnavailable(_HostError):
    """Raised by the host when it cannot answer a host call for a reason of its own, such as its database
    (code "HostUnavailable"); the message must not reveal the host's internals."""

    code = "HostUnavailable"


#: The codes a host may answer with, and the exception it raises for each: the wire's error types.
ERROR_CODES: Final[Mapping[str, type[Exception]]] = MappingProxyType(
    {
        "PermissionError": PermissionError,
        NotFound.code: NotFound,
        Invalid.code: Invalid,
        "ValueError": ValueError,
        Conflict.code: Conflict,
        HostUnavailable.code: HostUnavailable,
    }
)
#: The codes alone.
ERROR_TYPES: Final = tuple(ERROR_CODES)
_CODE_OF_CLASS: Final = {error: code for code, error in ERROR_CODES.items()}


def error_code(exc: BaseException) -> str:
    """Return the wire code of ``exc``: that of the nearest of its classes in :data:`ERROR_CODES`, else its
    class name (a code the hook sees as a plain ``ProxyException``).

    Example:
        >>> error_code(NotFound("User alice not found")), error_code(PermissionError("no"))
        ('NotFound', 'PermissionError')
    """
    for cls in type(exc).__mro__:
        code = _CODE_OF_CLASS.get(cls)
        if code is not None:
            return code
    return type(exc).__name__


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

    user_id: _Id


class TeamInfoArgs(_Wire):
    """Args of ``team_info``: the team to look up."""

    team_id: _Id


class NewUserArgs(_Wire):
    """Args of ``new_user``: the user to create (LiteLLM's ``NewUserRequest`` fields that hookjail stores).

    ``user_id`` defaults to a fresh id chosen by the host. ``teams`` are team ids the user joins as "user".
    """

    user_id: _Id | None = None
    user_email: _Email | None = None
    user_alias: Annotated[str, Field(max_length=MAX_ID_LENGTH)] | None = None
    user_role: RoleName | None = None
    models: Annotated[list[_Id], Field(max_length=MAX_MODELS)] = Field(default_factory=list)
    max_budget: Budget | None = None
    budget_duration: BudgetDuration | None = None
    teams: Annotated[list[_Id], Field(max_length=MAX_TEAMS)] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


class MemberArgs(_Wire):
    """One team member on the wire: a user id or an email (or both) and a team role."""

    role: TeamRole = "user"
    user_id: _Id | None = None
    user_email: _Email | None = None

    @model_validator(mode="after")
    def _someone(self) -> MemberArgs:
        if self.user_id is None and self.user_email is None:
            raise ValueError("a member needs a user_id or a user_email")
        return self


class AddMemberArgs(_Wire):
    """Args of ``add_new_member``: the team and one member or a list of them."""

    team_id: _Id
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
        raise Invalid(f"{method}: {first_error(exc)}") from None


def dump_result(method: str, value: Any) -> dict[str, Any]:
    """Shape an answer (a result model or a dict) with the method's result model, as plain data (host side).

    Raises:
        KeyError: ``method`` is not a host call.
        pydantic.ValidationError: ``value`` does not have the result's shape (a bug in the host).
    """
    return RESULT_MODELS[method].model_validate(value).model_dump(mode="json")


def first_error(exc: ValidationError) -> str:
    """The first error of ``exc`` in one line: the field's dotted path, then what is wrong with it."""
    error = exc.errors()[0]
    location = ".".join(map(str, error_location(error["loc"])))
    message = "unknown argument" if error["type"] == "extra_forbidden" else error["msg"]
    return f"{location}: {message}" if location else message


# --- LiteLLM's request types: built by hooks, read by the management API -----------------------------------

# C0 and C1 controls (NUL, CR, LF, ESC, ...), the bidirectional-text marks, embeddings, overrides and
# isolates (U+061C, U+200E-U+200F, U+202A-U+202E, U+2066-U+2069) and the line and paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# an email address: a dot-atom local part (no quoted strings, no comments) and a domain of two or more labels
# of letters, digits and inner hyphens (internationalized letters allowed)
_EMAIL_LOCAL = re.compile(r"[\w!#$%&'*+/=?^`{|}~-]+(?:\.[\w!#$%&'*+/=?^`{|}~-]+)*")
_EMAIL_LABEL = re.compile(r"[^\W_](?:(?:[^\W_]|-){0,61}[^\W_])?")


def plain_text(value: str) -> str:
    """Refuse text with control characters or bidirectional-text controls (they forge log lines and names).

    Raises:
        ValueError: ``value`` holds one.
    """
    if _UNSAFE.search(value):
        raise ValueError("must not contain control characters (NUL, CR, LF, ...) or bidirectional-text controls")
    return value


def email_address(value: str) -> str:
    """Refuse what is not an email address (``name@example.com``); the same check as pydantic's ``EmailStr``
    minus its normalization and its refusal of special-use domains (an intranet's ``.local`` is fine).

    Raises:
        ValueError: ``value`` is not an email address.
    """
    plain_text(value)
    local, at, domain = value.rpartition("@")
    labels = domain.split(".")
    if not (
        at
        and len(local) <= 64
        and len(domain) <= 253
        and _EMAIL_LOCAL.fullmatch(local)
        and len(labels) >= 2
        and all(_EMAIL_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    ):
        raise ValueError("must be an email address like name@example.com")
    return value


#: An id in a request (user, team, model): 1 to 256 characters, no control characters.
RequestId = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH), AfterValidator(plain_text)]
#: A name or a filter in a request: at most 256 characters, no control characters.
RequestText = Annotated[str, Field(max_length=MAX_ID_LENGTH), AfterValidator(plain_text)]
#: An email address in a request (at most 320 characters).
RequestEmail = Annotated[str, Field(min_length=3, max_length=320), AfterValidator(email_address)]

_LAX = ConfigDict(strict=False, extra="ignore", frozen=False)


def _default_when_none(value: Any, default: Any) -> Any:
    # LiteLLM's request types default their lists and dicts to None; hookjail's to empty ones.
    return default if value is None else value


class NewUserRequest(NewUserArgs):
    """LiteLLM's ``NewUserRequest``: the user ``new_user`` creates (a hook's host call, or ``POST /user/new``).

    :class:`NewUserArgs` read the lax way, with the management API's input bounds. Fields hookjail does not
    store (``tpm_limit``, ``send_invite_email``, ...) are accepted and ignored.

    Example:
        >>> NewUserRequest(user_id="bob", user_role="internal_user", models=["gpt-4o"]).user_id
        'bob'
    """

    model_config = _LAX

    user_id: RequestId | None = None
    user_email: RequestEmail | None = None
    user_alias: RequestText | None = None
    models: Annotated[list[RequestId], Field(max_length=MAX_MODELS)] = Field(default_factory=list)
    max_budget: Budget | None = None
    teams: Annotated[list[RequestId], Field(max_length=MAX_TEAMS)] = Field(default_factory=list)

    @field_validator("models", "teams", mode="before")
    @classmethod
    def _list_when_none(cls, value: Any) -> Any:
        return _default_when_none(value, [])

    @field_validator("metadata", mode="before")
    @classmethod
    def _dict_when_none(cls, value: Any) -> Any:
        return _default_when_none(value, {})


class Member(MemberArgs):
    """LiteLLM's ``Member``: one team member, by user id or email (or both), with the team role "admin" or
    "user"; :class:`MemberArgs` read the lax way, with the management API's input bounds."""

    model_config = _LAX

    user_id: RequestId | None = None
    user_email: RequestEmail | None = None

    def args(self) -> MemberArgs:
        """The member as the wire carries it."""
        return MemberArgs(role=self.role, user_id=self.user_id, user_email=self.user_email)


class TeamMemberAddRequest(BaseModel):
    """LiteLLM's ``TeamMemberAddRequest``: the team and one member or a list of them (a hook's
    ``add_new_member``, or ``POST /team/member_add``)."""

    model_config = _LAX

    team_id: RequestId
    member: Member | Annotated[list[Member], Field(min_length=1, max_length=MAX_MEMBERS)]
    max_budget_in_team: Budget | None = None

    @property
    def members(self) -> list[Member]:
        """``member`` as a list."""
        return self.member if isinstance(self.member, list) else [self.member]

    def args(self) -> AddMemberArgs:
        """The request as the wire carries it."""
        return AddMemberArgs(
            team_id=self.team_id,
            member=[member.args() for member in self.members],
            max_budget_in_team=self.max_budget_in_team,
        )
