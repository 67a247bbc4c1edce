"""The database: an async engine, the migrations, and the reads and writes of logins and the management API.

A successful login is one transaction: the writes its hook's host calls staged (new users, memberships), the
user upsert, the hook run and the session. A failed login writes only its hook run.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import ColumnElement, Connection, create_engine, delete, event, func, or_, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from .._errors import ProxyError
from ._models import CandidateRun, HookRun, HookVersion, LoginInput, Team, TeamMember, UISession, User

__all__ = (
    "CandidateRecord",
    "Database",
    "IdentityMismatch",
    "LoginRecord",
    "RunRecord",
    "SessionRows",
    "StagedWrites",
    "VersionRecord",
    "normalize_url",
    "utcnow",
)

_T = TypeVar("_T")

#: How old a successful or failed ping ``/health`` reports may be, in seconds.
HEALTH_MAX_AGE = 1.0
#: How long a SQLite write waits for another process's write lock (in a worker thread, never on the loop).
BUSY_TIMEOUT_MS = 5000
#: SQLite commits between two WAL checkpoints (made in a worker thread; see _SQLiteWriter).
CHECKPOINT_EVERY = 200

MIGRATIONS = Path(__file__).with_name("migrations")
_MIGRATION_LOCK = 0x686F6F6B6A61696C  # "hookjail"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes: they were stored as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def normalize_url(url: str, base: Path) -> str:
    """Turn a LiteLLM-style database URL into an async SQLAlchemy one.

    ``sqlite:///rel.db`` becomes ``sqlite+aiosqlite:///<base>/rel.db``; ``postgresql://`` (or ``postgres://``)
    becomes ``postgresql+asyncpg://``.
    """
    parsed = make_url(url)
    driver = parsed.drivername
    if driver in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif driver == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    if parsed.drivername.startswith("sqlite") and parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        if not path.is_absolute():
            parsed = parsed.set(database=str((base / path).resolve()))
    return parsed.render_as_string(hide_password=False)


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """What is recorded about one hook run."""

    run_id: str
    started_at: datetime
    outcome: str
    duration_ms: float
    subject: str | None
    provider: str | None
    user_id: str | None = None
    error: str | None = None
    fallback: str | None = None
    stdout: str = ""
    stderr: str = ""
    http_status: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    host_calls: list[dict[str, Any]] = field(default_factory=list)
    #: the hook version that served the run
    hook_sha256: str | None = None
    #: the values granted (validated, after the policy), on a run that signed someone in
    decided: dict[str, Any] | None = None
    #: the OpenID the hook saw, kept as a :class:`LoginInput` when ``hook_settings.record_inputs`` is on
    openid: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class CandidateRecord:
    """What is recorded about the candidate's run in the shadow of one login (see :class:`CandidateRun`)."""

    run_id: str
    started_at: datetime
    sha256: str | None
    outcome: str
    decided: dict[str, Any] | None
    diff: dict[str, Any]
    duration_ms: float | None
    error: str | None = None

    @property
    def agrees(self) -> bool:
        return not self.diff


@dataclass(frozen=True, kw_only=True)
class VersionRecord:
    """A hook version being loaded (see :class:`HookVersion`)."""

    sha256: str
    file: str
    function: str
    sources: dict[str, str] | None
    loaded_by: str


@dataclass(frozen=True, kw_only=True)
class StagedWrites:
    """What a login's host calls wrote, kept out of the database until the login commits.

    Attributes:
        teams: new teams (transient rows; no host call creates teams today).
        users: new users (transient rows), in the order they were created.
        memberships: new team memberships (transient rows); their teams and users exist or are staged.
    """

    teams: Sequence[Team] = ()
    users: Sequence[User] = ()
    memberships: Sequence[TeamMember] = ()


