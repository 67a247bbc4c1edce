"""One call's child: forked from the template, confined, runs the hook's module body and handler once, exits.

Everything here runs in the forked child only. The child never returns into the template's loop: it ends
with ``os._exit`` so that nothing the template set up (atexit handlers, buffered files) runs twice. No hook
code runs before every layer and limit is on and the parent has been told (``Started``) that it is about to.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import math
import os
import random
import resource
import socket
import sys
import traceback
from collections.abc import Callable
from importlib.machinery import ModuleSpec
from typing import TYPE_CHECKING, Any, NoReturn

import msgspec

from . import _hookcode, _hostcall
from ._errors import MAX_DENIAL_REASON, Denial
from ._framing import FrameEncoder, payload_size, recv_frame
from ._linux import set_parent_death_signal
from ._protocol import Call, Configure, Failure, Result, Started, ToChild

if TYPE_CHECKING:
    from ._confine import Confinement

_RUNNER_DIR = os.path.dirname(os.path.abspath(__file__))
_ASYNCIO_DIR = os.path.dirname(os.path.abspath(asyncio.__file__))
_MAX_TRACEBACK = 4000
_MAX_MESSAGE = 1000
_SIGPENDING = 32

_STARTED = FrameEncoder().encode(Started())

# Exit codes a child uses when it cannot even report a failure through its channel.
EXIT_SETUP_FAILED = 70
EXIT_CHANNEL_LOST = 71


@dataclasses.dataclass(frozen=True, kw_only=True)
class ChildPlan:
    """What a child needs from the template, prepared once per template."""

    config: Configure
    hook: _hookcode.HookCode
    spec: ModuleSpec
    adapter: Callable[[Any], Any] | None
    confinement: Confinement | None


def _plain(obj: Any) -> Any:
    """msgspec hook for what it cannot encode natively: pydantic models and mappings-like objects."""
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=repr)
    raise TypeError(f"cannot encode a {type(obj).__name__} value")


def limit(which: int, soft: int, hard: int | None = None) -> None:
    """Sets an rlimit, never above the hard limit already in force."""
    _, current_hard = resource.getrlimit(which)
    hard = soft if hard is None else hard
    if current_hard != resource.RLIM_INFINITY:
        hard = min(hard, current_hard)
        soft = min(soft, hard)
    resource.setrlimit(which, (soft, hard))


def apply_limits(config: Configure, vm_bytes: int) -> None:
    """Sets the per-call rlimits. The CPU soft limit sits a second below the hard one so that an overrun
    shows up as SIGXCPU (reported as a CPU limit) before the kernel's SIGKILL."""
    cpu = max(1, math.ceil(config.cpu_seconds))
    limit(resource.RLIMIT_CPU, cpu, cpu + 1)
    limit(resource.RLIMIT_AS, vm_bytes + config.memory_mb * 1024 * 1024)
    limit(resource.RLIMIT_NOFILE, config.open_files)
    limit(resource.RLIMIT_FSIZE, config.file_size_mb * 1024 * 1024)
    limit(resource.RLIMIT_CORE, 0)
    # Per-user quotas the kernel counts across the host: a call may queue a few signals, no message queues.
    limit(resource.RLIMIT_SIGPENDING, _SIGPENDING)
    limit(resource.RLIMIT_MSGQUEUE, 0)
    # Threads are tasks too: counted per user namespace (this worker's), they cannot run the host out of pids.
    if config.max_tasks:
        limit(resource.RLIMIT_NPROC, config.max_tasks)


