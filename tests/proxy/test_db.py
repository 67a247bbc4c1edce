"""The database: migrations at start, one transaction per successful login, only the run on failure."""

from __future__ import annotations

import itertools
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from sqlalchemy import event

from proxy._db import Database, IdentityMismatch, LoginRecord, RunRecord, _store, normalize_url, utcnow
from proxy._db._store import BUSY_TIMEOUT_MS
from tests.proxy.inprocess import sqlite_database

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
    async with sqlite_database(tmp_path) as db:
        yield db


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


async def test_concurrent_logins_and_failed_runs_all_commit(database: Database) -> None:
    """SQLite takes one writer at a time: logins arriving together queue for it and every one commits."""
    async with anyio.create_task_group() as group:
        for index in range(24):
            group.start_soon(database.complete_login, login(f"s{index}", user_id=f"user{index}"), run(f"r{index}"))
            group.start_soon(database.record_run, run(f"f{index}", outcome="timeout"))
    for index in range(24):
        assert await database.get_session(f"s{index}") is not None
        assert await database.get_run(f"f{index}") is not None
        assert (await database.get_user(f"user{index}")) is not None


async def test_a_login_waits_for_another_process_writing_then_commits(database: Database, tmp_path: Path) -> None:
    """A CLI command (another process) holding SQLite's write lock makes a login wait, not fail."""
    other = sqlite3.connect(tmp_path / "hj.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE users SET role = role")  # holds the write lock until COMMIT
        done = anyio.Event()

        async def sign_in() -> None:
            await database.complete_login(login("s1"), run("r1"))
            done.set()

        async with anyio.create_task_group() as group:
            group.start_soon(sign_in)
            await anyio.sleep(0.3)
            assert not done.is_set()  # waiting for the lock
            other.execute("COMMIT")
            with anyio.fail_after(10):
                await done.wait()
    finally:
        other.close()
    assert await database.get_session("s1") is not None


async def test_a_login_never_waits_for_the_lock_on_the_event_loop(database: Database, tmp_path: Path) -> None:
    """Writes run on the loop with no busy timeout; one that finds another process's lock waits in a worker
    thread: the loop keeps ticking meanwhile."""
    other = sqlite3.connect(tmp_path / "hj.db", isolation_level=None)
    ticks: list[float] = []
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE users SET role = role")
        async with anyio.create_task_group() as group:
            group.start_soon(database.complete_login, login("s1"), run("r1"))
            for _ in range(40):
                ticks.append(anyio.current_time())
                await anyio.sleep(0.01)
            other.execute("COMMIT")
    finally:
        other.close()
    gaps = [later - earlier for earlier, later in itertools.pairwise(ticks)]
    assert max(gaps) < BUSY_TIMEOUT_MS / 2000  # on the loop, SQLite's busy handler would hold it until COMMIT
    assert await database.get_session("s1") is not None


async def test_the_writer_checkpoints_off_the_loop(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """No automatic WAL checkpoint on the writer's connection (it would fsync on the loop); one in a worker
    thread every CHECKPOINT_EVERY commits."""
    writer = database._writer
    assert writer is not None
    with writer.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    monkeypatch.setattr(_store, "CHECKPOINT_EVERY", 3)
    threads: list[str] = []
    checkpoint = writer._checkpoint

    def spied() -> None:
        threads.append(threading.current_thread().name)
        checkpoint()

    monkeypatch.setattr(writer, "_checkpoint", spied)
    for index in range(7):
        await database.record_run(run(f"c{index}"))
    assert len(threads) == 2
    assert threading.main_thread().name not in threads


async def test_a_write_that_raises_leaves_nothing_and_the_next_write_goes_through(database: Database) -> None:
    with pytest.raises(IdentityMismatch):
        await database.complete_login(login("s1", idp_issuer="https://idp", idp_subject="a"), run("r1"))
        await database.complete_login(login("s2", idp_issuer="https://idp", idp_subject="b"), run("r2"))
    assert await database.get_session("s2") is None
    assert await database.get_run("r2") is None
    await database.record_run(run("r3"))
    assert await database.get_run("r3") is not None


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


async def test_health_pings_are_shared_and_at_most_max_age_old(database: Database) -> None:
    pings: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.strip().upper() == "SELECT 1":
            pings.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", count)
    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(database.recently_pinged, 60.0)
    assert await database.recently_pinged(60.0)
    assert len(pings) == 1  # twenty-one callers, one ping
    assert await database.recently_pinged(0.0)
    assert len(pings) == 2  # a ping older than max_age is done again


async def test_a_failed_write_makes_the_next_health_check_ping_again(database: Database) -> None:
    pings: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.strip().upper() == "SELECT 1":
            pings.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", count)
    await database.record_run(run("r1"))
    assert await database.recently_pinged(60.0)
    assert await database.recently_pinged(60.0)
    assert len(pings) == 1
    with pytest.raises(Exception):  # the duplicate run id fails the write: fresher news than the last ping
        await database.record_run(run("r1"))
    assert await database.recently_pinged(60.0)
    assert len(pings) == 2