@dataclass(frozen=True, kw_only=True)
class LoginRecord:
    """The validated values of a successful login and the session it grants."""

    user_id: str
    email: str | None
    role: str
    models: list[str]
    max_budget: float | None
    budget_duration: str | None
    provider: str | None
    session_id: str
    session_expires_at: datetime
    #: the identity provider's account that signed in (its issuer and ``sub``): the user is bound to it
    idp_issuer: str | None = None
    idp_subject: str | None = None


class IdentityMismatch(ProxyError):
    """Raised by :meth:`Database.complete_login` (nothing written) when the user is bound to another
    identity-provider account than the login's, or the login has no subject and the user is bound."""

    def __init__(self, user_id: str, bound_issuer: str | None) -> None:
        super().__init__(f"user {user_id!r} is bound to another identity-provider account")
        self.user_id = user_id
        self.bound_issuer = bound_issuer


class Database:
    """The proxy's database (SQLite file by default, PostgreSQL for several replicas)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(url)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            database = self.engine.url.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._last_ping: tuple[float, bool] | None = None  # (when, whether it answered) of the last ping
        self._ping_lock = anyio.Lock()
        on_file = self.engine.dialect.name == "sqlite" and self.engine.url.database not in (None, "", ":memory:")
        self._writer = _SQLiteWriter(self.engine) if on_file else None

    async def _write(self, work: Callable[[Session], _T]) -> _T:
        """Run ``work`` in one write transaction, committed when it returns (rolled back if it raises).

        On PostgreSQL it runs on the async engine. On SQLite the whole transaction runs in one worker thread,
        one transaction at a time: a login's commit costs one hop off the event loop instead of one per
        statement, so it does not stretch while the loop is busy, and writers queue here rather than in
        SQLite's busy handler, which sleeps in steps of up to 100 ms.
        """
        try:
            if self._writer is not None:
                return await self._writer.run(work)
            async with self._sessions.begin() as session:
                return await session.run_sync(work)
        except Exception:
            self._last_ping = None  # fresher news than the last ping: the next health check pings again
            raise

    async def upgrade(self) -> None:
        """Bring the schema to the newest migration (run at start; a no-op when already there)."""
        async with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # replicas starting together migrate one after the other (released at commit)
                await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            await connection.run_sync(_upgrade)

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
        if self._writer is not None:
            self._writer.close()

    async def ping(self) -> bool:
        """Whether the database answers."""
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def recently_pinged(self, max_age: float = HEALTH_MAX_AGE) -> bool:
        """Whether the database answered a ping at most ``max_age`` seconds ago, pinging it if no ping is that
        recent; callers arriving together share one ping. ``/health`` uses it: a load balancer polling every
        few milliseconds costs one query per ``max_age``, not one per poll. Only an answer is remembered: after a
        failed ping, or a write that failed since the last ping, the next call pings again."""
        last = self._last_ping
        if last is not None and last[1] and anyio.current_time() - last[0] < max_age:
            return True
        async with self._ping_lock:
            last = self._last_ping
            if last is None or not last[1] or anyio.current_time() - last[0] >= max_age:
                answered = await self.ping()
                last = self._last_ping = (anyio.current_time(), answered)
        return last[1]

    async def record_run(self, run: RunRecord) -> None:
        """Record a hook run on its own (a failed login changes nothing else)."""
        await self._write(lambda session: session.add_all(_run_rows(run)))

    async def complete_login(self, login: LoginRecord, run: RunRecord, staged: StagedWrites | None = None) -> None:
        """In one transaction: the hook's staged writes, the user upsert with the validated values, the run
        and the session. If any of it fails (e.g. a user the hook created was created meanwhile by someone
        else), none of it is written.

        The user is bound to the login's identity-provider account (``idp_issuer``, ``idp_subject``) when it
        is not bound yet (a new user, one created by the management API or a host call, one from before the
        binding existed); a user bound to another account is not touched.

        Raises:
            IdentityMismatch: the user is bound to another identity-provider account.
        """
        await self._write(lambda session: _complete_login(session, login, run, staged))

    async def get_user(self, user_id: str) -> User | None:
        """The user with this id, if any."""
        async with self._sessions() as session:
            return await session.get(User, user_id)

    async def get_session(self, session_id: str) -> UISession | None:
        """The UI session with this id, if it exists (it may have expired)."""
        async with self._sessions() as session:
            return await session.get(UISession, session_id)

    async def delete_session(self, session_id: str) -> None:
        """Revoke a UI session."""
        await self._write(lambda session: session.execute(delete(UISession).where(UISession.id == session_id)))

    async def get_run(self, run_id: str) -> HookRun | None:
        """The hook run with this id, if any."""
        async with self._sessions() as session:
            return await session.get(HookRun, run_id)

    async def latest_login_run(self, user_id: str) -> HookRun | None:
        """The hook run of this user's most recent successful login: the newest run that named ``user_id`` and
        signed someone in (HTTP 303; with ``on_failure: idp_defaults`` that may be a failed run whose
        ``fallback`` says the identity provider's defaults were used instead)."""
        query = (
            select(HookRun)
            .where(HookRun.user_id == user_id, HookRun.http_status == 303)
            .order_by(HookRun.started_at.desc(), HookRun.run_id.desc())
            .limit(1)
        )
        async with self._sessions() as session:
            return (await session.scalars(query)).first()

    async def recent_runs(
        self, limit: int = 50, *, outcome: str | None = None, user_id: str | None = None
    ) -> list[HookRun]:
        """The newest hook runs first.

        Args:
            limit: the most runs to return.
            outcome: only runs with this outcome ("ok", "raised", "timeout", ...).
            user_id: only runs of this user: the runs whose values named this user id, and the runs whose
                identity-provider subject it is (a run that failed before naming a user has only the subject).
        """
        query = select(HookRun)
        if outcome is not None:
            query = query.where(HookRun.outcome == outcome)
        if user_id is not None:
            query = query.where(or_(HookRun.user_id == user_id, HookRun.subject == user_id))
        query = query.order_by(HookRun.started_at.desc(), HookRun.run_id.desc()).limit(limit)
        async with self._sessions() as session:
            return list(await session.scalars(query))

    async def search_runs(
        self,
        limit: int = 50,
        *,
        outcome: str | None = None,
        user_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[HookRun]:
        """The newest hook runs first, filtered as :meth:`recent_runs` and by when they started (``since``
        inclusive, ``until`` exclusive; aware datetimes). The admin console's run list."""
        conditions = _run_conditions(outcome=outcome, user_id=user_id, since=since, until=until)
        query = (
            select(HookRun).where(*conditions).order_by(HookRun.started_at.desc(), HookRun.run_id.desc()).limit(limit)
        )
        async with self._sessions() as session:
            return list(await session.scalars(query))

    async def run_timings(
        self,
        limit: int = 5000,
        *,
        outcome: str | None = None,
        user_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[tuple[datetime, float]]:
        """``(started_at, duration_ms)`` of the newest ``limit`` runs matching the filters (as
        :meth:`search_runs`), oldest first: the latency chart's data, without the runs' output."""
        conditions = _run_conditions(outcome=outcome, user_id=user_id, since=since, until=until)
        query = (
            select(HookRun.started_at, HookRun.duration_ms)
            .where(*conditions)
            .order_by(HookRun.started_at.desc(), HookRun.run_id.desc())
            .limit(limit)
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [(as_utc(started), float(duration)) for started, duration in reversed(rows)]

    # --- rollout: versions, candidate runs, recorded inputs ------------------------------------------------

    async def record_version(self, version: VersionRecord) -> None:
        """Keep a hook version the proxy loaded (a version loaded again is counted, its source kept once)."""
        try:
            await self._write(lambda session: _record_version(session, version))
        except IntegrityError:  # another replica inserted it meanwhile: count this load on its row
            await self._write(lambda session: _record_version(session, version))

    async def get_version(self, sha256: str) -> HookVersion | None:
        """The version whose SHA-256 is or starts with ``sha256`` (at least 8 hex digits; ``None`` if none or
        several match)."""
        if len(sha256) < 8:
            return None
        query = select(HookVersion).where(HookVersion.sha256.startswith(sha256.lower(), autoescape=True)).limit(2)
        async with self._sessions() as session:
            found = list(await session.scalars(query))
        return found[0] if len(found) == 1 else None

    async def versions(self) -> list[tuple[HookVersion, dict[str, int]]]:
        """Every version kept, newest load first, with its runs counted by outcome."""
        counts: dict[str, dict[str, int]] = {}
        query = (
            select(HookRun.hook_sha256, HookRun.outcome, func.count())
            .where(HookRun.hook_sha256.is_not(None))
            .group_by(HookRun.hook_sha256, HookRun.outcome)
        )
        async with self._sessions() as session:
            for sha256, outcome, count in (await session.execute(query)).all():
                counts.setdefault(str(sha256), {})[outcome] = int(count)
            versions = await session.scalars(
                select(HookVersion).order_by(HookVersion.last_loaded_at.desc(), HookVersion.sha256)
            )
            return [(version, counts.get(version.sha256, {})) for version in versions]

    async def record_candidate(self, record: CandidateRecord) -> None:
        """Keep the candidate's run in the shadow of a login."""
        row = CandidateRun(
            run_id=record.run_id,
            started_at=record.started_at,
            sha256=record.sha256,
            outcome=record.outcome,
            decided=record.decided,
            diff=record.diff,
            agrees=record.agrees,
            duration_ms=record.duration_ms,
            error=record.error,
        )
        await self._write(lambda session: session.add(row))

    async def get_candidate(self, run_id: str) -> CandidateRun | None:
        """The candidate's run in the shadow of the login whose run is ``run_id``, if it ran."""
        async with self._sessions() as session:
            return await session.get(CandidateRun, run_id)

    async def recent_candidates(self, limit: int = 200) -> list[tuple[CandidateRun, HookRun | None]]:
        """The newest candidate runs first, each with its login's run."""
        query = (
            select(CandidateRun, HookRun)
            .join(HookRun, HookRun.run_id == CandidateRun.run_id, isouter=True)
            .order_by(CandidateRun.started_at.desc(), CandidateRun.run_id.desc())
            .limit(limit)
        )
        async with self._sessions() as session:
            return [(candidate, run) for candidate, run in (await session.execute(query)).all()]

    async def recorded_inputs(self, last: int) -> list[tuple[LoginInput, HookRun]]:
        """The newest ``last`` recorded login inputs, each with the run it fed, newest first."""
        query = (
            select(LoginInput, HookRun)
            .join(HookRun, HookRun.run_id == LoginInput.run_id)
            .order_by(LoginInput.recorded_at.desc(), LoginInput.run_id.desc())
            .limit(last)
        )
        async with self._sessions() as session:
            return [(entry, run) for entry, run in (await session.execute(query)).all()]

    async def purge_inputs(self, before: datetime) -> int:
        """Delete the login inputs recorded before ``before``; how many were deleted."""

        def purge(session: Session) -> int:
            result = session.execute(delete(LoginInput).where(LoginInput.recorded_at < _stored_time(before)))
            return int(getattr(result, "rowcount", 0) or 0)

        return await self._write(purge)

    def session(self) -> AsyncSession:
        """A new ORM session."""
        return self._sessions()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SessionRows]:
        """Users and teams in one transaction, committed on exit (rolled back on an exception)."""
        async with self._sessions.begin() as session:
            yield SessionRows(session)

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[SessionRows]:
        """Users and teams for reading (nothing is committed)."""
        async with self._sessions() as session:
            yield SessionRows(session)


class SessionRows:
    """Users and teams read from and inserted into one ORM session (see :class:`proxy._directory.Rows`)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def user(self, user_id: str) -> User | None:
        """The user with this id."""
        return await self.session.get(User, user_id)

    async def user_by_email(self, email: str) -> User | None:
        """The oldest user with this email (compared case-insensitively)."""
        query = select(User).where(func.lower(User.email) == email.lower()).order_by(User.created_at, User.id).limit(1)
        return (await self.session.scalars(query)).first()

    async def users(self, user_ids: Sequence[str]) -> dict[str, User]:
        """The users with these ids that exist."""
        if not user_ids:
            return {}
        found = await self.session.scalars(select(User).where(User.id.in_(set(user_ids))))
        return {user.id: user for user in found}

    async def team(self, team_id: str) -> Team | None:
        """The team with this id."""
        return await self.session.get(Team, team_id)

    async def memberships_of_user(self, user_id: str) -> list[TeamMember]:
        """The user's team memberships, oldest first."""
        query = (
            select(TeamMember).where(TeamMember.user_id == user_id).order_by(TeamMember.created_at, TeamMember.team_id)
        )
        return list(await self.session.scalars(query))

    async def memberships_of_team(self, team_id: str) -> list[TeamMember]:
        """The team's memberships, oldest first."""
        query = (
            select(TeamMember).where(TeamMember.team_id == team_id).order_by(TeamMember.created_at, TeamMember.user_id)
        )
        return list(await self.session.scalars(query))

    async def add(self, row: User | Team | TeamMember) -> None:
        """Insert a row (flushed, so the reads above see it)."""
        self.session.add(row)
        await self.session.flush()

    async def page_of_users(
        self,
        *,
        page: int,
        page_size: int,
        role: str | None = None,
        team_id: str | None = None,
        user_ids: Sequence[str] | None = None,
    ) -> tuple[list[User], int]:
        """One page of users, oldest first, and how many match in all."""
        query = select(User)
        if user_ids is not None:
            query = query.where(User.id.in_(set(user_ids)))
        if role is not None:
            query = query.where(User.role == role)
        if team_id is not None:
            query = query.where(User.id.in_(select(TeamMember.user_id).where(TeamMember.team_id == team_id)))
        total = await self.session.scalar(select(func.count()).select_from(query.subquery()))
        found = await self.session.scalars(
            query.order_by(User.created_at, User.id).offset((page - 1) * page_size).limit(page_size)
        )
        return list(found), int(total or 0)

    async def team_ids_of_users(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        """user id -> the ids of the teams they are in, oldest membership first."""
        teams: dict[str, list[str]] = {user_id: [] for user_id in user_ids}
        if not user_ids:
            return teams
        query = (
            select(TeamMember)
            .where(TeamMember.user_id.in_(set(user_ids)))
            .order_by(TeamMember.created_at, TeamMember.team_id)
        )
        for membership in await self.session.scalars(query):
            teams[membership.user_id].append(membership.team_id)
        return teams

    async def page_of_teams(
        self, *, page: int, page_size: int, members_shown: int = 20
    ) -> tuple[list[tuple[Team, int, list[TeamMember]]], int]:
        """One page of teams, oldest first, each with its member count and its first ``members_shown``
        memberships (oldest first); and how many teams there are in all. The admin console's team list."""
        total = await self.session.scalar(select(func.count()).select_from(Team))
        teams = list(
            await self.session.scalars(
                select(Team).order_by(Team.created_at, Team.id).offset((page - 1) * page_size).limit(page_size)
            )
        )
        found: list[tuple[Team, int, list[TeamMember]]] = []
        if teams:
            ids = [team.id for team in teams]
            counted = await self.session.execute(
                select(TeamMember.team_id, func.count()).where(TeamMember.team_id.in_(ids)).group_by(TeamMember.team_id)
            )
            counts: dict[str, int] = {team_id: int(count) for team_id, count in counted.all()}
            for team in teams:
                members = await self.session.scalars(
                    select(TeamMember)
                    .where(TeamMember.team_id == team.id)
                    .order_by(TeamMember.created_at, TeamMember.user_id)
                    .limit(members_shown)
                )
                found.append((team, int(counts.get(team.id, 0)), list(members)))
        return found, int(total or 0)


def _run_conditions(
    *, outcome: str | None, user_id: str | None, since: datetime | None, until: datetime | None
) -> list[ColumnElement[bool]]:
    """The ``hook_runs`` filters as SQL conditions (times compared in UTC: SQLite stores them naive)."""
    conditions: list[ColumnElement[bool]] = []
    if outcome is not None:
        conditions.append(HookRun.outcome == outcome)
    if user_id is not None:
        conditions.append(or_(HookRun.user_id == user_id, HookRun.subject == user_id))
    if since is not None:
        conditions.append(HookRun.started_at >= _stored_time(since))
    if until is not None:
        conditions.append(HookRun.started_at < _stored_time(until))
    return conditions


def _stored_time(moment: datetime) -> datetime:
    """A moment as the ``hook_runs`` column compares it: UTC (naive moments are taken as UTC)."""
    return as_utc(moment).astimezone(UTC)


def _complete_login(session: Session, login: LoginRecord, run: RunRecord, staged: StagedWrites | None) -> None:
    """The body of :meth:`Database.complete_login`, in its transaction."""
    now = utcnow()
    if staged is not None and (staged.teams or staged.users):
        session.add_all([*staged.teams, *staged.users])
        session.flush()
    user = session.get(User, login.user_id, with_for_update=True)
    if user is None:
        user = User(id=login.user_id, created_at=now, idp_issuer=login.idp_issuer, idp_subject=login.idp_subject)
        session.add(user)
    elif user.idp_subject is None and login.idp_subject is not None:
        # conditional, so that of two first logins at once only one binds; the other then compares
        session.execute(
            update(User)
            .where(User.id == login.user_id, User.idp_subject.is_(None))
            .values(idp_issuer=login.idp_issuer, idp_subject=login.idp_subject)
            .execution_options(synchronize_session=False)
        )
        session.refresh(user)
    if user.idp_subject is not None and (user.idp_issuer, user.idp_subject) != (
        login.idp_issuer,
        login.idp_subject,
    ):
        raise IdentityMismatch(login.user_id, user.idp_issuer)
    user.email = login.email
    user.role = login.role
    user.models = list(login.models)
    user.max_budget = login.max_budget
    user.budget_duration = login.budget_duration
    user.provider = login.provider
    user.updated_at = now
    user.last_login_at = now
    session.flush()
    if staged is not None and staged.memberships:
        session.add_all(staged.memberships)
    session.add_all(_run_rows(run))
    session.add(
        UISession(
            id=login.session_id,
            user_id=login.user_id,
            created_at=now,
            expires_at=login.session_expires_at,
        )
    )


def _run_rows(run: RunRecord) -> list[HookRun | LoginInput]:
    rows: list[HookRun | LoginInput] = [_hook_run(run)]
    if run.openid is not None:
        rows.append(LoginInput(run_id=run.run_id, recorded_at=run.started_at, openid=run.openid))
    return rows


def _record_version(session: Session, version: VersionRecord) -> None:
    now = utcnow()
    row = session.get(HookVersion, version.sha256)
    if row is None:
        session.add(
            HookVersion(
                sha256=version.sha256,
                file=version.file,
                function=version.function,
                sources=version.sources,
                first_loaded_at=now,
                last_loaded_at=now,
                loaded_by=version.loaded_by,
                loads=1,
            )
        )
    else:
        row.last_loaded_at, row.loaded_by, row.loads = now, version.loaded_by, row.loads + 1


def _hook_run(run: RunRecord) -> HookRun:
    return HookRun(
        run_id=run.run_id,
        started_at=run.started_at,
        outcome=run.outcome,
        duration_ms=run.duration_ms,
        subject=run.subject,
        user_id=run.user_id,
        provider=run.provider,
        error=run.error,
        fallback=run.fallback,
        stdout=run.stdout[:4096] or None,
        stderr=run.stderr[:4096] or None,
        extra=run.extra or None,
        host_calls=run.host_calls or None,
        http_status=run.http_status,
        hook_sha256=run.hook_sha256,
        decided=run.decided,
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # WAL with synchronous=NORMAL: commits stay atomic and the file consistent; a power cut may lose the last
    # logins (their sessions), never corrupt. It takes the fsync off every login's commit.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS:d}")
    cursor.close()


class _SQLiteWriter:
    """SQLite write transactions, one at a time, on one plain (sync) connection, each begun ``BEGIN IMMEDIATE``.

    ``BEGIN IMMEDIATE`` holds SQLite's write lock from the transaction's first statement, so it never has to
    upgrade a read snapshot another writer has made stale.

    A transaction runs on the event loop itself, with a busy timeout of 0: a login's commit costs about 1 ms of
    CPU there, while the hop to a worker thread and back cost 8 ms at p50 with 8 logins at once on 2 cores (the
    thread waits for a core and for the GIL, then the loop for its answer). It never waits on the loop:

    - for the lock: when another process (a CLI command) holds it, ``BEGIN IMMEDIATE`` fails at once, before any
      of the transaction runs, and the transaction runs in a worker thread instead, which waits up to
      :data:`BUSY_TIMEOUT_MS`;
    - for the disk: the connection makes no automatic WAL checkpoint (the one write that fsyncs with
      ``synchronous=NORMAL``); a worker thread makes a passive one every :data:`CHECKPOINT_EVERY` commits.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        # one connection, used by one transaction at a time (the limiter below), on the loop or in a thread
        self.engine = create_engine(
            engine.url.set(drivername="sqlite+pysqlite"),
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
        )
        event.listen(self.engine, "connect", _sqlite_pragmas)
        event.listen(self.engine, "connect", _manual_transactions)
        event.listen(self.engine, "connect", _no_autocheckpoint)
        event.listen(self.engine, "begin", _begin_immediate)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._one_at_a_time = anyio.CapacityLimiter(1)
        self._commits = 0

    async def run(self, work: Callable[[Session], _T]) -> _T:
        async with self._one_at_a_time:
            try:
                result = self._transaction(work, busy_timeout_ms=0)
            except _Locked:
                result = await anyio.to_thread.run_sync(self._transaction, work, BUSY_TIMEOUT_MS)
            self._commits += 1
            if self._commits % CHECKPOINT_EVERY == 0:
                await anyio.to_thread.run_sync(self._checkpoint)
            return result

    def _transaction(self, work: Callable[[Session], _T], busy_timeout_ms: int) -> _T:
        self._outside_transaction(f"PRAGMA busy_timeout={busy_timeout_ms:d}")
        with self._sessions.begin() as session:
            try:
                session.connection()  # BEGIN IMMEDIATE (the "begin" event): the lock, before any of work runs
            except OperationalError as exc:
                if isinstance(exc.orig, sqlite3.OperationalError) and exc.orig.sqlite_errorcode == sqlite3.SQLITE_BUSY:
                    raise _Locked from exc
                raise
            return work(session)

    def _checkpoint(self) -> None:
        self._outside_transaction("PRAGMA wal_checkpoint(PASSIVE)")

    def _outside_transaction(self, statement: str) -> None:
        """Run ``statement`` on the one connection (StaticPool) with no transaction open (none is, between
        two, and SQLAlchemy's would begin one: BEGIN IMMEDIATE)."""
        raw = self.engine.raw_connection()
        try:
            raw.cursor().execute(statement)
        finally:
            raw.close()

    def close(self) -> None:
        self.engine.dispose()


class _Locked(Exception):
    """Another process holds the SQLite write lock (the transaction has not started)."""


def _no_autocheckpoint(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")


def _manual_transactions(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling would start a deferred transaction at the first write
    dbapi_connection.isolation_level = None


def _begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _upgrade(connection: Connection) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
