"""The worker template ("zygote"): confines itself, compiles the hook, then forks one confined child per call.

Started by the parent as a fresh interpreter (``python -I``) with an empty environment plus an allowlist and
only its control socket. It runs **no hook code**: it puts its own limits on, confines itself, compiles the
hook's sources (which executes nothing), pre-imports the installed modules they name (:mod:`runner._hookcode`),
reports ``Ready`` and then serves ``Spawn`` requests from a plain ``poll()`` loop: no asyncio here, since a
child forked from a running event loop shares its epoll. The hook's module body runs in each child, after
the child's own layers, under the call's limits; so nothing a hook does can reach this process.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import gc
import importlib
import os
import resource
import select
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from typing import Any

import msgspec

from . import _child, _hookcode, _tmpdirs, _worker
from ._errors import SandboxUnavailable
from ._framing import FrameEncoder, decode_record
from ._linux import set_parent_death_signal
from ._protocol import (
    Configure,
    Exited,
    FromTemplate,
    ImportFailed,
    Ready,
    Shutdown,
    Spawn,
    Spawned,
    ToTemplate,
)

_CONTROL_MAX = 1 << 20
#: Signals that may be queued for the template's user at once. Set before the user namespace is made, this
#: is also the namespace's ceiling: no process in it can run the proxy uid's host-wide quota down.
_SIGPENDING = 64
_TEMPLATE_FILES = 1024


class _Control:
    """The template's end of the SEQPACKET control socket: one record is one frame."""

    def __init__(self, fd: int) -> None:
        self.sock = socket.socket(fileno=fd)
        self._encoder = FrameEncoder()
        self._decoder: msgspec.msgpack.Decoder[ToTemplate] = msgspec.msgpack.Decoder(ToTemplate)

    def send(self, message: FromTemplate) -> None:
        self.sock.sendall(self._encoder.encode(message))

    def receive(self) -> tuple[ToTemplate | None, list[int]]:
        """One message and the fds that came with it; ``None`` when the parent has gone."""
        data, fds, _flags, _addr = socket.recv_fds(self.sock, _CONTROL_MAX, 3)
        if not data:
            return None, fds
        return decode_record(self._decoder, data), fds


def _load_adapter(adapter: str) -> Callable[[Any], Any]:
    module_name, _, attr = adapter.partition(":")
    function = getattr(importlib.import_module(module_name), attr)
    if not callable(function):
        raise TypeError(f"adapter {adapter!r} is not callable")
    return function  # type: ignore[no-any-return]


def _vm_bytes(statm_fd: int) -> int:
    """The template's current address-space size (first field of /proc/self/statm, in pages)."""
    pages = int(os.pread(statm_fd, 128, 0).split()[0])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _apply_template_limits(config: Configure) -> None:
    """Limits of the template itself, set before anything else (the namespaces inherit some as ceilings)."""
    for which, value in (
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_SIGPENDING, _SIGPENDING),
        (resource.RLIMIT_MSGQUEUE, 0),
        (resource.RLIMIT_NOFILE, _TEMPLATE_FILES),
        (resource.RLIMIT_FSIZE, config.file_size_mb * 1024 * 1024),
    ):
        _child.limit(which, value)


class Template:
    """The template's state between ``Ready`` and exit."""

    def __init__(self, control: _Control, plan: _child.ChildPlan, statm_fd: int) -> None:
        self.control = control
        self.plan = plan
        self.statm_fd = statm_fd
        self.poller = select.poll()
        self.children: dict[int, tuple[int, str | None]] = {}  # pidfd -> (pid, tmp dir)
        self.draining = False

    def spawn(self, token: int, fds: list[int]) -> None:
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            return
        channel_fd, stdout_fd, stderr_fd = fds
        root = self.plan.config.tmp_root
        tmp_dir = _tmpdirs.make_call_dir(root) if root is not None else None
        vm_bytes = _vm_bytes(self.statm_fd)
        try:
            pid = os.fork()
        except OSError as exc:
            print(f"hookjail worker template: cannot fork a child: {exc}", file=sys.stderr)
            pid = -1
        if pid == 0:
            _child.run(self.plan, channel_fd, stdout_fd, stderr_fd, vm_bytes, tmp_dir)
        for fd in fds:
            os.close(fd)
        if pid < 0:
            if tmp_dir is not None:
                _tmpdirs.remove_tree(tmp_dir)
            return
        pidfd = os.pidfd_open(pid)
        self.children[pidfd] = (pid, tmp_dir)
        self.poller.register(pidfd, select.POLLIN)
        self.control.send(Spawned(token=token, pid=pid, tmp_ok=root is None or tmp_dir is not None))

    def reap(self, pidfd: int) -> None:
        pid, tmp_dir = self.children.pop(pidfd)
        self.poller.unregister(pidfd)
        with contextlib.suppress(OSError):  # its process group too (children cannot fork: belt and braces)
            os.killpg(pid, signal.SIGKILL)
        _, status, usage = os.wait4(pid, 0)
        os.close(pidfd)
        if tmp_dir is not None:
            _tmpdirs.remove_tree(tmp_dir)
        self.control.send(Exited(pid=pid, status=status, cpu=usage.ru_utime + usage.ru_stime))

    def kill_all(self) -> None:
        for pidfd in list(self.children):
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        for pidfd in list(self.children):
            with contextlib.suppress(OSError):
                self.reap(pidfd)

    def serve(self) -> None:
        control_fd = self.control.sock.fileno()
        self.poller.register(control_fd, select.POLLIN)
        while True:
            if self.draining and not self.children:
                return
            for fd, _event in self.poller.poll():
                if fd != control_fd:
                    self.reap(fd)
                    continue
                message, fds = self.control.receive()
                if message is None:  # the parent is gone: nothing may outlive it
                    self.kill_all()
                    return
                if isinstance(message, Spawn) and not self.draining:
                    self.spawn(message.token, fds)
                elif isinstance(message, Shutdown):
                    self.draining = True
                    self.poller.unregister(control_fd)
                else:
                    for extra in fds:
                        os.close(extra)


