"""A deployment of hookjail run for real on loopback: a throwaway PostgreSQL 15 cluster, the test IdP (npm
``oidc-provider``), two ``python -m proxy --config`` replicas sharing the database and the master key, and Debian's
HAProxy in front of them; plus an httpx login that decides which replica serves each of its requests.

HAProxy balances round-robin with no stickiness. A request with ``X-Replica: a`` (or ``b``) goes to that replica
only (a test's way to make a login start on one replica and finish on the other while the load balancer stays in
the path); every response names the replica that served it in ``X-Served-By``.
"""

from __future__ import annotations

import html
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from proxy._sessions import COOKIE_NAME
from tests.idp.provider import IdP, free_port
from tests.proxy.harness import idp_form

REPO = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
MASTER_KEY = "sk-deploy-shared-master-key"
ROUTE = "X-Replica"
SERVED_BY = "x-served-by"
#: What the login page says when the login's transaction could not be saved (outcome ``database``, 503).
DATABASE_ERROR = "The proxy could not save your login; try again."
TEAM = "deploy"

#: The replicas' hook. ``team-*`` and ``slow-*`` users are created by the hook's host calls and put in team
#: "deploy" (staged, committed with the login); ``slow-*`` logins then sleep 1 s in the sandbox (a replica is
#: killed meanwhile). Other users make no host call, so their logins touch the database only in the login's
#: own transaction.
HOOK = """
import time

from sdk import (
    Member, NewUserRequest, NotFoundError, SSOUserDefinedValues, TeamMemberAddRequest, add_new_member, new_user,
    user_info,
)


async def custom_sso_handler(userIDPInfo):
    user_id = userIDPInfo.id
    if user_id.startswith(("team-", "slow-")):
        try:
            await user_info(user_id=user_id)
        except NotFoundError:
            await new_user(NewUserRequest(user_id=user_id, user_email=userIDPInfo.email, user_role="internal_user"))
            await add_new_member(TeamMemberAddRequest(team_id="deploy", member=Member(user_id=user_id)))
    if user_id.startswith("slow-"):
        time.sleep(1.0)
    return SSOUserDefinedValues(
        models=["gpt-4o-mini"],
        user_id=user_id,
        user_email=userIDPInfo.email,
        user_role="internal_user",
        max_budget=5.0,
        budget_duration="30d",
    )
"""


def unique(prefix: str) -> str:
    """A user name no other login of this test session uses (the IdP's account ids: letters, digits, dashes)."""
    return f"{prefix}-{secrets.token_hex(4)}"


# --- processes -----------------------------------------------------------------------------------------------

Proc = tuple[int, int]  # (pid, start time in clock ticks): a pid that was reused is not the same process


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of a process, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rpartition(")")[2].split()
    return fields[0], int(fields[1]), int(fields[19])


def descendants(pid: int) -> set[Proc]:
    """Every living process below ``pid`` (read from /proc: this kernel has no ``/proc/*/task/*/children``)."""
    children: dict[int, list[Proc]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _stat(int(entry))
        if stat is not None and stat[0] not in ("Z", "X"):
            children.setdefault(stat[1], []).append((int(entry), stat[2]))
    found: set[Proc] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child[0])
    return found


def alive(processes: Iterable[Proc]) -> set[Proc]:
    """Those of ``processes`` still running (a zombie is not)."""
    result = set()
    for pid, started in processes:
        stat = _stat(pid)
        if stat is not None and stat[0] not in ("Z", "X") and stat[2] == started:
            result.add((pid, started))
    return result


def wait_gone(processes: Iterable[Proc], timeout: float) -> set[Proc]:
    """Wait (bounded) until none of ``processes`` runs; returns those still running."""
    left = alive(processes)
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = alive(left)
    return left


def sleeping(processes: Iterable[Proc]) -> list[int]:
    """The pids among ``processes`` blocked in a sleep system call (the hook's ``time.sleep``)."""
    found = []
    for pid, _ in alive(processes):
        try:
            wchan = Path(f"/proc/{pid}/wchan").read_text()
        except OSError:
            continue
        if "nanosleep" in wchan:
            found.append(pid)
    return found


def stop_process(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; reaped either way."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def http_ok(url: str, headers: Mapping[str, str] | None = None) -> bool:
    try:
        return httpx.get(url, headers=headers, timeout=2.0).status_code == 200
    except httpx.TransportError:
        return False


# --- PostgreSQL ----------------------------------------------------------------------------------------------


def as_postgres(*args: str, timeout: float = 60) -> None:
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=timeout, cwd="/"
    )


