"""The management API: LiteLLM's user and team endpoints that hookjail has, and the hook-run log, for the
operator's scripts.

``POST /user/new``, ``GET /user/info``, ``GET /user/list``, ``POST /team/new``, ``POST /team/member_add``,
``GET /team/info``, and hookjail's own ``GET /hook/runs`` and ``GET /hook/runs/{run_id}``; every one needs
``Authorization: Bearer <master_key>`` (401 otherwise), except that the two hook-run reads also take the UI
session cookie of a signed-in ``proxy_admin`` or ``proxy_admin_viewer`` (the dashboard links an admin to the run
of their login; any other session is a 401 as before). Request and response shapes are LiteLLM's where they
overlap: fields LiteLLM has and hookjail does not store (``tpm_limit``, ``send_invite_email``, ...) are accepted
and ignored; responses carry no API keys (hookjail issues none). Bad input is a 422 naming the field (FastAPI's
``detail`` list, or LiteLLM's error body with ``param``); other errors are LiteLLM's error body
``{"error": {"message", "type", "param", "code"}}`` with 401, 404 or 409.

The master key is checked before the request body is read. FastAPI reads and parses a route's body before
its dependencies run, so a dependency alone would parse an anonymous client's body (100 MiB of JSON, or a
malformed one answered 422 rather than 401). The user and team routes are therefore built with a route class
(:class:`_MasterKeyRoute`) whose handler checks the ``Authorization`` header first and only then hands the
request to FastAPI's own handler, which reads, parses and validates the body: the endpoints keep their typed
bodies and OpenAPI schemas, and an unauthenticated request is a 401 whose body was never read. (The router's
dependency checks the key again and documents the bearer scheme in OpenAPI; the hook-run reads take no body.)
Every body is capped besides, before it is read, by :class:`proxy.web._bodylimit.BodyLimit` (413).

Inputs are bounded: ids, aliases, model names and filters are refused (422 naming the field) when they hold
control characters (NUL, CR, LF, ...) or bidirectional-text controls (U+202A-U+202E, U+2066-U+2069, ...);
``user_email`` must look like an email address (:func:`sdk.contract.email_address`); budgets are finite and not
negative and ``page`` is at most :data:`MAX_PAGE`. A 422 never echoes a number JSON cannot carry (``inf``,
``nan``): it is given as a string.

The user and team operations are the ones a hook's host calls run (:mod:`proxy._directory`), here on a
database transaction of their own. The hook runs are the ``hook_runs`` table: a failed login shows the user a
short reason and the run id, and ``GET /hook/runs/{run_id}`` shows the operator the rest (the error, what the
hook printed, its host calls) without opening the database.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError

from sdk.contract import (
    MAX_ID_LENGTH,
    MAX_MODELS,
    Budget,
    Conflict,
    Invalid,
    Member,
    NewUserRequest,
    NewUserResponse,
    NotFound,
    RequestId,
    RequestText,
    TeamAddMemberResponse,
    TeamInfoResponse,
    TeamMemberAddRequest,
    TeamRecord,
    UserInfoResponse,
    UserRecord,
    plain_text,
)

from .. import _directory
from .._db import CandidateRun, HookRun, as_utc
from .._errors import ProxyError
from .._login import ADMIN_ROLES
from ._web import DatabaseDep, signed_in, web_of

__all__ = (
    "MAX_RUNS_LISTED",
    "ApiError",
    "HookRunDetail",
    "HookRunList",
    "HookRunSummary",
    "check_master_key",
    "install_error_handlers",
    "router",
)

#: The most hook runs ``GET /hook/runs`` returns at once.
MAX_RUNS_LISTED = 200
#: The highest page ``GET /user/list`` serves (its offset stays far within the database's 64-bit integers).
MAX_PAGE = 1_000_000

#: An id as a query parameter.
QueryId = Annotated[str, Query(min_length=1, max_length=MAX_ID_LENGTH), AfterValidator(plain_text)]

_bearer = HTTPBearer(auto_error=False, description="The proxy's master key (general_settings.master_key).")


class ApiError(ProxyError):
    """Raised by a management endpoint to answer with LiteLLM's error body and an HTTP status."""

    def __init__(self, status: int, message: str, *, type: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param

    def response(self) -> JSONResponse:
        """LiteLLM's error body: ``{"error": {"message", "type", "param", "code"}}``."""
        body = {"message": self.message, "type": self.type, "param": self.param, "code": str(self.status)}
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse({"error": body}, status_code=self.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Answer :class:`ApiError` with its JSON body, and invalid input with FastAPI's 422 ``detail`` list (where
    a number JSON cannot carry, ``inf`` or ``nan``, is given as a string rather than failing as a 500)."""

    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def invalid(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse({"detail": _finite(jsonable_encoder(exc.errors()))}, status_code=422)

    app.add_exception_handler(ApiError, handle)
    app.add_exception_handler(RequestValidationError, invalid)


def check_master_key(authorization: str | None, master_key: bytes) -> None:
    """Check an ``Authorization`` header against the master key (compared in constant time).

    Raises:
        ApiError: 401, without the header or with another scheme or key.
    """
    scheme, _, credentials = (authorization or "").partition(" ")
    credentials = credentials.strip()  # as fastapi.security.HTTPBearer reads it
    if scheme.lower() != "bearer" or not credentials:
        raise ApiError(401, "Authentication Error: no Authorization: Bearer <master_key> header", type="auth_error")
    if not hmac.compare_digest(credentials.encode(), master_key):
        raise ApiError(401, "Authentication Error: invalid master key", type="auth_error")


def _finite(value: Any) -> Any:
    """``value`` with every float JSON cannot carry (infinities, NaN) replaced by its name."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_finite(item) for item in value]
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return value


# --- request bodies: the wire contract's LiteLLM request types (sdk.contract), and one of the API's own -------


class _Lax(BaseModel):
    model_config = ConfigDict(strict=False, extra="ignore", frozen=True)


class NewTeamRequest(_Lax):
    """LiteLLM's ``NewTeamRequest``: the fields hookjail stores (others are accepted and ignored)."""

    team_id: RequestId | None = None
    team_alias: RequestText | None = None
    models: Annotated[list[RequestId], Field(max_length=MAX_MODELS)] = Field(default_factory=list)
    max_budget: Budget | None = None
    members_with_roles: Annotated[list[Member], Field(max_length=100)] = Field(default_factory=list)


class UserListResponse(BaseModel):
    """LiteLLM's ``/user/list`` answer: one page of users."""

    users: list[UserRecord]
    total: int
    page: int
    page_size: int
    total_pages: int


class HookRunSummary(BaseModel):
    """One run of the hook for one login, as ``GET /hook/runs`` lists it (without its output and host calls)."""

    run_id: str = Field(description="the id the login's error page shows")
    started_at: datetime = Field(description="when the run started (UTC)")
    outcome: str = Field(
        description='"ok", or how it failed: "raised", "timeout", "crashed", "limit", "invalid", "refused", '
        '"denied" (the hook refused the user on purpose with Deny; error is its reason), ...'
    )
    duration_ms: float = Field(description="how long the hook ran")
    http_status: int | None = Field(description="the login's answer: 303 for a login granted, else the error's")
    subject: str | None = Field(description="the identity provider's id of the user")
    user_id: str | None = Field(description="the user id the login's values named (none when the hook failed)")
    email: str | None = Field(description="the identity provider's email of the user, when recorded")
    provider: str | None = Field(description="the identity provider (generic, google, microsoft)")
    error: str | None = Field(description="why the run failed (none when it did not)")
    fallback: str | None = Field(description='"idp_defaults" when the failed run was replaced by the defaults')
    host_call_count: int = Field(description="how many host calls the hook made")


class CandidateResult(BaseModel):
    """What ``hook_settings.candidate`` decided in the shadow of this login (it changed nothing)."""

    outcome: str = Field(description='"ok", or how the candidate would have failed the login')
    values: dict[str, Any] | None = Field(
        description="the values it would have granted (validated, after the policy); none unless ok"
    )
    diff: dict[str, Any] = Field(
        description='each field whose decision differs: {field: {"live": ..., "candidate": ...}}, "outcome" '
        "among them; empty when it agrees with the live hook"
    )
    duration_ms: float | None = Field(description="how long the candidate ran")
    error: str | None = Field(description="why it would have failed (none when it did not)")
    sha256: str | None = Field(description="the candidate's version (hex SHA-256 of its source)")


class HookRunDetail(HookRunSummary):
    """One run of the hook, with what it printed and its host calls (``GET /hook/runs/{run_id}``)."""

    hook_sha256: str | None = Field(description="the version of the hook that ran (hex SHA-256 of its source)")
    values: dict[str, Any] | None = Field(
        description="the values the login was granted (validated, after the policy): only when it signed in"
    )
    candidate: CandidateResult | None = Field(
        description="hook_settings.candidate's run in the shadow of this login, if one ran"
    )

    stdout: str = Field(description="what the hook printed (the first 4096 characters)")
    stderr: str = Field(description="what the hook wrote to stderr (the first 4096 characters)")
    host_calls: list[dict[str, Any]] = Field(
        description='the host calls in order: {"method", "args", "outcome", "error"?, "ms"}; the first 200 only, '
        'then {"unrecorded": n}'
    )
    extra: dict[str, Any] = Field(description="anything else recorded about the run")


class HookRunList(BaseModel):
    """The answer of ``GET /hook/runs``: the newest runs first."""

    runs: list[HookRunSummary]


def _run_fields(run: HookRun) -> dict[str, Any]:
    extra = run.extra or {}
    calls = run.host_calls or []
    email = extra.get("email")
    return {
        "run_id": run.run_id,
        "started_at": as_utc(run.started_at),
        "outcome": run.outcome,
        "duration_ms": run.duration_ms,
        "http_status": run.http_status,
        "subject": run.subject,
        "user_id": run.user_id,
        "email": email if isinstance(email, str) else None,
        "provider": run.provider,
        "error": run.error,
        "fallback": run.fallback,
        # the record ends with {"unrecorded": n} when the hook made more calls than are recorded
        "host_call_count": sum(int(call.get("unrecorded", 1)) for call in calls),
    }


def _summary(run: HookRun) -> HookRunSummary:
    """A ``hook_runs`` row as listed."""
    return HookRunSummary(**_run_fields(run))


def _detail(run: HookRun, candidate: CandidateRun | None) -> HookRunDetail:
    """A ``hook_runs`` row with everything it holds, and the candidate's run in its shadow."""
    return HookRunDetail(
        **_run_fields(run),
        stdout=run.stdout or "",
        stderr=run.stderr or "",
        host_calls=list(run.host_calls or []),
        extra=dict(run.extra or {}),
        hook_sha256=run.hook_sha256,
        values=run.decided,
        candidate=None
        if candidate is None
        else CandidateResult(
            outcome=candidate.outcome,
            values=candidate.decided,
            diff=dict(candidate.diff or {}),
            duration_ms=candidate.duration_ms,
            error=candidate.error,
            sha256=candidate.sha256,
        ),
    )


# --- the endpoints ---------------------------------------------------------------------------------------------

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or wrong master key"},
    404: {"description": "No such user or team"},
    409: {"description": "Already exists"},
    422: {"description": "Invalid input (the field is named)"},
}


