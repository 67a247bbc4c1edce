"""Safe rollout in-process, with the real hooks in their sandbox: the candidate in the shadow of logins (it
changes nothing, its outcome and diff are kept), every hook version kept and named by its runs, recorded login
inputs and their retention, and the schema the migrations build."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import FastAPI
from sqlalchemy import create_engine, func, select

from proxy import create_app, load_config, serve_settings
from proxy._config import ConfigError
from proxy._db import CandidateRun, Database, HookVersion, LoginInput, RunRecord, User, normalize_url, utcnow
from proxy._db._models import Base
from proxy._login import LoginFailed, LoginService
from proxy.rollout import Shadow, compare, purge_expired_inputs
from tests.proxy.harness import write_config, write_hook
from tests.proxy.inprocess import offline_environ

pytestmark = pytest.mark.anyio

LIVE = """
async def custom_sso_handler(userIDPInfo):
    return {"models": ["gpt-4o-mini"], "user_id": userIDPInfo.id, "user_email": userIDPInfo.email,
            "user_role": "internal_user", "max_budget": 5.0, "budget_duration": "30d"}
"""

#: Grants more than the live hook (admin, another model) and tries to write: none of it may land.
GREEDY = """
from sdk import new_user

async def custom_sso_handler(userIDPInfo):
    local = (userIDPInfo.email or "").partition("@")[0]
    if local == "slow":
        import asyncio
        await asyncio.sleep(3)
    if local == "spin":
        while True:
            pass
    if local == "crash":
        raise RuntimeError("candidate broke")
    await new_user({"user_id": "planted-" + userIDPInfo.id, "user_role": "internal_user", "max_budget": 0.5})
    return {"models": ["gpt-4o-mini", "gpt-4o"], "user_id": userIDPInfo.id, "user_email": userIDPInfo.email,
            "user_role": "proxy_admin" if local != "rich" else "internal_user", "max_budget": 5.0,
            "budget_duration": "30d"}
"""


def openid(local: str) -> dict[str, Any]:
    return {"id": local, "email": f"{local}@example.com", "provider": "generic", "subject": local, "issuer": "idp"}


def configure(tmp_path: Path, **hook_settings: Any) -> Path:
    settings = {"sandbox": "permissive", "permissions": ["user_info", "new_user"], **hook_settings}
    if "candidate" in settings:
        write_hook(tmp_path / "candidate.py", GREEDY)
    return write_config(tmp_path, hook_source=LIVE, hook_settings=settings)


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Starts the app (lifespan and all) with these hook_settings; stopped at the end of the test."""
    async with anyio.create_task_group() as group:
        stops: list[anyio.Event] = []

        async def starter(**hook_settings: Any) -> FastAPI:
            env = offline_environ()
            application = create_app(
                serve_settings(load_config(configure(tmp_path, **hook_settings), env), env, allow_weak_sandbox=True)
            )
            ready, stop = anyio.Event(), anyio.Event()
            stops.append(stop)

            async def serve() -> None:
                async with application.router.lifespan_context(application):
                    ready.set()
                    await stop.wait()

            group.start_soon(serve)
            await ready.wait()
            return application

        yield starter
        for stop in stops:
            stop.set()


async def candidate_of(database: Database, run_id: str, *, within: float = 20.0) -> CandidateRun:
    """The candidate's run for this login, once its background run is recorded."""
    with anyio.fail_after(within):
        while (found := await database.get_candidate(run_id)) is None:
            await anyio.sleep(0.02)
    return found


async def test_a_greedy_candidate_shows_as_a_diff_and_grants_nothing(start: Callable[..., Any]) -> None:
    app = await start(candidate="candidate.custom_sso_handler")
    service: LoginService = app.state.login
    database: Database = app.state.database
    granted = await service.login(openid("alice"))
    assert granted.values.user_role == "internal_user"
    assert granted.run_id is not None
    found = await candidate_of(database, granted.run_id)
    assert found.outcome == "ok"
    assert found.diff == {
        "user_role": {"live": "internal_user", "candidate": "proxy_admin"},
        "models": {"live": ["gpt-4o-mini"], "candidate": ["gpt-4o-mini", "gpt-4o"]},
    }
    assert found.agrees is False
    assert found.decided is not None and found.decided["user_role"] == "proxy_admin"
    user = await database.get_user("alice")
    assert user is not None and user.role == "internal_user" and user.models == ["gpt-4o-mini"]
    assert await database.get_user("planted-alice") is None  # its host call's write was dropped
    metrics = app.state.metrics.render().decode()
    assert 'hookjail_candidate_runs_total{result="differ"} 1.0' in metrics
    assert 'hookjail_candidate_differences_total{field="user_role"} 1.0' in metrics


async def test_candidate_settings_narrow_its_grants(start: Callable[..., Any]) -> None:
    app = await start(candidate="candidate.custom_sso_handler", candidate_settings={"permissions": ["user_info"]})
    granted = await app.state.login.login(openid("rich"))
    found = await candidate_of(app.state.database, granted.run_id)
    # without the new_user grant its write is refused: the candidate fails where the live hook did not
    assert found.outcome == "raised"
    assert found.diff == {"outcome": {"live": "ok", "candidate": "raised"}}
    assert "PermissionError" in (found.error or "")


