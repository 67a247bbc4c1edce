"""Hostile hooks against processes: running programs, leftover processes, signals, ptrace, namespaces."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pyseccomp
import pytest

from runner import HookRunner

from ._hooks import LIMITS, call_once, hook_value, sandbox, write_hook

pytestmark = pytest.mark.anyio

_PTRACE_ATTACH = 16
_CLONE_NEWUSER = 0x10000000


def _number(name: str) -> int:
    return int(pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name))


def _marked_processes(marker: str) -> dict[int, int]:
    """Host pids of the processes whose environment holds ``marker``, each with its parent's pid."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as file:
                if marker.encode() not in file.read():
                    continue
            with open(f"/proc/{entry}/stat", "rb") as file:
                stat = file.read()
        except OSError:  # gone meanwhile
            continue
        found[int(entry)] = int(stat[stat.rindex(b")") + 2 :].split()[1])
    return found


async def test_cant_run_subprocess(operator_dir: Path) -> None:
    value = await hook_value(
        operator_dir,
        """
        import subprocess
        def handler(info):
            return observe(lambda: subprocess.run(["/bin/sh", "-c", "id"], capture_output=True).stdout)
        """,
    )
    assert value["errno"] == "EPERM"


async def test_cant_run_os_system(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        """
        import os
        def handler(info):
            return os.system("touch " + os.environ["TMPDIR"] + "/ran; echo ran")
        """,
    )
    result = await call_once(spec, sandbox(operator_dir))
    assert result.value == 127 << 8  # glibc: the shell could not be started
    assert "ran" not in result.stdout


async def test_cant_execv(operator_dir: Path) -> None:
    value = await hook_value(
        operator_dir,
        """
        import os
        def handler(info):
            return observe(lambda: os.execv("/bin/sh", ["sh", "-c", "id"]))
        """,
    )
    assert value["errno"] == "EPERM"


async def test_cant_double_fork_during_call(operator_dir: Path) -> None:
    value = await hook_value(
        operator_dir,
        """
        import os, time
        def spawn():
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    time.sleep(3600)
                os._exit(0)
        def handler(info):
            return observe(spawn)
        """,
    )
    assert value["errno"] == "EPERM"


async def test_cant_fork_from_the_module_body(operator_dir: Path) -> None:
    # The module body runs in the call's child, under the same seccomp filter as the handler: the double fork
    # that used to leave a process in the worker's PID namespace for the template's lifetime fails at once.
    spec = write_hook(
        operator_dir,
        """
        import os, time
        def spawn():
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    while True:
                        time.sleep(1)
                os._exit(0)
        TRIED = observe(spawn)
        def handler(info):
            return TRIED
        """,
    )
    assert (await call_once(spec, sandbox(operator_dir))).value == {"errno": "EPERM", "type": "PermissionError"}


async def test_cant_signal_proxy(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        f"""
        import os
        def handler(info):
            return observe(lambda: os.kill(info["proxy_pid"], {int(signal.SIGKILL)}))
        """,
    )
    value = (await call_once(spec, sandbox(operator_dir), {"proxy_pid": os.getpid()})).value
    assert value["errno"] == "ESRCH"  # the proxy has no pid in the worker's PID namespace


async def test_cant_signal_proxy_at_import_time(operator_dir: Path) -> None:
    # Signal 0: the same permission check as a real signal, harmless if the layers were broken. The module
    # body runs in the call's child, where the proxy has no pid (and its parent, the template, neither).
    spec = write_hook(
        operator_dir,
        """
        import os
        PARENT = os.getppid()
        TRIED = observe(lambda: os.kill(int(os.environ["PROXY_PID"]), 0))
        def handler(info):
            return {"parent": PARENT, **TRIED}
        """,
    )
    box = sandbox(operator_dir, env={"PROXY_PID": str(os.getpid())})
    value = (await call_once(spec, box)).value
    assert value == {"parent": 0, "errno": "ESRCH", "type": "ProcessLookupError"}


async def test_cant_signal_zygote(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        f"""
        import os
        def handler(info):
            return [observe(lambda: os.kill(pid, {int(signal.SIGKILL)})) for pid in (info["zygote"], 1)]
        """,
    )
    async with HookRunner(spec, LIMITS, sandbox(operator_dir)) as runner:
        assert runner._template is not None and runner._template.ready is not None
        zygote = runner._template.ready.pid
        value = (await runner.call({"id": "u1", "zygote": zygote})).value
        # The zygote has no pid in the namespace; its pid 1 is the reaper, outside the child's domain.
        assert value == [
            {"errno": "ESRCH", "type": "ProcessLookupError"},
            {"errno": "EPERM", "type": "PermissionError"},
        ]
        assert runner.healthy
        assert (await runner.call({"id": "u2", "zygote": zygote})).value == value


async def test_cant_signal_or_ptrace_another_logins_child(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        f"""
        import ctypes, os, time
        libc = ctypes.CDLL(None, use_errno=True)

        def ptrace(pid):
            if libc.syscall({_number("ptrace")}, {_PTRACE_ATTACH}, pid, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "ptrace")

        def handler(info):
            if info["id"] == "victim":
                time.sleep(1.5)
                return "survived"
            others = [pid for pid in range(1, 64) if pid != os.getpid()]
            kill = lambda pid: observe(lambda: os.kill(pid, {int(signal.SIGKILL)}))
            return {{
                "kill": sorted({{str(kill(pid)) for pid in others}}),
                "ptrace": sorted({{str(observe(lambda: ptrace(pid))) for pid in others}}),
            }}
        """,
    )
    async with HookRunner(spec, LIMITS, sandbox(operator_dir)) as runner:
        victim = asyncio.create_task(runner.call({"id": "victim"}))
        await asyncio.sleep(0.3)
        attacker = await runner.call({"id": "attacker"})
        assert (await victim).value == "survived"
    assert attacker.value == {
        "kill": [
            str({"errno": "EPERM", "type": "PermissionError"}),
            str({"errno": "ESRCH", "type": "ProcessLookupError"}),
        ],
        "ptrace": [str({"errno": "EPERM", "type": "PermissionError"})],
    }


async def test_cant_unshare(operator_dir: Path) -> None:
    value = await hook_value(
        operator_dir,
        f"""
        import ctypes
        def unshare():
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare({_CLONE_NEWUSER}) != 0:
                raise OSError(ctypes.get_errno(), "unshare")
        def handler(info):
            return observe(unshare)
        """,
    )
    assert value["errno"] == "EPERM"


async def test_cant_setns(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        """
        import ctypes
        def setns():
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.setns(0, 0) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        def handler(info):
            return [observe(setns), observe(lambda: open("/proc/1/ns/net"))]
        """,
    )
    value = (await call_once(spec, sandbox(operator_dir))).value
    assert [v["errno"] for v in value] == ["EPERM", "EACCES"]
