"""The worker template ("zygote"): imports the hook once, then forks one confined child per call.

Started by the parent as a fresh interpreter (``python -I``) with an empty environment plus an allowlist and
only its control socket. It confines itself before importing the hook (the hook's import-time code runs
here), checks the handler, refuses a module that left threads running (forking a process with live threads
deadlocks children on inherited locks), reports ``Ready`` and then serves ``Spawn`` requests from a plain
``poll()`` loop: no asyncio here, since a child forked from a running event loop shares its epoll.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import importlib.util
import inspect
import os
import select
import shutil
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from types import ModuleType
from typing import Any

import msgspec

from . import _child
from ._errors import SandboxUnavailable
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

_PR_SET_PDEATHSIG = 1
_CONTROL_MAX = 1 << 20


class _HookRejected(Exception):
    """The hook imported but is not something the runner can call."""


class _Control:
    """The template's end of the SEQPACKET control socket: one record is one frame."""

    def __init__(self, fd: int) -> None:
        self.sock = socket.socket(fileno=fd)
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder: msgspec.msgpack.Decoder[ToTemplate] = msgspec.msgpack.Decoder(ToTemplate)

    def send(self, message: FromTemplate) -> None:
        payload = self._encoder.encode(message)
        self.sock.sendall(len(payload).to_bytes(4, "big") + payload)

    def receive(self) -> tuple[ToTemplate | None, list[int]]:
        """One message and the fds that came with it; ``None`` when the parent has gone."""
        data, fds, _flags, _addr = socket.recv_fds(self.sock, _CONTROL_MAX, 3)
        if not data:
            return None, fds
        return self._decoder.decode(data[4:]), fds


def _load_module(path: str) -> ModuleType:
    """Imports the hook from a file, or from a package directory, the way LiteLLM resolves it."""
    if os.path.isdir(path):
        name = os.path.basename(os.path.normpath(path))
        spec = importlib.util.spec_from_file_location(
            name, os.path.join(path, "__init__.py"), submodule_search_locations=[path]
        )
        search_dir = os.path.dirname(os.path.normpath(path))
    else:
        name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        search_dir = os.path.dirname(path)
    if spec is None or spec.loader is None:
        raise _HookRejected(f"cannot load a Python module from {os.path.basename(path)!r}")
    sys.path.insert(0, search_dir)  # so that a hook package can import its own submodules
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _check_handler(module: ModuleType, function: str) -> Callable[..., Any]:
    handler = getattr(module, function, None)
    if handler is None:
        raise _HookRejected(f"the hook module has no function {function!r}")
    if not callable(handler):
        raise _HookRejected(f"{function!r} is a {type(handler).__name__}, not a function")
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError) as exc:
        raise _HookRejected(f"cannot read the signature of {function!r}: {exc}") from exc
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    others = [p for p in signature.parameters.values() if p.kind == p.KEYWORD_ONLY and p.default is p.empty]
    takes_varargs = any(p.kind == p.VAR_POSITIONAL for p in signature.parameters.values())
    if others or len(positional) > 1 or (not positional and not takes_varargs):
        raise _HookRejected(
            f"{function!r} must take exactly one argument (the user's OpenID info), its signature is {signature}"
        )
    return handler  # type: ignore[no-any-return]


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
        tmp_dir = None
        if self.plan.config.tmp_root is not None:
            tmp_dir = os.path.join(self.plan.config.tmp_root, f"call-{token}")
            os.mkdir(tmp_dir, 0o700)
        vm_bytes = _vm_bytes(self.statm_fd)
        pid = os.fork()
        if pid == 0:
            _child.run(self.plan, channel_fd, stdout_fd, stderr_fd, vm_bytes, tmp_dir)
        for fd in fds:
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        self.children[pidfd] = (pid, tmp_dir)
        self.poller.register(pidfd, select.POLLIN)
        self.control.send(Spawned(token=token, pid=pid))

    def reap(self, pidfd: int) -> None:
        pid, tmp_dir = self.children.pop(pidfd)
        self.poller.unregister(pidfd)
        # Whatever the child left in its process group goes with it.
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        _, status, usage = os.wait4(pid, 0)
        os.close(pidfd)
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        self.control.send(
            Exited(pid=pid, status=status, cpu=usage.ru_utime + usage.ru_stime, maxrss_kb=usage.ru_maxrss)
        )

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