async def test_a_failing_candidate_is_recorded_and_changes_nothing(start: Callable[..., Any]) -> None:
    app = await start(candidate="candidate.custom_sso_handler", candidate_settings={"cpu_seconds": 0.3})
    database: Database = app.state.database
    for local, outcome in (("crash", "raised"), ("spin", "limit")):
        granted = await app.state.login.login(openid(local))
        assert granted.values.user_role == "internal_user"
        found = await candidate_of(database, granted.run_id)
        assert found.outcome == outcome
        assert found.decided is None
        assert found.diff == {"outcome": {"live": "ok", "candidate": outcome}}
        assert (await database.get_user(local)) is not None


async def test_a_candidate_refused_by_the_policy_is_recorded_as_refused(start: Callable[..., Any]) -> None:
    app = await start(
        candidate="candidate.custom_sso_handler", policy={"allowed_roles": ["internal_user", "internal_user_viewer"]}
    )
    granted = await app.state.login.login(openid("bob"))
    found = await candidate_of(app.state.database, granted.run_id)
    assert found.outcome == "refused"
    assert "user_role" in (found.error or "")
    assert found.diff == {"outcome": {"live": "ok", "candidate": "refused"}}


async def test_a_slow_candidate_is_off_the_logins_path(start: Callable[..., Any]) -> None:
    app = await start(
        candidate="candidate.custom_sso_handler", candidate_settings={"max_concurrency": 1, "timeout": 10}
    )
    shadow: Shadow = app.state.shadow
    database: Database = app.state.database
    granted = await app.state.login.login(openid("slow"))
    # the login is answered while its candidate (which sleeps 3 s) still runs
    assert shadow.pending == 1
    assert await database.get_candidate(granted.run_id) is None
    assert (await database.get_user("slow")) is not None  # the login is committed
    found = await candidate_of(database, granted.run_id)
    assert found.outcome == "ok"
    assert shadow.pending == 0


async def test_logins_beyond_the_candidates_queue_are_not_shadowed(start: Callable[..., Any]) -> None:
    app = await start(
        candidate="candidate.custom_sso_handler", candidate_settings={"max_concurrency": 1, "timeout": 10}
    )
    shadow: Shadow = app.state.shadow
    shadow.max_pending = 1
    first = await app.state.login.login(openid("slow"))
    second = await app.state.login.login(openid("carol"))
    assert shadow.skipped == 1
    await candidate_of(app.state.database, first.run_id)
    assert await app.state.database.get_candidate(second.run_id) is None
    assert 'hookjail_candidate_runs_total{result="skipped"} 1.0' in app.state.metrics.render().decode()


async def test_a_denied_live_login_is_compared_too(start: Callable[..., Any], tmp_path: Path) -> None:
    app = await start(candidate="candidate.custom_sso_handler", policy={"max_budget": 1})
    with pytest.raises(LoginFailed) as failed:
        await app.state.login.login(openid("dave"))  # the live hook's budget 5 is over the policy's 1
    assert failed.value.outcome == "refused"
    found = await candidate_of(app.state.database, failed.value.run_id or "")
    assert found.outcome == "refused"
    assert found.diff == {}  # both refused: they agree


async def test_without_a_candidate_nothing_is_shadowed(start: Callable[..., Any]) -> None:
    app = await start()
    assert app.state.shadow is None
    granted = await app.state.login.login(openid("erin"))
    assert await app.state.database.get_candidate(granted.run_id) is None


async def test_a_candidate_that_does_not_import_stops_the_start(tmp_path: Path) -> None:
    config = configure(tmp_path, candidate="candidate.custom_sso_handler")
    write_hook(tmp_path / "candidate.py", "import no_such_module_anywhere\n")
    env = offline_environ()
    application = create_app(serve_settings(load_config(config, env), env, allow_weak_sandbox=True))
    with pytest.raises(Exception, match="no_such_module_anywhere"):
        async with application.router.lifespan_context(application):
            pass
    assert application.state.startup_error.startswith("hook_settings.candidate: the candidate candidate.custom_sso")


def test_the_candidate_is_resolved_beside_the_config(tmp_path: Path) -> None:
    config = load_config(
        configure(tmp_path, candidate="candidate.custom_sso_handler", candidate_settings={"timeout": 9}),
        offline_environ(),
    )
    assert config.candidate is not None
    assert config.candidate.path == tmp_path / "candidate.py"
    candidate = config.hook_settings.for_candidate()
    assert (candidate.timeout, candidate.permissions) == (9, ["user_info", "new_user"])
    missing = write_config(tmp_path / "other", hook_source=LIVE, hook_settings={"candidate": "nowhere.handler"})
    with pytest.raises(ConfigError, match=r"hook_settings\.candidate: no file nowhere\.py"):
        load_config(missing, offline_environ())
    typo = write_config(tmp_path / "typo", hook_source=LIVE, hook_settings={"candidate_settings": {"timout": 1}})
    with pytest.raises(ConfigError, match=r"hook_settings\.candidate_settings\.timout"):
        load_config(typo, offline_environ())


