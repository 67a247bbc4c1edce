"""Red team, round 3: the runner/SDK refactor (named confinement steps, one framing module, wire error codes)
and safe rollout (the candidate's shadow runs, kept hook versions and their sources, ``hookjail replay``, the
console's rollout pages), attacked by a hook author who has read the code.

Each test runs the hostile hook through the real runner or the real proxy app in-process and asserts the attack
is stopped; a test that fails documents a hole (see its docstring for the root cause).
"""

from __future__ import annotations

import html
import importlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from proxy._db import Database, HookVersion, Team, TeamMember, UISession, VersionRecord
from runner import HookProtocolError, HookRunner, HookSpec, Limits, Sandbox
from tests.proxy.harness import MASTER_KEY, write_config, write_hook
from tests.proxy.inprocess import offline_environ, running_app
from tests.proxy.test_console import client, signed_in

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]
SECRET = "sk-operator-secret-4d1f"


def _module(*names: str) -> ModuleType:
    """The first of these modules that imports (the proxy's modules are being moved into packages)."""
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError(f"none of {names}")


def _replay() -> ModuleType:
    return _module("proxy.cli._replay", "proxy._replay")


VALUES = """
async def custom_sso_handler(userIDPInfo):
    return {"models": [], "user_id": userIDPInfo.id, "user_email": userIDPInfo.email,
            "user_role": "internal_user", "max_budget": 1.0, "budget_duration": "30d"}
"""


def openid(local: str) -> dict[str, Any]:
    return {"id": local, "email": f"{local}@example.com", "provider": "generic", "subject": local, "issuer": "idp"}


@asynccontextmanager
async def proxy_app(config: Path) -> AsyncIterator[FastAPI]:
    """The real proxy app (lifespan and all: hook, candidate, versions kept) on ``config``."""
    async with running_app(config, offline_environ(), allow_weak_sandbox=True) as application:
        yield application


async def kept_versions(database: Database) -> list[HookVersion]:
    async with database.session() as session:
        return list(await session.scalars(select(HookVersion)))


def planted_package(directory: Path, name: str = "hookpkg") -> Path:
    """A hook package whose author ships a symlink to a proxy-readable file, in a directory the worker
    template never reads (hidden, like ``.git``; ``__pycache__`` works too)."""
    (directory / "secrets.env").write_text(f"DATABASE_PASSWORD={SECRET}\n")
    package = directory / name
    (package / ".cache").mkdir(parents=True)
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """
            import os

            def _leak():
                try:
                    with open(os.path.join(os.path.dirname(__file__), ".cache", "leak.py")) as file:
                        return file.read().strip()
                except OSError as exc:
                    return f"errno-{exc.errno}"

            async def custom_sso_handler(userIDPInfo):
                return {"models": [], "user_id": _leak()[:200], "user_email": None,
                        "user_role": "internal_user", "max_budget": 1.0, "budget_duration": "30d"}
            """
        )
    )
    os.symlink(directory / "secrets.env", package / ".cache" / "leak.py")
    return package


# --- kept versions: what the proxy reads of a hook package, outside the sandbox ---------------------------------


async def test_cant_have_the_proxy_keep_a_file_the_hook_links_to(tmp_path: Path) -> None:
    """Was a hole, now stopped.
    ``proxy._hook.hook_source`` reads every ``*.py`` under the package with ``Path.rglob`` and
    ``read_bytes`` in the proxy's own process (root, unconfined), following symlinks and entering hidden and
    ``__pycache__`` directories that the template's ``_hookcode._sources`` skips. So the hook imports fine (the
    confined template never opens the link), and the proxy stores the target's text (here a secrets file;
    ``/proc/self/environ`` gives the master key and client secret) in ``hook_versions.sources``, shown to
    ``proxy_admin_viewer`` on the diff page and rebuilt by ``hookjail replay``."""
    planted_package(tmp_path)
    config = write_config(
        tmp_path,
        hook_source=None,
        general_settings={"custom_sso": "hookpkg.custom_sso_handler"},
        hook_settings={"sandbox": "strict"},
    )
    async with proxy_app(config) as app:
        granted = await app.state.login.login(openid("alice"))
        # the sandbox does its part: the live hook cannot read through its own link
        assert SECRET not in granted.values.user_id
        assert granted.values.user_id.startswith("errno-")
        kept = await kept_versions(app.state.database)
    assert kept, "the live version is kept"
    for version in kept:
        assert SECRET not in repr(version.sources)


