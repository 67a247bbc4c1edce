"""The database: migrations at start, one transaction per successful login, only the run on failure."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from proxy._db import Database, LoginRecord, RunRecord, normalize_url, utcnow

pytestmark = pytest.mark.anyio


def run(run_id: str, outcome: str = "ok") -> RunRecord:
    return RunRecord(
        run_id=run_id,
        started_at=utcnow(),
        outcome=outcome,
        duration_ms=3.0,
        subject="alice",
        provider="generic",
    )


def login(session_id: str, **changes: object) -> LoginRecord:
    fields: dict[str, object] = {
        "user_id": "alice",
        "email": "alice@example.com",
        "role": "internal_user",
        "models": ["gpt-4o"],
        "max_budget": 5.0,
        "budget_duration": "30d",
        "provider": "generic",
        "session_id": session_id,
        "session_expires_at": utcnow(),
    }
    return LoginRecord(**(fields | changes))  # type: ignore[arg-type]


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(normalize_url("sqlite:///hj.db", tmp_path))
    await db.upgrade()
    yield db
    await db.close()


async def test_migrations_create_every_table(database: Database, tmp_path: Path) -> None:
    await database.upgrade()  # a second run is a no-op
    with sqlite3.connect(tmp_path / "hj.db") as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"users", "teams", "team_members", "ui_sessions", "hook_runs", "alembic_version"} <= tables


async def test_values_are_applied_on_every_login(database: Database) -> None:
    await database.complete_login(login("s1"), run("r1"))
    await database.complete_login(login("s2", role="proxy_admin", models=[]), run("r2"))
    user = await database.get_user("alice")
    assert user is not None
    assert (user.role, user.models) == ("proxy_admin", [])
    assert await database.get_session("s1") is not None
    assert await database.get_session("s2") is not None


async def test_failed_transaction_writes_nothing(database: Database) -> None:
    await database.complete_login(login("s1"), run("r1"))
    with pytest.raises(Exception):  # the duplicate run id makes the transaction fail
        await database.complete_login(login("s2", role="proxy_admin"), run("r1"))
    user = await database.get_user("alice")
    assert user is not None
    assert user.role == "internal_user"
    assert await database.get_session("s2") is None


async def test_failure_records_only_the_run(database: Database) -> None:
    await database.record_run(run("r9", outcome="timeout"))
    recorded = await database.get_run("r9")
    assert recorded is not None
    assert recorded.outcome == "timeout"
    assert await database.get_user("alice") is None


async def test_deleting_a_session_revokes_it(database: Database) -> None:
    await database.complete_login(login("s1"), run("r1"))
    await database.delete_session("s1")
    assert await database.get_session("s1") is None


async def test_upgrading_from_0001_keeps_users_sessions_and_memberships(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from sqlalchemy import Connection

    from proxy._db._store import MIGRATIONS

    db = Database(normalize_url("sqlite:///old.db", tmp_path))

    def to_0001(connection: Connection) -> None:
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")

    try:
        async with db.engine.begin() as migrating:
            await migrating.run_sync(to_0001)
        with sqlite3.connect(tmp_path / "old.db") as connection:  # rows as 0001 wrote them
            connection.execute(
                "INSERT INTO users VALUES ('alice', 'alice@example.com', 'internal_user', '[]', NULL, NULL, "
                "'generic', '2026-01-01', '2026-01-01', NULL)"
            )
            connection.execute("INSERT INTO ui_sessions VALUES ('s1', 'alice', '2026-01-01', '2099-01-01')")
            connection.execute(
                "INSERT INTO hook_runs (run_id, started_at, outcome, duration_ms) VALUES ('r1', '2026-01-01', 'ok', 1)"
            )
            connection.execute("INSERT INTO teams VALUES ('eng', NULL, '[]', NULL, '2026-01-01')")
            connection.execute("INSERT INTO team_members VALUES ('eng', 'alice', 'admin', '2026-01-01')")
        await db.upgrade()
        assert await db.get_session("s1") is not None
        async with db.reader() as rows:
            user = await rows.user("alice")
            assert user is not None
            assert (user.alias, user.meta) == (None, None)
            (membership,) = await rows.memberships_of_user("alice")
            assert (membership.team_id, membership.role, membership.max_budget_in_team) == ("eng", "admin", None)
        recorded = await db.get_run("r1")
        assert recorded is not None
        assert recorded.host_calls is None
    finally:
        await db.close()
