"""Seccomp: no POSIX message queues (shared by every call of a template), and nothing left in a call's temp dir
that its template could not list or delete (no umask, no directory without all of the owner's bits)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pyseccomp
import pytest

from runner import HookRunner

from ._hooks import LIMITS, sandbox, write_hook
from ._jail import Jail

_MQ_CALLS = ("mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr")
_NR = {name: int(pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)) for name in _MQ_CALLS}

_MQ_ATTEMPT = f"""
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)  # glibc 2.34+ has mq_open in libc itself


def observe(fn):
    try:
        return {{"value": fn()}}
    except OSError as exc:
        return {{"errno": errno.errorcode.get(exc.errno, exc.errno)}}


def checked(result, name):
    if result < 0:
        raise OSError(ctypes.get_errno(), name)
    return result


def create_and_remove(name):
    mqd = checked(libc.mq_open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600, None), "mq_open")
    os.close(mqd)  # a message queue descriptor is a file descriptor on Linux
    return checked(libc.mq_unlink(name), "mq_unlink")


def raw(call, *args):
    number = {_NR!r}[call]
    return checked(libc.syscall(number, *[ctypes.c_long(a) if isinstance(a, int) else a for a in args]), call)


def attempt(ctx):
    name = ctx["queue"].encode()
    return {{
        "mq_open(O_CREAT) and mq_unlink": observe(lambda: create_and_remove(name)),
        # On no queue: harmless, and not EPERM, without the sandbox (glibc strips the name's leading "/").
        "mq_unlink": observe(lambda: raw("mq_unlink", name[1:])),
        "mq_timedsend": observe(lambda: raw("mq_timedsend", -1, None, 0, 0, None)),
        "mq_timedreceive": observe(lambda: raw("mq_timedreceive", -1, None, 0, None, None)),
        "mq_notify": observe(lambda: raw("mq_notify", -1, None)),
        "mq_getsetattr": observe(lambda: raw("mq_getsetattr", -1, None, None)),
    }}
"""


def _queue_name() -> str:
    return f"/hookjail-test-{os.getpid()}-{time.monotonic_ns()}"


@pytest.mark.parametrize("where", ["child", "zygote"])
def test_cant_use_posix_message_queues(jail: Jail, where: str) -> None:
    control = jail.run(_MQ_ATTEMPT, where="unconfined", ctx={"queue": _queue_name()})["value"]
    assert control == {
        "mq_open(O_CREAT) and mq_unlink": {"value": 0},
        "mq_unlink": {"errno": "ENOENT"},
        "mq_timedsend": {"errno": "EBADF"},
        "mq_timedreceive": {"errno": "EBADF"},
        "mq_notify": {"errno": "EBADF"},
        "mq_getsetattr": {"errno": "EBADF"},
    }
    report = jail.run(_MQ_ATTEMPT, where=where, ctx={"queue": _queue_name()})
    assert report["value"] == {name: {"errno": "EPERM"} for name in control}


@pytest.mark.anyio
async def test_cant_pass_data_to_the_next_login_in_a_queue_name(operator_dir: Path) -> None:
    # Both calls run in children of one template, so in one IPC namespace: a queue made by the first would be
    # there for the second (its name alone carries the data, even if it could never be opened).
    spec = write_hook(
        operator_dir,
        """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)

        def mq_open(name, flags):
            mqd = libc.mq_open(name.encode(), flags, 0o600, None)
            if mqd < 0:
                raise OSError(ctypes.get_errno(), "mq_open")
            os.close(mqd)
            return "opened"

        def handler(info):
            name = "/stash-" + info["email"].replace("@", "_at_")
            if info.get("leave"):
                return observe(lambda: mq_open(name, os.O_CREAT | os.O_RDWR))
            return observe(lambda: mq_open(name, os.O_RDONLY))
        """,
    )
    login = {"id": "u1", "email": "victim@example.com"}
    async with HookRunner(spec, LIMITS, sandbox(operator_dir)) as runner:
        first = await runner.call({**login, "leave": True})
        second = await runner.call(login)
    assert first.value == {"errno": "EPERM", "type": "PermissionError"}
    assert second.value == {"errno": "EPERM", "type": "PermissionError"}


_UMASK_ATTEMPT = """
import ctypes, errno, os, stat
_libc = ctypes.CDLL(None)
_libc.__errno_location.restype = ctypes.POINTER(ctypes.c_int)


