"""Several replicas behind a real load balancer (issue "Deploying it"): two ``hookjail --config`` processes with
one master key and one PostgreSQL database, behind Debian's HAProxy, signing in through the real test IdP.

Everything runs for real on loopback (see conftest.py and helpers.py); the tests share one deployment.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

import anyio
import httpx
import pytest
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory

from proxy._db._store import MIGRATIONS

from .conftest import Deployment
from .helpers import (
    ROUTE,
    SERVED_BY,
    TEAM,
    Login,
    authorize,
    callback,
    logout,
    new_client,
    rows,
    sign_in,
    sleeping,
    sql,
    unique,
    wait_gone,
    whoami,
)

pytestmark = [pytest.mark.deploy, pytest.mark.postgres, pytest.mark.anyio]


def alembic_head() -> str:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


async def test_replicas_starting_at_once_migrate_once(deploy: Deployment) -> None:
    """The module's two replicas were launched at the same moment against an empty database."""
    async with sql(deploy.database_url) as db:
        assert await rows(db, "SELECT version_num FROM alembic_version") == [{"version_num": alembic_head()}]
    first_logs = [replica.log(0) for replica in deploy.replicas.values()]
    # alembic logs each migration it applies: every one was applied once, by one of the two replicas
    applied = [line for log in first_logs for line in log.splitlines() if "Running upgrade" in line]
    revisions = [line.split("Running upgrade", 1)[1] for line in applied]
    assert revisions, first_logs
    assert len(revisions) == len(set(revisions)), applied
    assert sum("Running upgrade" in log for log in first_logs) == 1, "both replicas ran migrations"
    async with httpx.AsyncClient(timeout=30) as client:
        for name in deploy.replicas:
            response = await client.get(f"{deploy.url}/health", headers={ROUTE: name})
            assert (response.status_code, response.json()["status"]) == (200, "ok")
            assert response.headers[SERVED_BY] == name


@pytest.mark.parametrize(("start", "finish"), [("a", "b"), ("b", "a")])
async def test_login_started_on_one_replica_finishes_on_the_other(deploy: Deployment, start: str, finish: str) -> None:
    user = unique("cross")
    login = await sign_in(deploy.url, user, start=start, finish=finish)
    assert login.ok, deploy.explain([login])
    assert (login.start_server, login.callback_server) == (start, finish)
    assert login.session is not None
    for name in deploy.replicas:
        assert await whoami(deploy.url, login.session, name) == user
    async with sql(deploy.database_url) as db:
        runs = await rows(db, "SELECT outcome, http_status FROM hook_runs WHERE user_id = :u", u=user)
        assert runs == [{"outcome": "ok", "http_status": 303}]


async def test_round_robin_alternates_replicas_within_one_login(deploy: Deployment) -> None:
    """No stickiness: with nothing else in flight, the callback goes to the other replica than the start."""
    login = await sign_in(deploy.url, unique("rr"))
    assert login.ok, deploy.explain([login])
    assert {login.start_server, login.callback_server} == {"a", "b"}, login


async def test_session_works_on_every_replica_and_logout_on_one_ends_it_on_all(deploy: Deployment) -> None:
    user = unique("session")
    login = await sign_in(deploy.url, user, start="b", finish="a")
    assert login.ok, deploy.explain([login])
    assert login.session is not None
    for name in ("a", "b", "a", "b"):
        assert await whoami(deploy.url, login.session, name) == user
    response = await logout(deploy.url, login.session, "a")
    assert (response.status_code, response.headers.get("location")) == (303, "/ui/?logout=1")
    # at once, with the cookie the browser had: refused on the other replica, and on this one
    assert await whoami(deploy.url, login.session, "b") is None
    assert await whoami(deploy.url, login.session, "a") is None
    async with sql(deploy.database_url) as db:
        assert await rows(db, "SELECT id FROM ui_sessions WHERE user_id = :u", u=user) == []