def _import_pyseccomp(libraries: dict[str, str]) -> None:
    """Imports pyseccomp with the shared libraries the parent already found: its import would otherwise run
    ``ldconfig -p`` twice (``ctypes.util.find_library``), costing a subprocess each at every template start."""
    original = ctypes.util.find_library
    ctypes.util.find_library = lambda name: libraries.get(name) or original(name)
    try:
        importlib.import_module("pyseccomp")
    except (ImportError, RuntimeError):  # no libseccomp: Confinement.prepare says so, in its own words
        pass
    finally:
        ctypes.util.find_library = original


def _confine(control: _Control, config: Configure, parent_pid: int) -> Any:
    """Applies the template's layers; reports ``ImportFailed`` and exits when strict mode cannot."""
    from ._confine import Confinement  # noqa: PLC0415 - only needed when the sandbox is on

    _import_pyseccomp(config.libraries)
    try:
        confinement = Confinement.prepare(
            network=config.network,
            read_paths=list(config.read_paths),
            tmp_root=config.tmp_root,
            strict=config.strict,
            tmp_size_mb=config.tmp_size_mb,
        )
    except SandboxUnavailable as exc:
        control.send(ImportFailed(type_name="SandboxUnavailable", message=exc.message, sandbox=True))
        os._exit(0)
    # Changing uid inside the new user namespace cleared the parent-death signal: arm it again, so that the
    # template dies with the proxy even if the proxy is SIGKILLed.
    set_parent_death_signal()
    if os.getppid() != parent_pid:
        os._exit(1)
    return confinement


def _prepare(control: _Control, config: Configure, parent_pid: int, tasks_fd: int) -> _child.ChildPlan | None:
    """Confines the template, compiles the hook and pre-imports what it names. Reports ``ImportFailed`` and
    returns None on failure."""
    try:
        adapter = _load_adapter(config.adapter) if config.adapter else None
    except Exception as exc:
        control.send(ImportFailed(type_name=type(exc).__name__, message=f"adapter: {exc}"))
        return None
    confinement = _confine(control, config, parent_pid) if config.sandbox else None
    try:
        hook = _hookcode.compile_hook(config.path)
    except _hookcode.HookRejected as exc:
        control.send(ImportFailed(type_name="HookRejected", message=str(exc)))
        return None
    except (SyntaxError, ValueError, OSError) as exc:
        message = _hookcode.describe_import_error(exc, config.path)
        control.send(ImportFailed(type_name=type(exc).__name__, message=message))
        return None
    preimported = _hookcode.preimport(hook, config.trusted_paths)
    threads = len(os.listdir(tasks_fd)) - 1
    if threads:
        # Forking a process with running threads deadlocks children on inherited locks.
        control.send(
            ImportFailed(
                type_name="HookRejected",
                message=f"pre-importing {', '.join(preimported)} left {threads} thread(s) running in the worker",
            )
        )
        return None
    layers = dict(confinement.layers) if confinement is not None else {}
    spec = _hookcode.prepare_import(hook)
    plan = _child.ChildPlan(config=config, hook=hook, spec=spec, adapter=adapter, confinement=confinement)
    control.send(Ready(pid=os.getpid(), layers=layers, preimported=preimported))
    return plan


def main(control_fd: int, parent_pid: int) -> None:
    """Entry point of the template process."""
    _worker.enter()
    set_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    control = _Control(control_fd)
    first, fds = control.receive()
    for fd in fds:
        os.close(fd)
    if not isinstance(first, Configure):
        os._exit(2)
    # Opened before confinement: Landlock would refuse /proc later, an fd already open keeps working.
    statm_fd = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
    # When memory runs out, the kernel is to kill a worker (inherited by every child), never the proxy.
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as oom:
        oom.write("1000")
    if first.nice:  # inherited by every call's child; lowering it again needs CAP_SYS_NICE on the host
        os.setpriority(os.PRIO_PROCESS, 0, first.nice)
    tasks_fd = os.open("/proc/self/task", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _apply_template_limits(first)
        plan = _prepare(control, first, parent_pid, tasks_fd)
    except BaseException as exc:  # a bug of ours: say so rather than leave the parent waiting
        with contextlib.suppress(BaseException):
            control.send(ImportFailed(type_name=type(exc).__name__, message=f"worker template: {exc}"))
        traceback.print_exc()
        os._exit(1)
    if plan is None:
        os._exit(0)
    os.close(tasks_fd)
    gc.collect()
    gc.freeze()  # keep the imported objects' pages shared with the children: refcount-free pages stay clean
    Template(control, plan, statm_fd).serve()
    os._exit(0)