async def test_every_loaded_version_is_kept_and_runs_name_theirs(start: Callable[..., Any], tmp_path: Path) -> None:
    app = await start(candidate="candidate.custom_sso_handler")
    database: Database = app.state.database
    first = await app.state.login.login(openid("frank"))
    live_sha = app.state.hook.describe().sha256
    write_hook(tmp_path / "custom_sso.py", LIVE.replace('"max_budget": 5.0', '"max_budget": 4.0'))
    second = await app.state.login.login(openid("frank"))
    new_sha = app.state.hook.describe().sha256
    assert new_sha != live_sha
    runs = [await database.get_run(granted.run_id or "") for granted in (first, second)]
    assert [run.hook_sha256 for run in runs if run is not None] == [live_sha, new_sha]
    assert runs[1] is not None and runs[1].decided is not None and runs[1].decided["max_budget"] == 4.0
    async with database.session() as session:
        versions = {row.sha256: row for row in await session.scalars(select(HookVersion))}
    assert versions[live_sha].loaded_by == "start"
    assert versions[new_sha].loaded_by == "reload"
    assert versions[new_sha].sources == {"custom_sso.py": (tmp_path / "custom_sso.py").read_text()}
    candidate_sha = app.state.shadow.candidate.describe().sha256
    assert versions[candidate_sha].loaded_by == "candidate"
    counted = dict((version.sha256, counts) for version, counts in await database.versions())
    assert counted[new_sha] == {"ok": 1}
    assert (await database.get_version(new_sha[:10])) is not None


async def test_inputs_are_recorded_only_when_asked(start: Callable[..., Any]) -> None:
    app = await start(record_inputs=True)
    granted = await app.state.login.login(openid("gina"))
    recorded = await app.state.database.recorded_inputs(10)
    assert [entry.run_id for entry, _ in recorded][-1] == granted.run_id
    entry, run = next((entry, run) for entry, run in recorded if entry.run_id == granted.run_id)
    assert entry.openid["email"] == "gina@example.com" and entry.openid["subject"] == "gina"
    assert run.outcome == "ok"


async def test_inputs_are_not_recorded_by_default(start: Callable[..., Any]) -> None:
    app = await start()
    await app.state.login.login(openid("ivan"))
    async with app.state.database.session() as session:
        assert await session.scalar(select(func.count()).select_from(LoginInput)) == 0


async def test_retention_deletes_old_inputs_and_keeps_recent_ones(tmp_path: Path) -> None:
    database = Database(normalize_url("sqlite:///hj.db", tmp_path))
    await database.upgrade()
    try:
        now = utcnow()
        for run_id, age in (("old", timedelta(days=8)), ("edge", timedelta(days=6, hours=23)), ("new", timedelta())):
            await database.record_run(
                RunRecord(
                    run_id=run_id,
                    started_at=now - age,
                    outcome="ok",
                    duration_ms=1.0,
                    subject="s",
                    provider="generic",
                    openid={"id": run_id},
                )
            )
        assert await purge_expired_inputs(database, 7) == 1
        assert [entry.run_id for entry, _ in await database.recorded_inputs(10)] == ["new", "edge"]
        assert await database.get_run("old") is not None  # the run itself stays
    finally:
        await database.close()


async def test_inputs_past_retention_are_purged_at_start(start: Callable[..., Any], tmp_path: Path) -> None:
    database = Database(normalize_url("sqlite:///hookjail.db", tmp_path))
    await database.upgrade()
    await database.record_run(
        RunRecord(
            run_id="ancient",
            started_at=utcnow() - timedelta(days=30),
            outcome="ok",
            duration_ms=1.0,
            subject="s",
            provider="generic",
            openid={"id": "x"},
        )
    )
    await database.close()
    app = await start(record_inputs=True)
    assert str(app.state.database.engine.url.database).endswith("hookjail.db")
    with anyio.fail_after(10):
        while await app.state.database.recorded_inputs(10):
            await anyio.sleep(0.02)


def test_compare_names_each_differing_field() -> None:
    live = {"user_role": "internal_user", "models": ["a", "b"], "max_budget": 5.0}
    assert compare("ok", live, "ok", {**live, "models": ["b", "a"]}) == {}
    assert compare("ok", live, "ok", {**live, "max_budget": None}) == {"max_budget": {"live": 5.0, "candidate": None}}
    assert compare("ok", live, "timeout", None) == {"outcome": {"live": "ok", "candidate": "timeout"}}


async def test_the_migrations_build_exactly_the_models(tmp_path: Path) -> None:
    database = Database(normalize_url("sqlite:///hj.db", tmp_path))
    await database.upgrade()
    await database.close()
    engine = create_engine(f"sqlite:///{tmp_path / 'hj.db'}")
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert differences == []
    assert User.__tablename__ == "users"