def attempt(ctx):
    seen = []
    # glibc's umask() cannot fail, so it never sets errno: os.umask raises whatever errno already held.
    for stale, mask in ((0, 0o777), (errno.ENOENT, 0o700), (0, 0o100)):
        _libc.__errno_location().contents.value = stale
        try:
            seen.append(["returned", os.umask(mask)])
        except OSError as exc:
            seen.append([type(exc).__name__, exc.errno])
    allowed = [os.umask(0o022), os.umask(0)]  # masks that keep the owner's bits are the hook's business
    path = os.path.join(ctx["tmp_dir"], "file")
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o666))
    os.mkdir(path + ".d", 0o777)
    return {
        "umask": seen,
        "allowed": allowed,
        "file": stat.S_IMODE(os.stat(path).st_mode),
        "dir": stat.S_IMODE(os.stat(path + ".d").st_mode),
    }
"""


def test_cant_set_a_umask_that_strips_the_owners_bits(jail: Jail) -> None:
    control = jail.run(_UMASK_ATTEMPT, where="unconfined")["value"]
    assert control["umask"][1] == ["returned", 0o777]  # the first umask took effect
    assert (control["file"], control["dir"]) == (0o666, 0o777)

    value = jail.run(_UMASK_ATTEMPT)["value"]
    # The kernel's -EPERM comes back from glibc as the mask (mode_t)-1, which os.umask reports as an error
    # carrying errno as it was: OSError(0) here, FileNotFoundError after a failed lookup.
    assert value["umask"] == [["OSError", 0], ["FileNotFoundError", 2], ["OSError", 0]]
    assert value["allowed"] == [0o077, 0o022]  # the child's own 0o077, then the hook's 0o022
    assert (value["file"], value["dir"]) == (0o666, 0o777)  # umask 0 was allowed: the owner's bits stay


_MODES_REFUSED = (0o000, 0o100, 0o200, 0o300, 0o400, 0o500, 0o600, 0o1000, 0o7077, 0o677)
_MODES_ALLOWED = (0o700, 0o755, 0o777, 0o1700)

_MKDIR_ATTEMPT = f"""
import errno, os, stat


def observe(fn):
    try:
        return {{"value": fn()}}
    except OSError as exc:
        return {{"errno": errno.errorcode.get(exc.errno, exc.errno)}}


def mkdir(path, mode, **kwargs):
    os.mkdir(path, mode, **kwargs)
    return stat.S_IMODE(os.stat(path, **kwargs).st_mode)


def attempt(ctx):
    tmp = ctx["tmp_dir"]
    fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
    seen = {{}}
    for mode in {(*_MODES_REFUSED, *_MODES_ALLOWED)!r}:
        seen[f"mkdir {{mode:o}}"] = observe(lambda: mkdir(os.path.join(tmp, f"a{{mode:o}}"), mode))
        seen[f"mkdirat {{mode:o}}"] = observe(lambda: mkdir(f"b{{mode:o}}", mode, dir_fd=fd))
    return seen
"""


def test_cant_make_a_directory_its_template_cannot_remove(jail: Jail) -> None:
    modes = (*_MODES_REFUSED, *_MODES_ALLOWED)
    control = jail.run(_MKDIR_ATTEMPT, where="unconfined")["value"]
    # Without the sandbox each is made, with the owner's bits asked for (a umask leaves those alone).
    assert {name: outcome["value"] & 0o700 for name, outcome in control.items()} == {
        f"{call} {mode:o}": mode & 0o700 for mode in modes for call in ("mkdir", "mkdirat")
    }

    report = jail.run(_MKDIR_ATTEMPT)
    expected_made = {mode: stat.S_IMODE(mode & ~0o077) for mode in _MODES_ALLOWED}
    assert report["value"] == {
        f"{call} {mode:o}": {"value": expected_made[mode]} if mode in expected_made else {"errno": "EPERM"}
        for mode in modes
        for call in ("mkdir", "mkdirat")
    }
    assert report["tmp_listing"]["own"] == sorted(f"{prefix}{mode:o}" for mode in _MODES_ALLOWED for prefix in "ab")