def _prepare(
    control: _Control, config: Configure, libc: ctypes.CDLL, parent_pid: int
) -> tuple[_child.ChildPlan, int] | None:
    """Confines the template, imports and checks the hook. Reports ``ImportFailed`` and returns None on
    failure."""
    # Opened before confinement: Landlock would refuse /proc later, an fd already open keeps working.
    statm_fd = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
    tasks_fd = os.open("/proc/self/task", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        adapter = _load_adapter(config.adapter) if config.adapter else None
    except Exception as exc:
        control.send(ImportFailed(type_name=type(exc).__name__, message=f"adapter: {exc}"))
        return None
    confinement = None
    layers: dict[str, bool | str] = {}
    if config.sandbox:
        from ._confine import Confinement  # noqa: PLC0415 - only needed when the sandbox is on

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
            return None
        layers = dict(confinement.layers)
        # Changing uid inside the new user namespace cleared the parent-death signal: arm it again, so that
        # the template dies with the proxy even if the proxy is SIGKILLed.
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)
    try:
        module = _load_module(config.path)
        handler = _check_handler(module, config.function)
        threads = len(os.listdir(tasks_fd))
        if threads > 1:
            raise _HookRejected(
                f"importing the hook left {threads - 1} extra thread(s) running; start threads inside the "
                "handler instead (a process with running threads cannot be forked safely)"
            )
    except _HookRejected as exc:
        control.send(ImportFailed(type_name="HookRejected", message=str(exc)))
        return None
    except BaseException as exc:
        control.send(
            ImportFailed(
                type_name=type(exc).__name__,
                message=_describe(exc, config.path),
                traceback=_child._excerpt(exc),
            )
        )
        return None
    finally:
        os.close(tasks_fd)
    is_async = inspect.iscoroutinefunction(handler)
    plan = _child.ChildPlan(
        config=config, handler=handler, adapter=adapter, is_async=is_async, confinement=confinement, libc=libc
    )
    control.send(Ready(pid=os.getpid(), is_async=is_async, layers=layers, python=sys.version.split()[0]))
    return plan, statm_fd


def _describe(exc: BaseException, path: str) -> str:
    """One line naming the error and where in the hook's own files it happened."""
    if isinstance(exc, SyntaxError):
        where = f"line {exc.lineno}" if exc.lineno else "unknown line"
        return f"syntax error at {where} of {os.path.basename(exc.filename or 'the hook')}: {exc.msg}"
    hook_root = path if os.path.isdir(path) else os.path.dirname(path)
    ours = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(hook_root)]
    where = f" ({os.path.basename(ours[-1].filename)}, line {ours[-1].lineno})" if ours else ""
    return f"{type(exc).__name__}: {exc}{where}"


def main(control_fd: int, parent_pid: int) -> None:
    """Entry point of the template process."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)
    # What the hook prints while it is imported reaches the parent line by line (it keeps it for errors).
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    control = _Control(control_fd)
    first, fds = control.receive()
    for fd in fds:
        os.close(fd)
    if not isinstance(first, Configure):
        os._exit(2)
    prepared = _prepare(control, first, libc, parent_pid)
    if prepared is None:
        os._exit(0)
    plan, statm_fd = prepared
    gc.collect()
    gc.freeze()  # keep the imported objects' pages shared with the children: refcount-free pages stay clean
    Template(control, plan, statm_fd).serve()
    os._exit(0)
