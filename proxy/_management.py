"""The management API: LiteLLM's user and team endpoints that hookjail has, and the hook-run log, for the
operator's scripts.

``POST /user/new``, ``GET /user/info``, ``GET /user/list``, ``POST /team/new``, ``POST /team/member_add``,
``GET /team/info``, and hookjail's own ``GET /hook/runs`` and ``GET /hook/runs/{run_id}``; every one needs
``Authorization: Bearer <master_key>`` (401 otherwise). Request and response shapes are LiteLLM's where they
overlap: fields LiteLLM has and hookjail does not store (``tpm_limit``, ``send_invite_email``, ...) are accepted
and ignored; responses carry no API keys (hookjail issues none). Bad input is a 422 naming the field (FastAPI's
``detail`` list, or LiteLLM's error body with ``param``); other errors are LiteLLM's error body
``{"error": {"message", "type", "param", "code"}}`` with 401, 404 or 409.

The user and team operations are the ones a hook's host calls run (:mod:`proxy._directory`), here on a
database transaction of their own. The hook runs are the ``hook_runs`` table: a failed login shows the user a
short reason and the run id, and ``GET /hook/runs/{run_id}`` shows the operator the rest (the error, what the
hook printed, its host calls) without opening the database.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError

from sdk._hostapi import (
    AddMemberArgs,
    Conflict,
    Invalid,
    MemberArgs,
    NewUserArgs,
    NewUserResponse,
    NotFound,
    TeamAddMemberResponse,
    TeamInfoResponse,
    TeamRecord,
    UserInfoResponse,
    UserRecord,
)
from sdk._values import MAX_ID_LENGTH, MAX_MODELS

from . import _directory
from ._db import Database, HookRun, as_utc

__all__ = (
    "MAX_RUNS_LISTED",
    "ApiError",
    "HookRunDetail",
    "HookRunList",
    "HookRunSummary",
    "install_error_handlers",
    "management_router",
)

#: The most hook runs ``GET /hook/runs`` returns at once.
MAX_RUNS_LISTED = 200

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]

_bearer = HTTPBearer(auto_error=False, description="The proxy's master key (general_settings.master_key).")


class ApiError(Exception):
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
    """Answer :class:`ApiError` with its JSON body."""

    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return exc.response()

    app.add_exception_handler(ApiError, handle)


# --- request bodies: the wire contract's models, lax like LiteLLM's (extra fields accepted and ignored) -------


class _Lax(BaseModel):
    model_config = ConfigDict(strict=False, extra="ignore", frozen=True)


class NewUserRequest(NewUserArgs):
    """LiteLLM's ``NewUserRequest``: the fields hookjail stores (others are accepted and ignored)."""

    model_config = ConfigDict(strict=False, extra="ignore", frozen=True)


class MemberRequest(MemberArgs):
    """LiteLLM's ``Member``: a user id or an email (or both) and the team role "admin" or "user"."""

    model_config = ConfigDict(strict=False, extra="ignore", frozen=True)


class TeamMemberAddRequest(_Lax):
    """LiteLLM's ``TeamMemberAddRequest``: the team and one member or a list of them."""

    team_id: Id
    member: MemberRequest | Annotated[list[MemberRequest], Field(min_length=1, max_length=100)]
    max_budget_in_team: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None


class NewTeamRequest(_Lax):
    """LiteLLM's ``NewTeamRequest``: the fields hookjail stores (others are accepted and ignored)."""

    team_id: Id | None = None
    team_alias: Annotated[str, Field(max_length=MAX_ID_LENGTH)] | None = None
    models: Annotated[list[Id], Field(max_length=MAX_MODELS)] = Field(default_factory=list)
    max_budget: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    members_with_roles: Annotated[list[MemberRequest], Field(max_length=100)] = Field(default_factory=list)


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


class HookRunDetail(HookRunSummary):
    """One run of the hook, with what it printed and its host calls (``GET /hook/runs/{run_id}``)."""

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


def _detail(run: HookRun) -> HookRunDetail:
    """A ``hook_runs`` row with everything it holds."""
    return HookRunDetail(
        **_run_fields(run),
        stdout=run.stdout or "",
        stderr=run.stderr or "",
        host_calls=list(run.host_calls or []),
        extra=dict(run.extra or {}),
    )


# --- the endpoints ---------------------------------------------------------------------------------------------

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or wrong master key"},
    404: {"description": "No such user or team"},
    409: {"description": "Already exists"},
    422: {"description": "Invalid input (the field is named)"},
}