async def test_fifty_concurrent_logins_over_both_replicas(deploy: Deployment) -> None:
    """Round-robin, no routing: 40 new users (created with a team membership by the hook's host calls) and 10
    logins of one existing user, all at once."""
    shared = unique("shared")
    first = await sign_in(deploy.url, shared)
    assert first.ok, deploy.explain([first])
    users = [unique(f"team-{i}") for i in range(40)]
    logins: list[Login] = []

    async def one(user: str) -> None:
        logins.append(await sign_in(deploy.url, user))

    with anyio.fail_after(100):
        async with anyio.create_task_group() as group:
            for user in [*users, *[shared] * 10]:
                group.start_soon(one, user)
    failed = [login for login in logins if not login.ok]
    assert not failed, deploy.explain(failed)
    served = collections.Counter(login.callback_server for login in logins)
    assert set(served) == {"a", "b"} and min(served.values()) >= 10, served

    async with sql(deploy.database_url) as db:
        names = [*users, shared]
        found = await rows(
            db,
            "SELECT u.id, u.role, u.email, u.models, "
            "(SELECT count(*) FROM team_members m WHERE m.user_id = u.id AND m.team_id = :team) AS memberships, "
            "(SELECT count(*) FROM ui_sessions s WHERE s.user_id = u.id) AS sessions, "
            "(SELECT count(*) FROM hook_runs r WHERE r.user_id = u.id AND r.outcome = 'ok' "
            "AND r.http_status = 303) AS runs, "
            "(SELECT count(*) FROM hook_runs r WHERE r.user_id = u.id) AS all_runs, "
            "u.last_login_at >= (SELECT max(r.started_at) FROM hook_runs r WHERE r.user_id = u.id) AS last_seen "
            "FROM users u WHERE u.id = ANY(:names)",
            team=TEAM,
            names=names,
        )
        by_id = {row.pop("id"): row for row in found}
        assert sorted(by_id) == sorted(names)
        for user in users:
            assert by_id[user] == {
                "role": "internal_user",
                "email": f"{user}@example.com",
                "models": ["gpt-4o-mini"],
                "memberships": 1,
                "sessions": 1,
                "runs": 1,
                "all_runs": 1,
                "last_seen": True,
            }, user
        # the existing user: every one of its 11 logins has its run and its session (no lost write)
        assert by_id[shared] == {
            "role": "internal_user",
            "email": f"{shared}@example.com",
            "models": ["gpt-4o-mini"],
            "memberships": 0,
            "sessions": 11,
            "runs": 11,
            "all_runs": 11,
            "last_seen": True,
        }
        duplicates = await rows(db, "SELECT lower(email) AS e FROM users GROUP BY lower(email) HAVING count(*) > 1")
        assert duplicates == []
        stats = await rows(db, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        assert stats == [{"deadlocks": 0}]
    # every session the logins were given works, on the other replica than the one that made it
    for login in logins:
        assert login.session is not None
        other = "b" if login.callback_server == "a" else "a"
        assert await whoami(deploy.url, login.session, other) == login.user


async def test_replica_killed_during_the_hook(deploy: Deployment) -> None:
    """Kill (SIGKILL) the replica serving a callback while its hook sleeps, after the hook's host calls staged a
    new user and a membership: nothing of that login is written, the other replica keeps serving logins."""
    victim = deploy.replicas["b"]
    user = unique("slow")
    result: list[Login] = []
    async with new_client() as client:
        url, served = await authorize(client, deploy.url, user, start="a")

        async def finish() -> None:
            # on a connection of its own: HAProxy answers a request the server dropped with a 502 only when it
            # was the connection's first; on a reused keep-alive connection it closes the connection without an
            # answer (HTTP/1.1 lets the browser retry)
            async with httpx.AsyncClient(cookies=client.cookies, timeout=30) as fresh:
                result.append(await callback(fresh, url, user, served, finish="b"))

        async with anyio.create_task_group() as group:
            group.start_soon(finish)
            with anyio.fail_after(15):
                while not (asleep := sleeping(victim.descendants_now())):
                    await anyio.sleep(0.02)
            below = victim.kill()
            assert asleep
    [killed] = result
    assert killed.status in (502, 503), killed  # HAProxy: the server went away mid-request
    assert not killed.ok
    # the hook's worker went with the replica (its PDEATHSIG), and every other process below it
    assert not await anyio.to_thread.run_sync(wait_gone, below, 10.0)

    async with sql(deploy.database_url) as db:
        user_rows = await rows(db, "SELECT id FROM users WHERE id = :u", u=user)
        memberships = await rows(db, "SELECT team_id FROM team_members WHERE user_id = :u", u=user)
        sessions = await rows(db, "SELECT id FROM ui_sessions WHERE user_id = :u", u=user)
        runs = await rows(db, "SELECT outcome FROM hook_runs WHERE user_id = :u OR subject = :u", u=user)
    assert (user_rows, memberships, sessions, runs) == ([], [], [], []), "the killed login left rows behind"

    # the survivor serves logins at once: round-robin (HAProxy redispatches what the dead one refuses)
    for index in range(4):
        login = await sign_in(deploy.url, unique(f"survivor-{index}"))
        assert login.ok, deploy.explain([login])
        assert (login.start_server, login.callback_server) == ("a", "a"), login
    # the killed login, tried again, completes on the survivor: user, membership, session
    again = await sign_in(deploy.url, user, start="a", finish="a")
    assert again.ok, deploy.explain([again])
    async with sql(deploy.database_url) as db:
        assert await rows(db, "SELECT team_id FROM team_members WHERE user_id = :u", u=user) == [{"team_id": TEAM}]

    # the killed replica comes back (same port, same database) and serves again
    await anyio.to_thread.run_sync(victim.launch)
    await anyio.to_thread.run_sync(victim.wait_healthy)
    back = await sign_in(deploy.url, unique("back"), start="b", finish="b")
    assert back.ok, deploy.explain([back])


async def test_postgres_restart_under_load(deploy: Deployment) -> None:
    """``pg_ctl stop -m fast`` and ``start`` on the same port while logins keep coming: logins in the outage fail
    with the ``database`` page (503), logins after it succeed on both replicas, without restarting either."""
    pids = {name: replica.pid for name, replica in deploy.replicas.items()}
    phase = "before"
    load: list[tuple[str, str, Login]] = []  # phase when it started, phase when it ended, the login
    stop = anyio.Event()

    async def keep_signing_in(worker: int) -> None:
        index = 0
        while not stop.is_set():
            started = phase
            login = await sign_in(deploy.url, unique(f"load-{worker}-{index}"))
            load.append((started, phase, login))
            index += 1

    def succeeded(in_phase: str) -> int:
        return sum(login.ok for started, _, login in load if started == in_phase)

    async def wait_for(what: str, condition: Callable[[], bool]) -> None:
        with anyio.move_on_after(30):
            while not condition():
                await anyio.sleep(0.02)
            return
        raise AssertionError(f"timed out waiting for {what}:\n{deploy.explain(login for _, _, login in load)}")

    async with anyio.create_task_group() as group:
        for worker in range(2):
            group.start_soon(keep_signing_in, worker)
        await wait_for("logins before the outage", lambda: succeeded("before") >= 4)

        await anyio.to_thread.run_sync(deploy.postgres.stop)
        phase = "outage"
        for name in ("a", "b", "a", "b"):
            login = await sign_in(deploy.url, unique("outage"), finish=name)
            assert login.database_error, deploy.explain([login])
            assert login.callback_server == name
        async with httpx.AsyncClient(timeout=30) as client:
            for name in ("a", "b"):
                health = await client.get(f"{deploy.url}/health", headers={ROUTE: name})
                assert (health.status_code, health.json()["status"]) == (503, "unhealthy")

        phase = "restarting"  # a login that ends while pg_ctl waits for the server to accept may go either way
        await anyio.to_thread.run_sync(deploy.postgres.start)
        phase = "after"
        for name in ("a", "b", "a", "b"):
            login = await sign_in(deploy.url, unique("after"), start=name, finish=name)
            assert login.ok, deploy.explain([login])
        async with httpx.AsyncClient(timeout=30) as client:
            for name in ("a", "b"):
                health = await client.get(f"{deploy.url}/health", headers={ROUTE: name})
                assert (health.status_code, health.json()["status"]) == (200, "ok")
        await wait_for("logins after the outage", lambda: succeeded("after") >= 4)
        stop.set()

    assert {name: replica.pid for name, replica in deploy.replicas.items()} == pids
    assert all(replica.running() for replica in deploy.replicas.values())
    unexpected = [login for _, _, login in load if not (login.ok or login.database_error)]
    assert not unexpected, deploy.explain(unexpected)
    in_outage = [login for started, ended, login in load if started == ended == "outage"]
    assert all(login.database_error for login in in_outage), deploy.explain(in_outage)
    after = [login for started, _, login in load if started == "after"]
    assert after, "no login started after the outage"
    assert all(login.ok for login in after), deploy.explain(after)