def _excerpt(exc: BaseException) -> str:
    """The traceback of the hook's own frames (runner and asyncio frames dropped), causes first, bounded."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 5:
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    parts = []
    for link in reversed(chain):  # as Python prints them: the original cause first
        frames = [
            frame
            for frame in traceback.extract_tb(link.__traceback__)
            if not frame.filename.startswith((_RUNNER_DIR, _ASYNCIO_DIR, "<frozen "))
        ]
        parts.append("".join(traceback.format_list(frames) + traceback.format_exception_only(link)))
    text = "\nwhich led to:\n".join(parts)
    return text[-_MAX_TRACEBACK:]


def _failure(kind: str, exc: BaseException) -> Failure:
    message = str(exc)
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "…"
    return Failure(kind=kind, type_name=type(exc).__name__[:200], message=message, traceback=_excerpt(exc))


def _load_handler(plan: ChildPlan, *, probe: bool) -> Callable[[Any], Any]:
    """Executes the hook's module body (the first hook code this process runs) and returns its handler: fully
    checked in the import probe, only for being callable in a call (the probe checked its shape)."""
    module = _hookcode.execute(plan.spec)
    if probe:
        return _hookcode.check_handler(module, plan.config.function)
    return _hookcode.handler_of(module, plan.config.function)


def _invoke(handler: Callable[[Any], Any], plan: ChildPlan, loop: asyncio.AbstractEventLoop, arg: Any) -> Any:
    if plan.adapter is not None:
        arg = plan.adapter(arg)
    value = handler(arg)
    if inspect.isawaitable(value):
        value = loop.run_until_complete(value)
    return value


def _import_failure(exc: BaseException, path: str) -> Failure:
    if isinstance(exc, _hookcode.HookRejected):
        return Failure(kind="import", type_name="HookRejected", message=str(exc)[:_MAX_MESSAGE])
    message = _hookcode.describe_import_error(exc, path)
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "…"
    return Failure(kind="import", type_name=type(exc).__name__[:200], message=message, traceback=_excerpt(exc))


def _encode_result(value: Any, encoder: FrameEncoder, max_frame: int) -> bytes:
    frame = encoder.encode(Result(value=value))
    if payload_size(frame) > max_frame:
        raise OverflowError(f"the result encodes to {payload_size(frame)} bytes, more than the {max_frame} allowed")
    return frame


def run(
    plan: ChildPlan, channel_fd: int, stdout_fd: int, stderr_fd: int, vm_bytes: int, tmp_dir: str | None
) -> NoReturn:
    """Runs in the freshly forked child: confine, wait for the call, run it once, report, exit."""
    try:
        channel, loop, decoder = _set_up(plan, channel_fd, stdout_fd, stderr_fd, vm_bytes, tmp_dir)
        encoder = FrameEncoder(enc_hook=_plain)
    except BaseException:
        traceback.print_exc()
        os._exit(EXIT_SETUP_FAILED)
    message = _receive_call(channel, decoder, plan.config.max_frame_bytes)
    try:
        handler = _load_handler(plan, probe=message.probe)
    except MemoryError as exc:
        _send_and_exit(channel, encoder.encode(_failure("memory", exc)))
    except BaseException as exc:
        _send_and_exit(channel, encoder.encode(_import_failure(exc, plan.config.path)))
    if message.probe:
        _send_and_exit(channel, encoder.encode(Result(value={"is_async": inspect.iscoroutinefunction(handler)})))
    _send_and_exit(channel, _call_handler(handler, plan, loop, message.arg, encoder))


def _set_up(
    plan: ChildPlan, channel_fd: int, stdout_fd: int, stderr_fd: int, vm_bytes: int, tmp_dir: str | None
) -> tuple[socket.socket, asyncio.AbstractEventLoop, msgspec.msgpack.Decoder[ToChild]]:
    """Puts the child's stdio, limits and layers on, and makes what the call needs before it arrives."""
    config = plan.config
    set_parent_death_signal()
    os.setpgid(0, 0)
    os.dup2(stdout_fd, 1)
    os.dup2(stderr_fd, 2)
    # Line-buffered, so what a hook printed before it was killed at its deadline is not lost with it.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)
    random.seed()
    apply_limits(config, vm_bytes)
    # Before the seccomp filter, which then refuses umask: every directory the hook makes is owner-rwx,
    # so the template can always remove it (see runner._tmpdirs).
    os.umask(0o077)
    if plan.confinement is not None:
        plan.confinement.apply_child(tmp_dir)
    # Only stdio and the channel survive: the template's control socket and other children's fds go.
    os.closerange(3, channel_fd)
    os.closerange(channel_fd + 1, 1 << 20)
    if tmp_dir is not None:
        os.environ["TMPDIR"] = tmp_dir
    channel = socket.socket(fileno=channel_fd)
    _hostcall.install(channel, config.max_frame_bytes)
    # Created before the call arrives: it costs over a millisecond, which stays off the critical path.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return channel, loop, msgspec.msgpack.Decoder(ToChild)


def _receive_call(channel: socket.socket, decoder: msgspec.msgpack.Decoder[ToChild], max_frame: int) -> Call:
    """Waits for the call and tells the parent the hook is about to run; exits if the parent went away."""
    try:
        message = recv_frame(channel, decoder, max_frame)
    except BaseException:
        os._exit(EXIT_CHANNEL_LOST)  # the parent went away or sent garbage: nothing to answer
    if not isinstance(message, Call):
        os._exit(EXIT_CHANNEL_LOST)
    try:
        # Tells the parent the hook is now running: from here on, a lost child is a failed call, not one
        # that may safely be run again elsewhere.
        channel.sendall(_STARTED)
    except BaseException:
        os._exit(EXIT_CHANNEL_LOST)
    return message


def _call_handler(
    handler: Callable[[Any], Any], plan: ChildPlan, loop: asyncio.AbstractEventLoop, arg: Any, encoder: FrameEncoder
) -> bytes:
    """Runs the handler on ``arg`` and returns the frame that reports how it went."""
    try:
        value = _invoke(handler, plan, loop, arg)
    except Denial as exc:
        reason = exc.reason if isinstance(exc.reason, str) else ""
        return encoder.encode(
            Failure(kind="denied", type_name=type(exc).__name__[:200], message=reason[:MAX_DENIAL_REASON])
        )
    except MemoryError as exc:
        return encoder.encode(_failure("memory", exc))
    except BaseException as exc:
        return encoder.encode(_failure("raised", exc))
    try:
        return _encode_result(value, encoder, plan.config.max_frame_bytes)
    except MemoryError as exc:
        return encoder.encode(_failure("memory", exc))
    except BaseException as exc:
        return encoder.encode(_failure("output", exc))


def _send_and_exit(channel: socket.socket, frame: bytes) -> NoReturn:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):  # a hook may have closed or replaced them
            stream.flush()
    try:
        channel.sendall(frame)
    except BaseException:
        os._exit(EXIT_CHANNEL_LOST)
    os._exit(0)
