"""The database: an async engine, the migrations, and the few reads and writes a login needs.

A successful login is one transaction (user upsert, hook run, session); a failed login writes only its hook
run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, delete, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from ._models import HookRun, UISession, User

__all__ = ("Database", "LoginRecord", "RunRecord", "normalize_url", "utcnow")

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

    async def ping(self) -> bool:
        """Whether the database answers."""
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def record_run(self, run: RunRecord) -> None:
        """Record a hook run on its own (a failed login changes nothing else)."""
        async with self._sessions.begin() as session:
            session.add(_hook_run(run))

    async def complete_login(self, login: LoginRecord, run: RunRecord) -> None:
        """In one transaction: upsert the user with the validated values, record the run, add the session."""
        now = utcnow()
        async with self._sessions.begin() as session:
            user = await session.get(User, login.user_id)
            if user is None:
                user = User(id=login.user_id, created_at=now)
                session.add(user)
            user.email = login.email
            user.role = login.role
            user.models = list(login.models)
            user.max_budget = login.max_budget
            user.budget_duration = login.budget_duration
            user.provider = login.provider
            user.updated_at = now
            user.last_login_at = now
            await session.flush()
            session.add(_hook_run(run))
            session.add(
                UISession(
                    id=login.session_id,
                    user_id=login.user_id,
                    created_at=now,
                    expires_at=login.session_expires_at,
                )
            )

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
        async with self._sessions.begin() as session:
            await session.execute(delete(UISession).where(UISession.id == session_id))

    async def get_run(self, run_id: str) -> HookRun | None:
        """The hook run with this id, if any."""
        async with self._sessions() as session:
            return await session.get(HookRun, run_id)

    async def recent_runs(self, limit: int = 50) -> list[HookRun]:
        """The newest hook runs first."""
        async with self._sessions() as session:
            result = await session.scalars(select(HookRun).order_by(HookRun.started_at.desc()).limit(limit))
            return list(result)

    def session(self) -> AsyncSession:
        """A new ORM session (for later features: host calls, management API)."""
        return self._sessions()


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
        http_status=run.http_status,
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _upgrade(connection: Connection) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