async def require_master_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Dependency: ``Authorization: Bearer <master_key>``.

    Raises:
        ApiError: 401, without the header or with another key.
    """
    if credentials is None:
        raise ApiError(401, "Authentication Error: no Authorization: Bearer <master_key> header", type="auth_error")
    if not hmac.compare_digest(credentials.credentials.encode(), web_of(request).master_key):
        raise ApiError(401, "Authentication Error: invalid master key", type="auth_error")


async def require_master_key_or_admin_session(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Dependency: the master key, or the UI session of a signed-in ``proxy_admin``/``proxy_admin_viewer`` (a
    session row that still exists and has not expired, and the user's role now: a demoted admin's session no
    longer reads runs). A bearer, right or wrong, is judged alone."""
    if credentials is None:
        user = await signed_in(request, web_of(request).codec)
        if user is not None and user.role in ADMIN_ROLES:
            return
    await require_master_key(request, credentials)


class _MasterKeyRoute(APIRoute):
    """A route whose requests must carry the master key before their body is read (see the module)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        read_body_and_answer = super().get_route_handler()

        async def handler(request: Request) -> Response:
            check_master_key(request.headers.get("authorization"), web_of(request).master_key)
            return await read_body_and_answer(request)

        return handler


# the user and team routes: the key is checked before the body is read (the route class), and again by the
# dependency, which also documents the bearer scheme in OpenAPI
_directory_routes = APIRouter(
    dependencies=[Depends(require_master_key)], responses=_ERRORS, route_class=_MasterKeyRoute
)
# the hook-run reads: the master key, or an admin's UI session (the dashboard links to the login's run)
_run_reads = APIRouter(dependencies=[Depends(require_master_key_or_admin_session)], responses=_ERRORS)


@_directory_routes.post("/user/new", tags=["internal user management"], response_model=NewUserResponse)
async def user_new(body: NewUserRequest, database: DatabaseDep) -> NewUserResponse:
    """Create a user (LiteLLM's ``/user/new``; no API key is made: ``key`` is null)."""
    async with _translated(), database.transaction() as rows:
        return await _directory.new_user(rows, body)


@_directory_routes.get("/user/info", tags=["internal user management"], response_model=UserInfoResponse)
async def user_info(database: DatabaseDep, user_id: QueryId) -> UserInfoResponse:
    """A user, their teams and (always empty) keys (LiteLLM's ``/user/info``)."""
    async with _translated(), database.reader() as rows:
        return await _directory.user_info(rows, user_id)


@_directory_routes.get("/user/list", tags=["internal user management"], response_model=UserListResponse)
async def user_list(
    database: DatabaseDep,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 25,
    role: Annotated[
        str | None, Query(max_length=64, description="only users with this role"), AfterValidator(plain_text)
    ] = None,
    team: Annotated[
        str | None,
        Query(min_length=1, max_length=MAX_ID_LENGTH, description="only members of this team id"),
        AfterValidator(plain_text),
    ] = None,
    user_ids: Annotated[
        str | None,
        Query(max_length=100 * (MAX_ID_LENGTH + 1), description="only these user ids, comma-separated"),
        AfterValidator(plain_text),
    ] = None,
) -> UserListResponse:
    """One page of users, oldest first (LiteLLM's ``/user/list``)."""
    ids = [i for i in (user_ids or "").split(",") if i] or None
    async with database.reader() as rows:
        users, total = await rows.page_of_users(page=page, page_size=page_size, role=role, team_id=team, user_ids=ids)
        teams = await rows.team_ids_of_users([u.id for u in users])
    return UserListResponse(
        users=[_directory.user_record(u, teams[u.id]) for u in users],
        total=total,
        page=page,
        page_size=page_size,
        total_pages=math.ceil(total / page_size) if total else 0,
    )


@_directory_routes.post("/team/new", tags=["team management"], response_model=TeamRecord)
async def team_new(body: NewTeamRequest, database: DatabaseDep) -> TeamRecord:
    """Create a team with its first members; users that do not exist yet are created (``/team/new``)."""
    async with _translated(), database.transaction() as rows:
        return await _directory.new_team(
            rows,
            team_id=body.team_id,
            team_alias=body.team_alias,
            models=body.models,
            max_budget=body.max_budget,
            members=[m.args() for m in body.members_with_roles],
        )


@_directory_routes.post("/team/member_add", tags=["team management"], response_model=TeamAddMemberResponse)
async def team_member_add(body: TeamMemberAddRequest, database: DatabaseDep) -> TeamAddMemberResponse:
    """Add members to a team; users that do not exist yet are created (LiteLLM's ``/team/member_add``)."""
    async with _translated(), database.transaction() as rows:
        return await _directory.add_members(rows, body.args())


@_directory_routes.get("/team/info", tags=["team management"], response_model=TeamInfoResponse)
async def team_info(database: DatabaseDep, team_id: QueryId) -> TeamInfoResponse:
    """A team, its members and memberships (LiteLLM's ``/team/info``)."""
    async with _translated(), database.reader() as rows:
        return await _directory.team_info(rows, team_id)


@_run_reads.get("/hook/runs", tags=["hook runs"], response_model=HookRunList)
async def hook_runs(
    database: DatabaseDep,
    outcome: Annotated[
        str | None,
        Query(max_length=32, description='only runs with this outcome, e.g. "raised"'),
        AfterValidator(plain_text),
    ] = None,
    user_id: Annotated[
        str | None,
        Query(
            max_length=MAX_ID_LENGTH,
            description="only runs of this user: by the user id the login named, or by the identity "
            "provider's subject (a run that failed has only that)",
        ),
        AfterValidator(plain_text),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_RUNS_LISTED)] = 50,
) -> HookRunList:
    """The most recent hook runs, newest first, without their output and host calls (see
    ``/hook/runs/{run_id}``)."""
    runs = await database.recent_runs(limit, outcome=outcome, user_id=user_id)
    return HookRunList(runs=[_summary(run) for run in runs])