async def test_cant_get_a_replayed_version_to_hand_the_sandbox_a_proxy_file(tmp_path: Path) -> None:
    """HOLE (the chain of the test above). ``hookjail replay --candidate <sha>`` writes the kept sources back
    (``write_version``) as regular files inside the package, readable by the worker: what was a link the sandbox
    refused is now the hook's own file, and the replayed candidate returns the proxy's secret in its values
    (printed in the replay report, a CI log)."""
    package = planted_package(tmp_path)
    hook_source = _module("proxy._hook").hook_source
    source = hook_source(package)
    version = SimpleNamespace(
        sha256=source.sha256, file=source.file, function="custom_sso_handler", sources=source.sources
    )
    directory = Path(tempfile.mkdtemp(prefix="hookjail-replay-"))
    try:
        path = _replay().write_version(version, directory)
        spec = HookSpec(path=str(path), function="custom_sso_handler")
        async with HookRunner(spec, Limits(timeout=10.0, prefork=1), Sandbox(strict=True)) as runner:
            result = await runner.call({"id": "u1", "email": "u1@example.com"})
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    assert SECRET not in repr(result.value)


def test_cant_exhaust_the_proxys_memory_with_a_device_in_the_package(tmp_path: Path) -> None:
    """Was a hole, now stopped.
    The same unbounded read: ``hook_source`` reads each file whole before it compares the total with
    ``MAX_KEPT_SOURCE``. A link ``.cache/zero.py -> /dev/zero`` (or a FIFO: then the read blocks the event loop
    for good) is never opened by the template, so the hook imports; then the proxy reads /dev/zero until it is
    out of memory, at start-up (``HookService.__aenter__``) or on a login that reloads it (``_loaded``; the
    ``MemoryError`` is not an ``OSError``, so it escapes ``reload_if_changed``). Run in a child with a 1 GiB
    address-space limit, so that the hole shows as a ``MemoryError`` instead of the OOM killer."""
    package = tmp_path / "hookpkg"
    (package / ".cache").mkdir(parents=True)
    (package / "__init__.py").write_text(VALUES)
    os.symlink("/dev/zero", package / ".cache" / "zero.py")
    script = textwrap.dedent(
        f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from proxy._hook import hook_source
        try:
            source = hook_source(Path({str(package)!r}))
        except BaseException as exc:
            print("raised", type(exc).__name__)
        else:
            print("ok", sorted(source.sources or {{}}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.stdout.split()[:1] == ["ok"], done.stdout + done.stderr


async def test_cant_pass_a_candidate_off_as_the_live_version(tmp_path: Path) -> None:
    """Was a hole, now stopped.
    A version's SHA-256 hashes the package's ``.py`` files one after the other, without their names
    or lengths (``proxy._hook.hook_source``): a package whose files concatenate to the live module's text has
    the live version's SHA-256 while it behaves otherwise. The candidate below splits the live module in two
    (``__init__.py`` + ``a.py``) and grants proxy_admin; it is recorded as a load of the live version (first
    row wins, so its own sources are never kept), the console shows it as the live version (empty diff), its
    shadow runs are counted under the live SHA-256, and ``replay --candidate <sha>`` rebuilds the live hook."""
    head = textwrap.dedent(
        """
        try:
            from .a import ROLE
        except ImportError:
            pass


        async def custom_sso_handler(userIDPInfo):
            return {"models": [], "user_id": userIDPInfo.id, "user_email": userIDPInfo.email,
                    "user_role": ROLE, "max_budget": 1.0, "budget_duration": "30d"}
        """
    )
    tail = 'ROLE = "proxy_admin" if __file__.endswith("a.py") else "internal_user"\n'
    candidate = tmp_path / "candpkg"
    candidate.mkdir()
    (candidate / "__init__.py").write_text(head)
    (candidate / "a.py").write_text(tail)
    config = write_config(
        tmp_path,
        hook_source=head + tail,
        hook_settings={"sandbox": "permissive", "candidate": "candpkg.custom_sso_handler"},
    )
    (tmp_path / "custom_sso.py").write_text(head + tail)  # byte for byte (write_config dedents)
    async with proxy_app(config) as app:
        live_sha = app.state.hook.describe().sha256
        candidate_sha = app.state.shadow.candidate.describe().sha256
        granted = await app.state.login.login(openid("alice"))
        assert granted.values.user_role == "internal_user"
        database: Database = app.state.database
        with anyio.fail_after(20):
            while (shadow := await database.get_candidate(granted.run_id or "")) is None:
                await anyio.sleep(0.02)
    assert shadow.diff.get("user_role") == {"live": "internal_user", "candidate": "proxy_admin"}
    # a version that decides otherwise must not be named as the live version
    assert candidate_sha != live_sha
    assert shadow.sha256 != live_sha


async def test_cant_stall_the_proxy_with_a_crafted_version_diff(tmp_path: Path) -> None:
    """Was a hole, now stopped.
    ``/ui/versions/diff`` runs ``difflib.unified_diff`` over the two kept sources (up to 1 MiB each)
    in a thread; ``MAX_DIFF_LINES`` only cuts the output, after SequenceMatcher has matched every line. Lines
    drawn from a few hundred values (each under the 1 % "popular" cut-off that autojunk would drop) make the
    matching quadratic: about 4 s of CPU here for 200 KB each, minutes for 1 MiB each, holding the GIL against
    the event loop that serves the logins; each page load (or reload) starts another. The author ships both
    versions (live and candidate); an admin only has to click "what changed"."""
    config = write_config(tmp_path, hook_source=VALUES, hook_settings={"sandbox": "permissive"})
    rng = random.Random(3)
    words = [f"{i:x}" for i in range(500)]

    def crafted() -> dict[str, str]:
        return {"custom_sso.py": "\n".join(rng.choice(words) for _ in range(60_000))}

    async with proxy_app(config) as app:
        database: Database = app.state.database
        for sha, sources in (("a" * 64, crafted()), ("b" * 64, crafted())):
            await database.record_version(
                VersionRecord(
                    sha256=sha, file="custom_sso.py", function="custom_sso_handler", sources=sources, loaded_by="start"
                )
            )
        token = await signed_in(app, "root", "proxy_admin")
        async with client(app, token) as browser:
            response = await browser.get(f"/ui/versions/diff?from={'a' * 12}&to={'b' * 12}", timeout=120)
    assert response.status_code == 200
    assert 'id="diff-too-large"' in response.text  # refused before any matching, whatever the machine's speed
    assert 'id="diff"' not in response.text


# --- replay: stored paths --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "sources"),
    [
        ("hookpkg/", {"__init__.py": "", "../escaped.py": "x = 1"}),
        ("hookpkg/", {"__init__.py": "", "sub/../../escaped.py": "x = 1"}),
        ("hookpkg/", {"__init__.py": "", "/tmp/hookjail-escaped.py": "x = 1"}),
        ("hookpkg/", {"__init__.py": "", "": "x = 1"}),
        ("../escaped/", {"__init__.py": ""}),
        ("/tmp/escaped.py", {"/tmp/escaped.py": "x = 1"}),
        ("a/b.py", {"a/b.py": "x = 1"}),
    ],
)
def test_cant_write_outside_the_replay_dir_with_stored_paths(
    tmp_path: Path, file: str, sources: dict[str, str]
) -> None:
    """Stopped: a kept version's file name and source paths (the database's word) are relative, without ``..``
    or empty parts, or the replay refuses the version before writing anything outside its temp dir."""
    replay = _replay()
    directory = tmp_path / "replay"
    directory.mkdir()
    version = SimpleNamespace(sha256="c" * 64, file=file, function="f", sources=sources)
    with pytest.raises(replay.ReplayError):
        replay.write_version(version, directory)
    assert not (tmp_path / "escaped.py").exists()
    assert not (tmp_path / "escaped").exists()
    assert not Path("/tmp/hookjail-escaped.py").exists()
    assert not Path("/tmp/escaped.py").exists()


def test_cant_follow_a_planted_symlink_out_of_the_replay_dir(tmp_path: Path) -> None:
    """Stopped: the replay writes into a fresh ``mkdtemp`` directory; a stored path cannot name a link, and a
    package directory named like a link that exists elsewhere is created fresh under it."""
    replay = _replay()
    directory = Path(tempfile.mkdtemp(prefix="hookjail-replay-"))
    outside = tmp_path / "outside"
    outside.mkdir()
    try:
        version = SimpleNamespace(
            sha256="d" * 64, file="hookpkg/", function="f", sources={"__init__.py": "", "sub/x.py": "x = 1"}
        )
        path = replay.write_version(version, directory)
        assert path.resolve().is_relative_to(directory.resolve())
        for written in directory.rglob("*"):
            assert not written.is_symlink()
            assert written.resolve().is_relative_to(directory.resolve())
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    assert not any(outside.iterdir())


# --- the candidate: writes, sessions, the login's result ---------------------------------------------------------

WRITER = """
from sdk import add_new_member, new_user


async def custom_sso_handler(userIDPInfo):
    await new_user({"user_id": "cand-" + userIDPInfo.id, "user_role": "internal_user", "max_budget": 0.5,
                    "teams": ["cand-team"]})
    await add_new_member({"team_id": "cand-team", "member": {"user_id": userIDPInfo.id, "role": "admin"}})
    return {"models": ["gpt-4o"], "user_id": "cand-" + userIDPInfo.id, "user_email": None,
            "user_role": "proxy_admin", "max_budget": None, "budget_duration": None}
"""


async def test_cant_commit_a_candidates_writes_or_sessions(tmp_path: Path) -> None:
    """Stopped: the candidate's ``new_user`` / ``add_new_member`` are staged and dropped, the user it names gets no
    row and no session, and the login is decided by the live hook alone."""
    write_hook(tmp_path / "writer.py", WRITER)
    config = write_config(
        tmp_path,
        hook_source=VALUES,
        hook_settings={
            "sandbox": "permissive",
            "permissions": ["user_info", "new_user", "add_new_member", "team_info"],
            "candidate": "writer.custom_sso_handler",
        },
    )
    async with proxy_app(config) as app:
        database: Database = app.state.database
        async with client(app) as api:
            made = await api.post(
                "/team/new", json={"team_id": "cand-team"}, headers={"Authorization": f"Bearer {MASTER_KEY}"}
            )
            assert made.status_code == 200, made.text
        granted = await app.state.login.login(openid("bob"))
        assert granted.values.user_id == "bob" and granted.values.user_role == "internal_user"
        with anyio.fail_after(20):
            while (shadow := await database.get_candidate(granted.run_id or "")) is None:
                await anyio.sleep(0.02)
        assert shadow.outcome == "ok", (shadow.outcome, shadow.error)
        assert await database.get_user("cand-bob") is None
        user = await database.get_user("bob")
        assert user is not None and user.role == "internal_user"
        async with database.session() as session:
            assert [team.id for team in await session.scalars(select(Team))] == ["cand-team"]
            assert list(await session.scalars(select(TeamMember))) == []
            sessions = [(row.user_id) for row in await session.scalars(select(UISession))]
        assert sessions == ["bob"]  # the live login's one session, none for the candidate's user


# --- the console: the hook's text on the rollout pages -----------------------------------------------------------

XSS = "<script>alert(1)</script>"

SCRIPTED = f"""
# {XSS} </pre><img src=x onerror=alert(2)>
async def custom_sso_handler(userIDPInfo):
    if (userIDPInfo.email or "").startswith("err"):
        raise RuntimeError("{XSS}")
    return {{"models": ["{XSS}"], "user_id": userIDPInfo.id, "user_email": userIDPInfo.email,
            "user_role": "internal_user", "max_budget": 1.0, "budget_duration": "30d"}}
"""


async def test_cant_script_the_rollout_pages_with_sources_values_or_errors(tmp_path: Path) -> None:
    """Stopped: stored sources, the candidate's values and errors, and its file name reach the candidate, run,
    versions and diff pages autoescaped (and the strict CSP forbids inline script anyway)."""
    write_hook(tmp_path / "scripted.py", SCRIPTED)
    config = write_config(
        tmp_path,
        hook_source=VALUES,
        hook_settings={"sandbox": "permissive", "candidate": "scripted.custom_sso_handler"},
    )
    async with proxy_app(config) as app:
        database: Database = app.state.database
        runs = []
        for local in ("carol", "err"):
            granted = await app.state.login.login(openid(local))
            runs.append(granted.run_id)
            with anyio.fail_after(20):
                while await database.get_candidate(granted.run_id or "") is None:
                    await anyio.sleep(0.02)
        live = app.state.hook.describe().sha256
        candidate = app.state.shadow.candidate.describe().sha256
        token = await signed_in(app, "viewer", "proxy_admin_viewer")
        pages = [
            "/ui/candidate",
            "/ui/versions",
            f"/ui/versions/diff?from={live[:12]}&to={candidate[:12]}",
            *(f"/ui/runs/{run_id}" for run_id in runs),
        ]
        async with client(app, token) as browser:
            for page in pages:
                response = await browser.get(page)
                assert response.status_code == 200, page
                assert "<script>alert" not in response.text, page
                assert "<img src=x" not in response.text, page
                assert "script-src 'self'" in response.headers["content-security-policy"]
            diff = await browser.get(pages[2])
            assert html.escape(XSS, quote=False) in diff.text or "&lt;script&gt;" in diff.text


# --- the candidate and the live logins' CPU ----------------------------------------------------------------------

PRIORITY = """
import os


async def custom_sso_handler(userIDPInfo):
    policy = os.sched_getscheduler(0)
    return {"models": [], "user_id": f"{os.getpriority(os.PRIO_PROCESS, 0)}:{policy}", "user_email": None,
            "user_role": "internal_user", "max_budget": 1.0, "budget_duration": "30d"}
"""


async def test_cant_compete_with_live_logins_for_the_cpu(tmp_path: Path) -> None:
    """HOLE (design). The candidate's workers run at the live hook's own CPU priority: a candidate that spins
    its ``cpu_seconds`` on every login (``max_concurrency`` of them at once) takes the cores the live hook's
    calls need, so "off the login's path" holds for waiting but not for CPU, and live logins slow down or time
    out. A shadow run should yield to the live traffic (nice 19 or SCHED_IDLE for the candidate's template,
    set by the runner before it confines itself; or a cgroup with a low cpu.weight)."""
    write_hook(tmp_path / "prio.py", PRIORITY)
    config = write_config(
        tmp_path,
        hook_source=PRIORITY,
        hook_settings={"sandbox": "permissive", "candidate": "prio.custom_sso_handler"},
    )
    async with proxy_app(config) as app:
        database: Database = app.state.database
        granted = await app.state.login.login(openid("dave"))
        with anyio.fail_after(20):
            while (shadow := await database.get_candidate(granted.run_id or "")) is None:
                await anyio.sleep(0.02)
    live_nice, live_policy = map(int, granted.values.user_id.split(":"))
    assert shadow.decided is not None
    candidate_nice, candidate_policy = map(int, shadow.decided["user_id"].split(":"))
    idle = candidate_policy == os.SCHED_IDLE and live_policy != os.SCHED_IDLE
    assert idle or candidate_nice >= live_nice + 10


# --- frames a hook forges on its channel -------------------------------------------------------------------------

FORGER = """
import runner._hostcall as hostcall
from runner._framing import FrameEncoder
from runner._protocol import Failure, HostReply


def handler(info):
    channel = hostcall._channel
    how = info["how"]
    if how == "huge_header":
        channel.sendall((0xFFFFFFFF).to_bytes(4, "big") + b"x" * 64)
    elif how == "truncated":
        channel.sendall((1000).to_bytes(4, "big") + b"x" * 10)
        channel.close()
        import os
        os._exit(0)
    elif how == "not_from_child":
        channel.sendall(FrameEncoder().encode(HostReply(id=1, ok=True, value={"role": "proxy_admin"})))
    elif how == "long_failure":
        channel.sendall(FrameEncoder().encode(Failure(kind="raised", type_name="T" * 500_000, message="m" * 500_000)))
    import time
    time.sleep(5)
"""


@pytest.mark.parametrize("how", ["huge_header", "truncated", "not_from_child"])
async def test_cant_make_the_parent_misread_forged_frames(operator_dir: Path, how: str) -> None:
    """Stopped: an oversized length, a frame cut short by the child's exit and a frame of a type the child may not
    send are each a ``HookProtocolError``, promptly (not the call's timeout)."""
    path = operator_dir / "custom_sso.py"
    path.write_text(FORGER)
    spec = HookSpec(path=str(path), function="handler")
    async with HookRunner(spec, Limits(timeout=8.0, prefork=1), Sandbox(strict=True, read_paths=())) as runner:
        with pytest.raises(HookProtocolError):  # at once: waiting for the call's timeout would be a HookTimeout
            await runner.call({"how": how})


async def test_cant_smuggle_an_unbounded_error_through_a_forged_failure(operator_dir: Path) -> None:
    """Stopped: a forged ``Failure`` frame's type name and message are clipped by the parent."""
    path = operator_dir / "custom_sso.py"
    path.write_text(FORGER)
    spec = HookSpec(path=str(path), function="handler")
    runner_errors = _module("runner._errors")
    async with HookRunner(spec, Limits(timeout=8.0, prefork=1), Sandbox(strict=True, read_paths=())) as runner:
        with pytest.raises(runner_errors.HookRaised) as raised:
            await runner.call({"how": "long_failure"})
    assert len(raised.value.message) < 20_000
    assert len(raised.value.type_name) < 1_000


# --- reloads: the fingerprint and in_worker() ----------------------------------------------------------------------

TOUCHER = """
import os, sys


def handler(info):
    import runner
    path = sys.modules[__name__].__file__
    out = {"in_worker": runner.in_worker()}
    for name, attempt in (
        ("utime", lambda: os.utime(path, (0, 0))),
        ("append", lambda: open(path, "a").close()),
        ("sibling", lambda: open(os.path.join(os.path.dirname(path), "zz.py"), "w").close()),
    ):
        try:
            attempt()
            out[name] = "done"
        except OSError as exc:
            out[name] = exc.errno
    runner._worker._in_worker = False
    out["faked"] = runner.in_worker()
    return out
"""


async def test_cant_change_its_own_fingerprint_or_the_parents_in_worker(operator_dir: Path) -> None:
    """Stopped: the hook cannot touch its own file or add one beside it (what the fingerprint compares, to force
    or dodge a reload); what it does to ``runner.in_worker()`` stays in its own process."""
    import errno

    import runner
    from runner import hook_fingerprint

    path = operator_dir / "custom_sso.py"
    path.write_text(TOUCHER)
    before = hook_fingerprint(path)
    spec = HookSpec(path=str(path), function="handler")
    async with HookRunner(spec, Limits(timeout=8.0, prefork=1), Sandbox(strict=True, read_paths=())) as hook:
        value = (await hook.call({})).value
        assert not hook.hook_changed
    assert value["in_worker"] is True
    for name in ("utime", "append", "sibling"):
        assert value[name] in (errno.EACCES, errno.EPERM, errno.EROFS), (name, value)
    assert hook_fingerprint(path) == before
    assert not (operator_dir / "zz.py").exists()
    assert runner.in_worker() is False


# --- the refactored confinement: every layer, in the old order, failing closed -----------------------------------


def test_cant_find_a_layer_dropped_or_reordered_by_the_confinement_refactor() -> None:
    """Stopped: ``Confinement.prepare`` runs its named steps in the order the monolithic version applied the
    layers (host checks first, no_new_privs, namespaces, private tmp, drop capabilities, Landlock, seccomp,
    the reaper last) and the strict failure of any step raises instead of recording the layer off."""
    confine = importlib.import_module("runner._confine")
    steps = [step.__name__ for step in confine._ZYGOTE_STEPS]
    assert steps == [
        "check_host",
        "no_new_privs",
        "namespaces",
        "private_tmp",
        "drop_capabilities",
        "landlock",
        "seccomp",
        "reaper",
    ]
    setup = confine._ZygoteSetup(network=False, read_paths=(), tmp_root=None, strict=True, tmp_size_mb=1)
    with pytest.raises(confine.SandboxUnavailable):
        setup.unavailable("seccomp", "gone")
    assert "seccomp" not in setup.layers


async def test_cant_run_with_fewer_layers_than_the_host_offers(operator_dir: Path) -> None:
    """Stopped: on this host the strict sandbox's template reports every layer on."""
    path = operator_dir / "custom_sso.py"
    path.write_text("def handler(info):\n    return 1\n")
    spec = HookSpec(path=str(path), function="handler")
    async with HookRunner(spec, Limits(timeout=8.0, prefork=1), Sandbox(strict=True, read_paths=())) as hook:
        layers = hook.report_layers()
    for layer in (
        "no_new_privs",
        "user_namespace",
        "network_namespace",
        "pid_namespace",
        "ipc_namespace",
        "landlock",
        "seccomp",
    ):
        assert layers.get(layer) not in (None, False), (layer, layers)
