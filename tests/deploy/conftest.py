"""One deployment per test module (tests/deploy/helpers.py): PostgreSQL, the IdP, two replicas, HAProxy.

The two replicas are started at the same moment against an empty database (the migration race is part of the
set-up, and ``test_replicas_starting_at_once_migrate_once`` checks its outcome). Every test starts with both
replicas and the database running (a test that kills one restores it; :meth:`Deployment.ensure_running` repairs
what a failed test left). When the module ends, everything is stopped and the test fails if any process it
started (replicas, their sandbox workers, the IdP, HAProxy, PostgreSQL) is still running.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.idp.provider import free_port, start_idp
from tests.proxy.harness import write_config

from .helpers import (
    HOOK,
    MASTER_KEY,
    TEAM,
    LoadBalancer,
    Login,
    Postgres,
    Proc,
    Replica,
    descendants,
    replica_env,
    stop_process,
    wait_gone,
)


@dataclass
class Deployment:
    postgres: Postgres
    replicas: dict[str, Replica]
    lb: LoadBalancer
    database_url: str

    @property
    def url(self) -> str:
        return self.lb.url

    def explain(self, logins: Iterable[Login]) -> str:
        """The logins, each with what the replicas logged about its user (for a failure's message)."""
        logs = {name: replica.log() for name, replica in self.replicas.items() if replica.logs}
        parts = []
        for login in logins:
            lines = [
                f"  {name}: {line}" for name, log in logs.items() for line in log.splitlines() if login.user in line
            ]
            parts.append("\n".join([str(login), *lines[-10:]]))
        return "\n".join(parts)

    def ensure_running(self) -> None:
        if not self.postgres.running():
            self.postgres.start()
        stopped = [replica for replica in self.replicas.values() if not replica.running()]
        for replica in stopped:
            replica.launch()
        for replica in stopped:
            replica.wait_healthy()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    work = tmp_path_factory.mktemp("deploy")
    others: list[subprocess.Popen[Any]] = []
    leftovers: set[Proc] = set()
    with ExitStack() as stack:
        postgres = Postgres()
        stack.callback(postgres.destroy)
        postgres.start()
        postgres.create_database("hookjail")

        lb_port = free_port()
        lb_url = f"http://127.0.0.1:{lb_port}"
        idp, idp_process = start_idp([f"{lb_url}/sso/callback"])
        others.append(idp_process)
        stack.callback(_close_idp, idp_process)

        config = write_config(
            work / "config",
            hook_source=HOOK,
            general_settings={"database_url": "os.environ/DATABASE_URL"},
            hook_settings={"timeout": 10, "permissions": ["user_info", "new_user", "add_new_member"]},
        )
        env = replica_env(idp, base_url=lb_url, database_url=postgres.url())
        replicas = {name: Replica(name, free_port(), config, env, work) for name in ("a", "b")}
        for replica in replicas.values():
            stack.callback(replica.stop)
        for replica in replicas.values():  # both at once, against the empty database
            replica.launch()
        for replica in replicas.values():
            replica.wait_healthy()

        lb = LoadBalancer(work, lb_port, replicas["a"].port, replicas["b"].port)
        stack.callback(lb.stop)
        lb.start()
        assert lb.process is not None
        others.append(lb.process)

        response = httpx.post(
            f"{lb_url}/team/new",
            json={"team_id": TEAM, "team_alias": "Deployment tests"},
            headers={"Authorization": f"Bearer {MASTER_KEY}"},
            timeout=30,
        )
        assert response.status_code in (200, 201), response.text
        yield Deployment(postgres=postgres, replicas=replicas, lb=lb, database_url=postgres.url())
        for replica in replicas.values():
            if replica.running():
                replica.seen |= descendants(replica.pid)
            leftovers |= replica.seen
        for process in others:
            leftovers |= descendants(process.pid)
        if postgres.running():
            postmaster = postgres.postmaster()
            leftovers |= {postmaster} | descendants(postmaster[0])
    # the ExitStack stopped everything (last started, first stopped); nothing may be left running
    still = wait_gone(leftovers, timeout=10)
    assert not still, f"processes outlived the deployment: {sorted(still)}"
    assert all(process.poll() is not None for process in others)
    assert all(not replica.running() for replica in replicas.values())


def _close_idp(process: subprocess.Popen[str]) -> None:
    stop_process(process, timeout=5)
    if process.stdout is not None:
        process.stdout.close()


@pytest.fixture
def deploy(deployment: Deployment) -> Deployment:
    """The module's deployment, with both replicas and the database running."""
    deployment.ensure_running()
    return deployment