class Postgres:
    """A throwaway cluster in a temporary directory (not pytest's: that is private to root, and PostgreSQL
    refuses to run as root), on a loopback port it keeps across restarts."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists() or shutil.which("runuser") is None:
            raise RuntimeError("PostgreSQL 15 binaries are not installed: .ci/run installs Debian's postgresql")
        self.base = Path(tempfile.mkdtemp(prefix="hookjail-deploy-pg-"))
        os.chmod(self.base, 0o755)
        self.data = self.base / "data"
        self.data.mkdir()
        shutil.chown(self.data, "postgres", "postgres")
        self.port = free_port()
        as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "hookjail", "--no-sync")

    def url(self, database: str = "hookjail") -> str:
        """The LiteLLM-style URL (``postgresql://``) a replica's config names."""
        return f"postgresql://hookjail@127.0.0.1:{self.port}/{database}"

    @property
    def pid_file(self) -> Path:
        return self.data / "postmaster.pid"

    def running(self) -> bool:
        return self.pid_file.exists()

    def postmaster(self) -> Proc:
        """The server process (from its pid file)."""
        pid = int(self.pid_file.read_text().split()[0])
        stat = _stat(pid)
        assert stat is not None, "the postmaster is not running"
        return pid, stat[2]

    def start(self) -> None:
        as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-t", "30", "-l", str(self.data / "log"),
            "-o", f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def create_database(self, name: str) -> None:
        as_postgres(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "hookjail", name)

    def destroy(self) -> None:
        try:
            if self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


@asynccontextmanager
async def sql(url: str) -> AsyncIterator[AsyncConnection]:
    """A connection of the test's own (no pool: the cluster restarts under it)."""
    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://", 1), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            yield connection
    finally:
        await engine.dispose()


async def rows(connection: AsyncConnection, query: str, **params: Any) -> list[dict[str, Any]]:
    result = await connection.execute(text(query), params)
    return [dict(row) for row in result.mappings()]


# --- the replicas --------------------------------------------------------------------------------------------


@dataclass
class Replica:
    """One ``python -m proxy --config ...`` process; it can be killed and started again on the same port."""

    name: str
    port: int
    config: Path
    env: dict[str, str]
    work: Path
    process: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)
    #: every process this replica ever had below it, for the check that nothing outlives the tests
    seen: set[Proc] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def launch(self) -> None:
        """Start the process (do not wait: see :meth:`wait_healthy`); each start logs to a new file."""
        assert self.process is None or self.process.poll() is not None, "already running"
        log_path = self.work / f"replica-{self.name}.{len(self.logs) + 1}.log"
        self.logs.append(log_path)
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "proxy", "--config", str(self.config), "--host", "127.0.0.1",
                    "--port", str(self.port), "--log-level", "info",
                ],
                cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def log(self, start: int = -1) -> str:
        return self.logs[start].read_text(errors="replace")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_healthy(self, timeout: float = 60.0) -> None:
        def healthy() -> bool:
            if not self.running():
                raise RuntimeError(f"replica {self.name} exited:\n{self.log()}")
            return http_ok(f"{self.url}/health")

        wait_until(healthy, timeout, f"replica {self.name} to serve /health")
        self.seen |= descendants(self.pid)

    def descendants_now(self) -> set[Proc]:
        return descendants(self.pid)

    def kill(self) -> set[Proc]:
        """SIGKILL the replica (no cleanup of its own); returns the processes that were below it."""
        below = descendants(self.pid)
        self.seen |= below
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        return below

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.seen |= descendants(self.process.pid)
            stop_process(self.process)


def replica_env(idp: IdP, *, base_url: str, database_url: str) -> dict[str, str]:
    """The replica's environment: LiteLLM's variables for the IdP, the load balancer's URL, the shared key."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GENERIC_", "GOOGLE_", "MICROSOFT_", "PROXY_", "ALLOWED_EMAIL", "LITELLM_", "HOOKJAIL_"))
    }
    env |= idp.generic_env()
    env |= {
        "PYTHONPATH": str(REPO),
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "PROXY_BASE_URL": base_url,
        "DATABASE_URL": database_url,
        # every login reaches the replicas from HAProxy's one address: the per-address limit is not under test
        "HOOKJAIL_SSO_RATE_LIMIT": "off",
    }
    return env


# --- HAProxy -------------------------------------------------------------------------------------------------

HAPROXY_CONFIG = """\
global
    maxconn 1024
    hard-stop-after 5s
    log stdout format raw local0

defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout check 1s
    # a replica that refuses the connection (killed): try again on the other one
    retries 3
    option redispatch 1
    option forwardfor

frontend hookjail
    bind 127.0.0.1:{port}
    use_backend replica_a if {{ req.hdr(x-replica) -m str a }}
    use_backend replica_b if {{ req.hdr(x-replica) -m str b }}
    default_backend replicas

backend replicas
    balance roundrobin
    http-response set-header X-Served-By %s
    server a 127.0.0.1:{port_a} check inter 300ms fall 1 rise 1
    server b 127.0.0.1:{port_b} check inter 300ms fall 1 rise 1

backend replica_a
    http-response set-header X-Served-By %s
    server a 127.0.0.1:{port_a}

backend replica_b
    http-response set-header X-Served-By %s
    server b 127.0.0.1:{port_b}
