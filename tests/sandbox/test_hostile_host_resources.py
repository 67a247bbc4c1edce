"""Hostile hooks against what the worker shares with the proxy by uid alone: rlimits, SysV IPC, inotify.

Found by red-teaming the sandbox: the worker keeps the proxy's outer uid (see runner/_userns.py), and these
kernel interfaces check nothing but the uid.
"""

from __future__ import annotations

import ctypes
import os
import resource
import subprocess
from pathlib import Path

import pytest

from ._hooks import call_once, sandbox, write_hook

pytestmark = pytest.mark.anyio

_IPC_PRIVATE = 0
_IPC_CREAT = 0o1000
_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmat.restype = ctypes.c_void_p
_libc.shmat.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)


async def test_cant_reach_the_proxys_rlimits_at_import_time(operator_dir: Path) -> None:
    # The module body runs in the call's child, inside the worker's PID namespace: its parent is outside
    # (getppid() says 0) and the proxy's pid, even when known, is refused. Only a read is tried: on a broken
    # layer a write would cripple the test process itself (RLIMIT_NOFILE (3, 3) did).
    spec = write_hook(
        operator_dir,
        """
        import os, resource
        PARENT = os.getppid()
        TRIED = observe(lambda: resource.prlimit(int(os.environ["PROXY_PID"]), resource.RLIMIT_NOFILE))
        def handler(info):
            return {"parent": PARENT, **TRIED}
        """,
    )
    box = sandbox(operator_dir, env={"PROXY_PID": str(os.getpid())})
    assert (await call_once(spec, box)).value == {"parent": 0, "errno": "EPERM", "type": "PermissionError"}


async def test_cant_change_another_processs_rlimits(operator_dir: Path, victim: subprocess.Popen[bytes]) -> None:
    spec = write_hook(
        operator_dir,
        """
        import resource
        def handler(info):
            return observe(lambda: resource.prlimit(info["victim"], resource.RLIMIT_CPU, (1, 1)))
        """,
    )
    value = (await call_once(spec, sandbox(operator_dir), {"victim": victim.pid})).value
    assert value["errno"] == "EPERM"
    assert resource.prlimit(victim.pid, resource.RLIMIT_CPU) == (resource.RLIM_INFINITY, resource.RLIM_INFINITY)


async def test_can_still_set_its_own_rlimits(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        """
        import resource
        def handler(info):
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft - 1, hard))
            return resource.getrlimit(resource.RLIMIT_NOFILE)[0] == soft - 1
        """,
    )
    assert (await call_once(spec, sandbox(operator_dir))).value is True


async def test_cant_read_the_hosts_sysv_shared_memory(operator_dir: Path) -> None:
    secret = b"db-password=hunter2"
    shmid = _libc.shmget(_IPC_PRIVATE, 4096, _IPC_CREAT | 0o600)
    assert shmid >= 0
    try:
        address = _libc.shmat(shmid, None, 0)
        ctypes.memmove(address, secret, len(secret))
        spec = write_hook(
            operator_dir,
            """
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            libc.shmat.restype = ctypes.c_void_p
            libc.shmat.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
            def attach(shmid):
                address = libc.shmat(shmid, None, 0)
                if address is None or address == ctypes.c_void_p(-1).value:
                    raise OSError(ctypes.get_errno(), "shmat")
                return ctypes.string_at(address, 32).decode("latin-1")
            def handler(info):
                return observe(lambda: attach(info["shmid"]))
            """,
        )
        value = (await call_once(spec, sandbox(operator_dir), {"shmid": shmid})).value
        assert value["errno"] == "EPERM"
        assert "hunter2" not in repr(value)
    finally:
        _libc.shmctl(shmid, 0, None)  # IPC_RMID


async def test_cant_create_sysv_ipc_objects(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        def create(call, *args):
            result = call(*args)
            if result < 0:
                raise OSError(ctypes.get_errno(), "ipc")
            return result
        def handler(info):
            return {
                "shm": observe(lambda: create(libc.shmget, 0, 1 << 20, 0o1600)),
                "msg": observe(lambda: create(libc.msgget, 0, 0o1600)),
                "sem": observe(lambda: create(libc.semget, 0, 1, 0o1600)),
            }
        """,
    )
    value = (await call_once(spec, sandbox(operator_dir))).value
    assert {kind: result["errno"] for kind, result in value.items()} == {"shm": "EPERM", "msg": "EPERM", "sem": "EPERM"}


async def test_cant_watch_a_directory_it_cannot_read(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        def watch(path):
            fd = libc.inotify_init1(0)
            if fd < 0:
                raise OSError(ctypes.get_errno(), "inotify_init1")
            if libc.inotify_add_watch(fd, path.encode(), 0xFFF) < 0:
                raise OSError(ctypes.get_errno(), "inotify_add_watch")
            return "watching"
        def handler(info):
            return observe(lambda: watch(os.path.dirname(__file__)))
        """,
    )
    assert (await call_once(spec, sandbox(operator_dir))).value["errno"] == "EPERM"


def test_the_host_side_of_these_tests_is_real() -> None:
    # The same calls succeed unconfined: the EPERMs above come from the sandbox, not from this host.
    shmid = _libc.shmget(_IPC_PRIVATE, 4096, _IPC_CREAT | 0o600)
    assert shmid >= 0
    _libc.shmctl(shmid, 0, None)
    fd = _libc.inotify_init1(0)
    assert fd >= 0
    os.close(fd)
