"""Seccomp: a child creates no process and runs no program; threads and event loops still work."""

from __future__ import annotations

import platform
import signal

from ._jail import Jail

_CLONE_NEWUSER = 0x10000000
_SIGCHLD = 17
_SYS_CLONE = {"x86_64": 56, "aarch64": 220}[platform.machine()]
_SYS_CLONE3 = 435


def test_cant_fork(jail: Jail) -> None:
    report = jail.run("import os\ndef attempt(ctx):\n    return os.fork()")
    assert report["errno"] == "EPERM"


def test_cant_clone_process_with_raw_syscall(jail: Jail) -> None:
    report = jail.run(
        f"""
        import ctypes, os
        def attempt(ctx):
            libc = ctypes.CDLL(None, use_errno=True)
            pid = libc.syscall({_SYS_CLONE}, {_SIGCHLD}, 0, 0, 0, 0)
            if pid == 0:
                os._exit(0)
            if pid < 0:
                raise OSError(ctypes.get_errno(), "clone")
            return pid
        """
    )
    assert report["errno"] == "EPERM"


def test_clone3_reports_enosys(jail: Jail) -> None:
    report = jail.run(
        f"""
        import ctypes
        def attempt(ctx):
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.syscall({_SYS_CLONE3}, 0, 0) < 0:
                raise OSError(ctypes.get_errno(), "clone3")
        """
    )
    assert report["errno"] == "ENOSYS"


def test_cant_run_subprocess(jail: Jail) -> None:
    report = jail.run('import subprocess\ndef attempt(ctx):\n    return subprocess.run(["/bin/true"]).returncode')
    assert report["errno"] == "EPERM"


def test_cant_run_os_system(jail: Jail) -> None:
    report = jail.run('import os\ndef attempt(ctx):\n    return os.system("echo escaped > " + ctx["tmp_dir"] + "/x")')
    assert report["value"] == 127 << 8  # glibc's "the shell could not be started"
    assert report["tmp_listing"]["own"] == []


def test_cant_execv(jail: Jail) -> None:
    report = jail.run('import os\ndef attempt(ctx):\n    os.execv("/bin/true", ["true"])')
    assert report["errno"] == "EPERM"


def test_zygote_cant_execv(jail: Jail) -> None:
    report = jail.run('import os\ndef attempt(ctx):\n    os.execv("/bin/true", ["true"])', where="zygote")
    assert report["errno"] == "EPERM"


def test_zygote_can_fork(jail: Jail) -> None:
    report = jail.run(
        """
        import os
        def attempt(ctx):
            pid = os.fork()
            if pid == 0:
                os._exit(7)
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        """,
        where="zygote",
    )
    assert report["value"] == 7


def test_zygote_cant_clone_into_new_user_namespace(jail: Jail) -> None:
    report = jail.run(
        f"""
        import ctypes, os
        def attempt(ctx):
            libc = ctypes.CDLL(None, use_errno=True)
            pid = libc.syscall({_SYS_CLONE}, {_CLONE_NEWUSER | _SIGCHLD}, 0, 0, 0, 0)
            if pid == 0:
                os._exit(0)
            if pid < 0:
                raise OSError(ctypes.get_errno(), "clone")
            return pid
        """,
        where="zygote",
    )
    assert report["errno"] == "EPERM"


def test_can_start_threads(jail: Jail) -> None:
    report = jail.run(
        """
        import threading
        def attempt(ctx):
            seen = []
            threads = [threading.Thread(target=seen.append, args=(n,)) for n in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return sorted(seen)
        """
    )
    assert report["value"] == [0, 1, 2, 3]


def test_can_use_thread_pool_from_asyncio(jail: Jail) -> None:
    report = jail.run(
        """
        import asyncio
        def attempt(ctx):
            async def main():
                return await asyncio.to_thread(sum, [1, 2, 3])
            return asyncio.run(main())
        """
    )
    assert report["value"] == 6


def test_other_abi_syscall_kills_child(jail: Jail) -> None:
    # x32 system-call numbers (bit 30) would dodge every rule keyed on native numbers: the filter kills.
    report = jail.run(
        """
        import ctypes
        def attempt(ctx):
            return ctypes.CDLL(None).syscall(0x40000000 | 39)
        """
    )
    assert report["signal"] == signal.SIGSYS
