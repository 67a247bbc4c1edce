"""The runner survives its worker template dying, reloads changed hooks safely, and leaks nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from runner import HookError, HookImportError, HookRunner, HookSpec, Limits

from .conftest import SANDBOX

pytestmark = pytest.mark.anyio

ECHO = """
import os
def handler(info):
    return {"n": info["n"], "pid": os.getpid()}
"""


def _template_pid(runner: HookRunner) -> int:
    template = runner._template
    assert template is not None and template.ready is not None
    return template.ready.pid


async def test_killed_template_is_restarted_and_next_call_succeeds(
    write_hook: Callable[..., HookSpec],
) -> None:
    spec = write_hook(ECHO)
    async with HookRunner(spec, Limits(timeout=10), SANDBOX) as runner:
        assert (await runner.call({"n": 1})).value["n"] == 1
        old = _template_pid(runner)
        os.kill(old, signal.SIGKILL)
        # Every call goes on working, whenever the parent notices the death: a call caught by it (a reserve
        # child of the dying template took it) is run again on the new template.
        for n in range(2, 40):
            assert (await runner.call({"n": n})).value["n"] == n
            if runner.restarts:
                break
        assert runner.restarts == 1
        assert (await runner.call({"n": 99})).value["n"] == 99
        assert _template_pid(runner) != old


class _AttemptHost:
    """Answers the hook's one host call ("first attempt?") and kills the template the first time it is asked:
    the hook is then certainly running, mid-call, when its template dies."""

    def __init__(self, runner: HookRunner) -> None:
        self.runner = runner
        self.asked = 0
        self.resets = 0

    async def __call__(self, method: str, args: dict[str, object]) -> bool:
        self.asked += 1
        if self.asked == 1:
            os.kill(_template_pid(self.runner), signal.SIGKILL)
            return True
        return False

    def reset(self) -> None:
        self.resets += 1


async def test_call_whose_template_dies_mid_run_is_run_again(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        import os, time
        from runner import host_call

        def handler(info):
            if host_call("first_attempt", {}):
                time.sleep(3600)  # the template is being killed under us
            return {"n": info["n"], "pid": os.getpid()}
        """
    )
    async with HookRunner(spec, Limits(timeout=10), SANDBOX) as runner:
        host = _AttemptHost(runner)
        old = _template_pid(runner)
        result = await runner.call({"n": 1}, host=host)
        assert result.value["n"] == 1
        assert (host.asked, host.resets) == (2, 1)  # run twice; the lost attempt's host state was reset
        assert result.host_calls == (("first_attempt", "ok"),)  # only the attempt that counted is reported
        assert runner.restarts == 1 and _template_pid(runner) != old
        assert (await runner.call({"n": 2}, host=host)).value["n"] == 2