"""


class LoadBalancer:
    """Debian's ``haproxy`` in the foreground (``-db``) with :data:`HAPROXY_CONFIG`."""

    def __init__(self, work: Path, port: int, port_a: int, port_b: int) -> None:
        self.port = port
        self.config = work / "haproxy.cfg"
        self.config.write_text(HAPROXY_CONFIG.format(port=port, port_a=port_a, port_b=port_b))
        self.log_path = work / "haproxy.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(binary).exists():
            raise RuntimeError("haproxy is not installed: .ci/run installs Debian's haproxy")
        subprocess.run([binary, "-c", "-q", "-f", str(self.config)], check=True, capture_output=True, timeout=30)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [binary, "-db", "-f", str(self.config)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        for name in ("a", "b"):
            headers = {ROUTE: name}
            wait_until(lambda: http_ok(f"{self.url}/health", headers), 30, f"HAProxy to reach replica {name}")  # noqa: B023

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


# --- a login through the load balancer -----------------------------------------------------------------------

_USER_ID = re.compile(r"<dd id=\"user-id\">([^<]*)</dd>")
_REASON = re.compile(r"<p id=\"reason\">(.*?)</p>", re.S)
_RUN_ID = re.compile(r"<code id=\"run-id\">([^<]*)</code>")


def route(replica: str | None) -> dict[str, str]:
    """The headers that send a request to one replica (None: HAProxy's round-robin)."""
    return {ROUTE: replica} if replica is not None else {}


@dataclass(frozen=True)
class Login:
    """The proxy's answer to a login's callback."""

    user: str
    status: int
    location: str | None
    text: str
    start_server: str | None
    callback_server: str | None
    session: str | None

    @property
    def ok(self) -> bool:
        return self.status == 303 and self.location == "/ui/?login=success" and self.session is not None

    @property
    def database_error(self) -> bool:
        return self.status == 503 and html.escape(DATABASE_ERROR) in self.text

    @property
    def reason(self) -> str:
        """The error page's reason (and run id), or the start of the body."""
        match = _REASON.search(self.text)
        if match is None:
            return repr(self.text[:200])
        run = _RUN_ID.search(self.text)
        return html.unescape(match.group(1)) + (f" (run {run.group(1)})" if run else "")

    def __str__(self) -> str:
        return (
            f"login of {self.user}: {self.status} {self.location or ''} (started on {self.start_server}, "
            f"callback on {self.callback_server}) {'' if self.ok else self.reason}"
        )


def new_client() -> httpx.AsyncClient:
    """A browser of its own (cookie jar); redirects are followed by :func:`sign_in`, one by one."""
    return httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0), follow_redirects=False)


async def authorize(client: httpx.AsyncClient, lb: str, user: str, *, start: str | None = None) -> tuple[str, str]:
    """Start a login at the load balancer and sign in at the IdP; returns (the callback URL the IdP sends the
    browser to, the replica that served /sso/key/generate). The callback itself is not requested."""
    response = await client.get(f"{lb}/sso/key/generate", headers=route(start))
    assert response.status_code == 303, f"/sso/key/generate: {response.status_code} {response.text[:300]}"
    served = response.headers.get(SERVED_BY, "?")
    for _ in range(12):
        if response.is_redirect:
            target = urljoin(str(response.url), response.headers["location"])
            if target.startswith(f"{lb}/"):
                return target, served
            response = await client.get(target)
            continue
        action, data = idp_form(response, user)
        response = await client.post(action, data=data)
    raise AssertionError(f"the IdP did not send the browser back to the load balancer: {response.url}")


async def callback(client: httpx.AsyncClient, url: str, user: str, start_server: str, *, finish: str | None) -> Login:
    """Request the callback URL (through the load balancer) and describe the proxy's answer."""
    response = await client.get(url, headers=route(finish))
    return Login(
        user=user,
        status=response.status_code,
        location=response.headers.get("location"),
        text=response.text,
        start_server=start_server,
        callback_server=response.headers.get(SERVED_BY),
        session=response.cookies.get(COOKIE_NAME),
    )


async def sign_in(lb: str, user: str, *, start: str | None = None, finish: str | None = None) -> Login:
    """One whole login in a fresh browser: /sso/key/generate served by ``start``, the IdP's pages, then
    /sso/callback served by ``finish`` (None: whichever replica HAProxy's round-robin picks)."""
    async with new_client() as client:
        url, served = await authorize(client, lb, user, start=start)
        return await callback(client, url, user, served, finish=finish)


async def whoami(lb: str, session: str, replica: str) -> str | None:
    """The user id the dashboard shows for this session cookie on ``replica`` (None: signed out)."""
    async with httpx.AsyncClient(timeout=30.0) as client:
        response = await client.get(f"{lb}/ui/", headers={ROUTE: replica, "Cookie": f"{COOKIE_NAME}={session}"})
    assert response.status_code == 200, response.text[:300]
    assert response.headers.get(SERVED_BY) == replica
    match = _USER_ID.search(response.text)
    return html.unescape(match.group(1)) if match else None


async def logout(lb: str, session: str, replica: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30.0) as client:
        response = await client.post(f"{lb}/ui/logout", headers={ROUTE: replica, "Cookie": f"{COOKIE_NAME}={session}"})
    assert response.headers.get(SERVED_BY) == replica
    return response