@_run_reads.get(
    "/hook/runs/{run_id}",
    tags=["hook runs"],
    response_model=HookRunDetail,
    responses={404: {"description": "No hook run with this id"}},
)
async def hook_run(
    database: DatabaseDep,
    run_id: Annotated[
        str,
        Path(min_length=1, max_length=64, description="the run id a login's error page shows"),
        AfterValidator(plain_text),
    ],
) -> HookRunDetail:
    """One hook run: its outcome, error, what the hook printed and its host calls."""
    run = await database.get_run(run_id)
    if run is None:
        raise ApiError(404, f"Hook run {run_id} not found", type="not_found")
    return _detail(run, await database.get_candidate(run_id))


router = APIRouter()
router.include_router(_directory_routes)
router.include_router(_run_reads)


@asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    """Turns the directory's errors into :class:`ApiError` (LiteLLM's statuses)."""
    try:
        yield
    except NotFound as exc:
        raise ApiError(404, str(exc), type="not_found") from None
    except Conflict as exc:
        raise ApiError(409, str(exc), type="conflict") from None
    except Invalid as exc:
        raise ApiError(422, str(exc), type="bad_request_error", param=str(exc).partition(":")[0]) from None
    except IntegrityError:  # created meanwhile by a login or another request
        message = "a user, team or membership in this request was created meanwhile"
        raise ApiError(409, message, type="conflict") from None