async def test_reload_swaps_in_the_changed_hook(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook("def handler(info):\n    return {'version': 1}\n")
    async with HookRunner(spec, Limits(timeout=10), SANDBOX) as runner:
        assert (await runner.call({})).value == {"version": 1}
        assert await runner.reload(if_changed=True) is False
        Path(spec.path).write_text("def handler(info):\n    return {'version': 2}\n")
        os.utime(spec.path, ns=(1, 1))  # a distinct mtime even on coarse-grained filesystems
        assert runner.hook_changed
        assert await runner.reload(if_changed=True) is True
        assert (await runner.call({})).value == {"version": 2}


async def test_reload_keeps_the_last_good_hook_when_the_new_one_fails(
    write_hook: Callable[..., HookSpec],
) -> None:
    spec = write_hook("def handler(info):\n    return {'version': 1}\n")
    async with HookRunner(spec, Limits(timeout=10), SANDBOX) as runner:
        Path(spec.path).write_text("def handler(info):\n    return {\n")
        with pytest.raises(HookImportError, match="syntax error"):
            await runner.reload()
        assert (await runner.call({})).value == {"version": 1}
        assert runner.healthy


async def test_reload_lets_running_calls_finish(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        import time
        def handler(info):
            time.sleep(0.5)
            return {'version': 1}
        """
    )
    async with HookRunner(spec, Limits(timeout=10), SANDBOX) as runner:
        running = asyncio.create_task(runner.call({}))
        await asyncio.sleep(0.2)
        Path(spec.path).write_text("def handler(info):\n    return {'version': 2}\n")
        await runner.reload()
        assert (await running).value == {"version": 1}
        assert (await runner.call({})).value == {"version": 2}


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _children(state: str | None = None) -> list[int]:
    """Pids of this process's children (optionally only those in ``state``, e.g. "Z" for zombies)."""
    me = str(os.getpid())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[1] == me and (state is None or fields[0] == state):
            found.append(int(entry))
    return found


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_thousand_calls_leak_no_fds_zombies_or_memory(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        textwrap.dedent(
            """
            import time
            def handler(info):
                if info["n"] % 50 == 0:
                    time.sleep(3600)  # killed at its deadline
                if info["n"] % 50 == 1:
                    raise ValueError("bad")
                return {"n": info["n"]}
            """
        )
    )
    fds_before = _open_fds()
    async with HookRunner(spec, Limits(timeout=0.3, max_concurrency=8), SANDBOX) as runner:

        async def one(n: int) -> None:
            with contextlib.suppress(HookError):
                await runner.call({"n": n})

        await asyncio.gather(*(one(n) for n in range(200)))
        rss = _rss_kb()
        for start in range(200, 1200, 100):
            await asyncio.gather(*(one(n) for n in range(start, start + 100)))
        await asyncio.sleep(0.3)
        assert _children("Z") == []
        assert len(_children()) == 1  # only the template
        assert _rss_kb() - rss < 16 * 1024
    assert _open_fds() == fds_before


HOLDER = """
import asyncio, os, sys
from runner import HookRunner, HookSpec, Limits
from tests.runner.test_resilience import _children_of

async def main():
    async with HookRunner(HookSpec(sys.argv[1], "handler"), Limits(timeout=3600, cpu_seconds=3600)) as runner:
        template = runner._template.ready.pid

        async def host(method, args):
            # the hook is running and has done all it can to persist: report every worker process
            print(" ".join(str(pid) for pid in [template, *_children_of(template)]), flush=True)
            await asyncio.sleep(3600)

        await runner.call({"n": 0}, host=host)

asyncio.run(main())
"""

# A hook that tries to outlive the proxy: from its module body and its handler it clears its parent-death
# signal, ignores every signal it can, tries to fork and to leave threads running.
PERSISTENT = """
import ctypes, os, signal, threading, time
from runner import host_call

libc = ctypes.CDLL(None)
libc.prctl(1, 0, 0, 0, 0)  # PR_SET_PDEATHSIG: none
for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
    signal.signal(sig, signal.SIG_IGN)
try:
    os.fork()
except OSError:
    pass
threading.Thread(target=time.sleep, args=(3600,)).start()

def handler(info):
    libc.prctl(1, 0, 0, 0, 0)
    host_call("persisting", {})
    time.sleep(3600)
"""


def _children_of(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (the template's reaper and its reserve children)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == str(pid):
                found.append(int(entry))
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def test_nothing_outlives_a_killed_proxy(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(PERSISTENT)
    proxy = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(spec.path)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parents[2],
        text=True,
    )
    assert proxy.stdout is not None
    with proxy.stdout:
        pids = [int(pid) for pid in proxy.stdout.readline().split()]
    assert len(pids) >= 3  # the template, its reaper and at least the child running the hook
    proxy.kill()
    proxy.wait()
    # The chain is immediate (parent-death signals, then the kernel emptying the PID namespace): measured in
    # tens of milliseconds. The 2 s the issue asks for is kept with room for a machine loaded 3x over.
    deadline = asyncio.get_running_loop().time() + 5.0
    while any(_running(pid) for pid in pids) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    assert [pid for pid in pids if _running(pid)] == []
