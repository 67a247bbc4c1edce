"""Identity, network, mounts and processes: the namespaces the zygote enters once, before importing the hook.

After :func:`enter_namespaces` and :func:`drop_capabilities` the process is uid/gid :data:`SANDBOX_ID` inside
a user namespace of its own, with no capabilities in it (nor any to regain: exec is denied, no_new_privs is
set), and unless the network is allowed, in an empty network namespace (only a loopback interface, down). The
user namespace is what makes the network namespace hold for a root caller: root in a bare network namespace can
``setns`` back into the host's; a process without capabilities in the namespace owning the host's network
cannot.

In its own mount namespace, the temp root gets a size-capped tmpfs of its own (:func:`mount_private_tmp`).
Its children are also born in a new PID namespace, whose first process is a small reaper started by
:func:`start_reaper`: orphans are reparented to it rather than to the host's init, and it dies with the
zygote (``PR_SET_PDEATHSIG``), which makes the kernel kill every process left in the namespace. So nothing
the worker starts can outlive the zygote (the zygote itself must be able to fork; its children, where all hook
code runs, cannot: see :mod:`runner._seccomp`).

Why the namespace maps the *caller's own* uid (``SANDBOX_ID <-> euid``): writing a one-line self-map needs no
privilege, so the same code runs for a root and a non-root proxy. Mapping to another outer uid (say nobody)
would need CAP_SETUID and would lock the worker out of its own interpreter: Python lives under /root (0700) on
these machines and loads modules lazily. The consequence to keep in mind: to the kernel the worker's files are
still the proxy uid's, so every file the proxy uid owns passes the permission bits. Landlock (reads, writes),
and seccomp (chmod/chown/utime/xattr, which Landlock does not cover) are what stand between the hook and those
files; signals to the proxy are stopped by Landlock's signal scoping for the same reason.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import select
import signal
import subprocess
import sys

from ._linux import PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, PR_CAPBSET_DROP, check, libc, set_parent_death_signal

__all__ = (
    "SANDBOX_ID",
    "drop_capabilities",
    "enter_namespaces",
    "mount_private_tmp",
    "probe_namespaces",
    "start_reaper",
)

SANDBOX_ID = 1000
"""The uid and gid the worker has inside its user namespace: anything but 0, so no code path believes it is
root."""

_CLONE_NEWNS = 0x00020000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_NOEXEC = 8
_TMP_INODES = 4096  # files and directories, all calls together: inodes are a resource too

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_CAPS_MAX = 64


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def drop_capabilities() -> None:
    """Drop every capability the new user namespace granted (call it last: the steps before need them).

    Raises:
        OSError: the kernel refused.
    """
    # unshare(CLONE_NEWUSER) grants a full capability set inside the new namespace whatever the uid: clear
    # the bounding and ambient sets (what an exec could regain) first (needs CAP_SETPCAP), then the rest.
    for cap in range(_CAPS_MAX):
        if libc.prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0) != 0:
            if ctypes.get_errno() == errno.EINVAL:  # past the last capability this kernel knows
                break
            check(-1, "prctl(PR_CAPBSET_DROP)")
    check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "prctl(PR_CAP_AMBIENT)")
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    empty = (_CapData * 2)()
    check(libc.capset(ctypes.byref(header), empty), "capset")


def enter_namespaces(*, network: bool) -> str:
    """Move the calling process into new user, mount, IPC and (unless ``network``) network namespaces; its future
    children into a new PID namespace (start :func:`start_reaper` before any other child).

    The process keeps the capabilities the new user namespace grants, for :func:`mount_private_tmp`: call
    :func:`drop_capabilities` next. It must be single-threaded (the kernel refuses ``CLONE_NEWUSER``
    otherwise) and must still see its own ``/proc/self`` (so: before Landlock). See the module docstring for
    the uid mapping.

    Args:
        network: keep the host's network namespace.

    Returns:
        A short description for the layer report, e.g. ``"uid 1000 in ns"``.

    Raises:
        OSError: the kernel refused; the process is then in no new namespace, or in one without a uid map.
    """
    uid, gid = os.geteuid(), os.getegid()
    # NEWIPC: SysV shared memory, queues and semaphores are checked by uid, which the worker shares with the
    # proxy; in a namespace of its own it sees none of the host's (and seccomp refuses the calls anyway).
    flags = _CLONE_NEWUSER | _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWIPC | (0 if network else _CLONE_NEWNET)
    check(libc.unshare(ctypes.c_int(flags)), "unshare")
    # "deny" first: an unprivileged process may only write gid_map once setgroups is off for good.
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{SANDBOX_ID} {uid} 1\n")
    _write("/proc/self/gid_map", f"{SANDBOX_ID} {gid} 1\n")
    return f"uid {os.geteuid()} in ns"


def mount_private_tmp(path: str, size_mb: int) -> str:
    """Mount a size-capped tmpfs over ``path``, seen only inside the zygote's mount namespace.

    RLIMIT_FSIZE caps each file, not how many a call writes: without this, concurrent calls could fill the
    host's disk (``/tmp`` is the root filesystem here) within their deadline. The mount also keeps what calls
    write off the host's disk and out of sight of every process outside the worker.

    Args:
        path: the (empty) temp root, which the zygote's children get their temp dirs under.
        size_mb: the most all calls together may have written at once.

    Returns:
        A short description for the layer report, e.g. ``"tmpfs 64 MiB"``.

    Raises:
        OSError: the kernel refused (needs :func:`enter_namespaces` first, capabilities not yet dropped).
    """
    options = f"size={size_mb}m,nr_inodes={_TMP_INODES},mode=0700"
    flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    check(libc.mount(b"hookjail-tmp", path.encode(), b"tmpfs", ctypes.c_ulong(flags), options.encode()), "mount")
    return f"tmpfs {size_mb} MiB"


def start_reaper() -> int:
    """Fork the first process of the new PID namespace: it reaps orphans and dies with the caller.

    Call it once, after :func:`enter_namespaces`, before forking anything else (the first child becomes the
    namespace's init; if it dies, the kernel kills the namespace and refuses further forks with ``ENOMEM``).

    Returns:
        A descriptor the caller must keep open for as long as it lives (the reaper's check that its
        parent is still there when it starts); children may close it.
    """
    alive_r, alive_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the reaper, which never returns
        _serve_as_reaper(alive_r, alive_w)
    os.close(alive_r)
    return alive_w


def _serve_as_reaper(alive_r: int, alive_w: int) -> None:
    try:
        os.close(alive_w)
        set_parent_death_signal()
        # getppid() says 0 here (the parent is outside the namespace): the pipe tells whether the zygote
        # died before PDEATHSIG was armed; then nobody would ever kill the namespace.
        if select.select([alive_r], [], [], 0)[0]:
            os._exit(0)
        # Hold nothing of the zygote's: a control socket or stdio pipe kept open here would hide its death.
        devnull = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, alive_r)
        os.closerange(alive_r + 1, 1 << 20)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        while True:
            with contextlib.suppress(ChildProcessError):
                while os.waitpid(-1, os.WNOHANG)[0] > 0:
                    pass
            # PDEATHSIG is the fast way out; the pipe is the sure one (a reaper was once seen outliving its
            # zygote): end of file on it means the zygote and every child that held it are gone.
            signal.sigtimedwait({signal.SIGCHLD}, 1.0)
            if select.select([alive_r], [], [], 0)[0]:
                os._exit(0)
    finally:
        os._exit(0)


# Run in a throwaway interpreter: the caller (the proxy) has threads, and a namespace cannot be undone. The
# tmpfs goes over the probe's own /tmp, in its own mount namespace: nobody else sees it. This module and
# runner._linux are loaded as the modules of a bare package, without runner/__init__ and its imports.
_PROBE = """
import importlib, json, sys, types
package = types.ModuleType("_hookjail_probe")
package.__path__ = [sys.argv[1]]
sys.modules[package.__name__] = package
module = importlib.import_module("_hookjail_probe._userns")
layers = {"user_namespace": module.enter_namespaces(network=False)}
try:
    layers["private_tmp"] = module.mount_private_tmp("/tmp", 64)
except OSError:
    layers["private_tmp"] = False
module.drop_capabilities()
print(json.dumps(layers))
"""


def probe_namespaces(timeout: float = 10.0) -> dict[str, bool | str]:
    """Check, in a short-lived separate interpreter, that the namespaces and the private tmpfs can be made.

    Returns:
        ``user_namespace`` and ``private_tmp``: the details :func:`enter_namespaces` and
        :func:`mount_private_tmp` report (e.g. ``"uid 1000 in ns"``), or ``False``.
    """
    failed: dict[str, bool | str] = {"user_namespace": False, "private_tmp": False}
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _PROBE, os.path.dirname(os.path.abspath(__file__))],
            capture_output=True,
            env={},
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return failed
    if done.returncode != 0:
        return failed
    layers: dict[str, bool | str] = json.loads(done.stdout)
    return layers
