"""The same store on PostgreSQL (several replicas share it): a throwaway cluster in a temporary directory."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from proxy._db import Database, LoginRecord, RunRecord, normalize_url, utcnow
from proxy._directory import new_team
from proxy._host import LoginHost
from tests.idp.provider import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.anyio]

BIN = Path("/usr/lib/postgresql/15/bin")


def as_postgres(*args: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=60, cwd="/")


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    if not (BIN / "initdb").exists() or shutil.which("runuser") is None:
        pytest.fail("PostgreSQL 15 binaries are not installed: .ci/run installs Debian's postgresql")
    # not under pytest's tmp_path: that is private to root, and PostgreSQL refuses to run as root
    base = Path(tempfile.mkdtemp(prefix="hookjail-pg-"))
    os.chmod(base, 0o755)
    data = base / "data"
    data.mkdir()
    shutil.chown(data, "postgres", "postgres")
    port = free_port()
    as_postgres(str(BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "hookjail", "--no-sync")
    as_postgres(
        str(BIN / "pg_ctl"), "-D", str(data), "-w", "-l", str(data / "log"),
        "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off", "start",
    )  # fmt: skip
    try:
        yield f"postgresql://hookjail@127.0.0.1:{port}/postgres"
    finally:
        as_postgres(str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)


def record(run_id: str) -> RunRecord:
    return RunRecord(run_id=run_id, started_at=utcnow(), outcome="ok", duration_ms=1.0, subject="a", provider="g")


def login(session_id: str, role: str = "internal_user") -> LoginRecord:
    return LoginRecord(
        user_id="alice",
        email="alice@example.com",
        role=role,
        models=["gpt-4o"],
        max_budget=1.0,
        budget_duration="1d",
        provider="generic",
        session_id=session_id,
        session_expires_at=utcnow(),
    )


async def test_replicas_migrate_together_and_share_logins(postgres_url: str, tmp_path: Path) -> None:
    url = normalize_url(postgres_url, tmp_path)
    assert url.startswith("postgresql+asyncpg://")
    replicas = [Database(url), Database(url)]
    try:
        await asyncio.gather(*(replica.upgrade() for replica in replicas))
        await replicas[0].complete_login(login("s1"), record("r1"))
        await replicas[1].complete_login(login("s2", role="proxy_admin"), record("r2"))
        user = await replicas[0].get_user("alice")
        assert user is not None
        assert user.role == "proxy_admin"
        assert user.last_login_at is not None
        assert user.last_login_at.tzinfo is not None
        with pytest.raises(Exception):  # the duplicate run id rolls the whole login back
            await replicas[1].complete_login(login("s3", role="team"), record("r1"))
        assert await replicas[0].get_session("s3") is None
        await replicas[1].delete_session("s1")
        assert await replicas[0].get_session("s1") is None
    finally:
        for replica in replicas:
            await replica.close()


async def test_host_call_writes_commit_with_the_login_on_another_replica(postgres_url: str, tmp_path: Path) -> None:
    url = normalize_url(postgres_url, tmp_path)
    replicas = [Database(url), Database(url)]
    try:
        await replicas[0].upgrade()
        async with replicas[0].transaction() as rows:
            await new_team(rows, team_id="pg-eng", team_alias=None, models=[], max_budget=None, members=[])
        host = LoginHost(replicas[1], ["new_user", "add_new_member", "user_info"])
        await host("new_user", {"user_id": "pg-bob", "user_email": "bob@example.com"})
        await host("add_new_member", {"team_id": "pg-eng", "member": {"user_id": "pg-bob", "role": "admin"}})
        assert (await host("user_info", {"user_id": "pg-bob"}))["user_info"]["teams"] == ["pg-eng"]
        async with replicas[0].reader() as rows:
            assert await rows.user("pg-bob") is None
        run = replace(record("r-bob"), host_calls=host.record())
        await replicas[1].complete_login(replace(login("s-bob"), user_id="pg-bob"), run, host.staged)
        async with replicas[0].reader() as rows:
            assert [(m.user_id, m.role) for m in await rows.memberships_of_team("pg-eng")] == [("pg-bob", "admin")]
        recorded = await replicas[0].get_run("r-bob")
        assert recorded is not None
        assert [c["outcome"] for c in recorded.host_calls or []] == ["ok", "ok", "ok"]
    finally:
        for replica in replicas:
            await replica.close()