def management_router(master_key: str) -> APIRouter:
    """The management endpoints, guarded by ``master_key``."""
    expected = master_key.encode()

    async def require_master_key(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if credentials is None:
            raise ApiError(401, "Authentication Error: no Authorization: Bearer <master_key> header", type="auth_error")
        if not hmac.compare_digest(credentials.credentials.encode(), expected):
            raise ApiError(401, "Authentication Error: invalid master key", type="auth_error")

    router = APIRouter(dependencies=[Depends(require_master_key)], responses=_ERRORS)

    def database(request: Request) -> Database:
        db: Database = request.app.state.database
        return db

    @router.post("/user/new", tags=["internal user management"], response_model=NewUserResponse)
    async def user_new(body: NewUserRequest, request: Request) -> NewUserResponse:
        """Create a user (LiteLLM's ``/user/new``; no API key is made: ``key`` is null)."""
        async with _translated(), database(request).transaction() as rows:
            return await _directory.new_user(rows, body)

    @router.get("/user/info", tags=["internal user management"], response_model=UserInfoResponse)
    async def user_info(request: Request, user_id: Annotated[str, Query(min_length=1)]) -> UserInfoResponse:
        """A user, their teams and (always empty) keys (LiteLLM's ``/user/info``)."""
        async with _translated(), database(request).reader() as rows:
            return await _directory.user_info(rows, user_id)

    @router.get("/user/list", tags=["internal user management"], response_model=UserListResponse)
    async def user_list(
        request: Request,
        page: Annotated[int, Query(ge=1)] = 1,
        page_size: Annotated[int, Query(ge=1, le=100)] = 25,
        role: Annotated[str | None, Query(description="only users with this role")] = None,
        team: Annotated[str | None, Query(description="only members of this team id")] = None,
        user_ids: Annotated[str | None, Query(description="only these user ids, comma-separated")] = None,
    ) -> UserListResponse:
        """One page of users, oldest first (LiteLLM's ``/user/list``)."""
        ids = [i for i in (user_ids or "").split(",") if i] or None
        async with database(request).reader() as rows:
            users, total = await rows.page_of_users(
                page=page, page_size=page_size, role=role, team_id=team, user_ids=ids
            )
            teams = await rows.team_ids_of_users([u.id for u in users])
        return UserListResponse(
            users=[_directory.user_record(u, teams[u.id]) for u in users],
            total=total,
            page=page,
            page_size=page_size,
            total_pages=math.ceil(total / page_size) if total else 0,
        )

    @router.post("/team/new", tags=["team management"], response_model=TeamRecord)
    async def team_new(body: NewTeamRequest, request: Request) -> TeamRecord:
        """Create a team with its first members; users that do not exist yet are created (``/team/new``)."""
        async with _translated(), database(request).transaction() as rows:
            return await _directory.new_team(
                rows,
                team_id=body.team_id,
                team_alias=body.team_alias,
                models=body.models,
                max_budget=body.max_budget,
                members=[_member(m) for m in body.members_with_roles],
            )

    @router.post("/team/member_add", tags=["team management"], response_model=TeamAddMemberResponse)
    async def team_member_add(body: TeamMemberAddRequest, request: Request) -> TeamAddMemberResponse:
        """Add members to a team; users that do not exist yet are created (LiteLLM's ``/team/member_add``)."""
        members = body.member if isinstance(body.member, list) else [body.member]
        args = AddMemberArgs(
            team_id=body.team_id, member=[_member(m) for m in members], max_budget_in_team=body.max_budget_in_team
        )
        async with _translated(), database(request).transaction() as rows:
            return await _directory.add_members(rows, args)

    @router.get("/team/info", tags=["team management"], response_model=TeamInfoResponse)
    async def team_info(request: Request, team_id: Annotated[str, Query(min_length=1)]) -> TeamInfoResponse:
        """A team, its members and memberships (LiteLLM's ``/team/info``)."""
        async with _translated(), database(request).reader() as rows:
            return await _directory.team_info(rows, team_id)

    @router.get("/hook/runs", tags=["hook runs"], response_model=HookRunList)
    async def hook_runs(
        request: Request,
        outcome: Annotated[
            str | None, Query(max_length=32, description='only runs with this outcome, e.g. "raised"')
        ] = None,
        user_id: Annotated[
            str | None,
            Query(
                max_length=MAX_ID_LENGTH,
                description="only runs of this user: by the user id the login named, or by the identity "
                "provider's subject (a run that failed has only that)",
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_RUNS_LISTED)] = 50,
    ) -> HookRunList:
        """The most recent hook runs, newest first, without their output and host calls (see
        ``/hook/runs/{run_id}``)."""
        runs = await database(request).recent_runs(limit, outcome=outcome, user_id=user_id)
        return HookRunList(runs=[_summary(run) for run in runs])

    @router.get(
        "/hook/runs/{run_id}",
        tags=["hook runs"],
        response_model=HookRunDetail,
        responses={404: {"description": "No hook run with this id"}},
    )
    async def hook_run(
        request: Request,
        run_id: Annotated[str, Path(min_length=1, max_length=64, description="the run id a login's error page shows")],
    ) -> HookRunDetail:
        """One hook run: its outcome, error, what the hook printed and its host calls."""
        run = await database(request).get_run(run_id)
        if run is None:
            raise ApiError(404, f"Hook run {run_id} not found", type="not_found")
        return _detail(run)

    return router


def _member(member: MemberRequest) -> MemberArgs:
    return MemberArgs(role=member.role, user_id=member.user_id, user_email=member.user_email)


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
