"""HookRunner: the parent side. Runs a hook once per call in a fresh confined child of a worker template."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes.util
import functools
import importlib.util
import itertools
import math
import os
import secrets
import shutil
import signal
import site
import statistics
import sys
import sysconfig
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import msgspec

from ._capture import Capture
from ._errors import (
    MAX_DENIAL_REASON,
    HookCrashed,
    HookDenied,
    HookError,
    HookImportError,
    HookLimitExceeded,
    HookOutputError,
    HookProtocolError,
    HookRaised,
    HookTimeout,
)
from ._framing import FrameDecoder, FrameEncoder, FrameTooLarge
from ._hostcall import HostCallError
from ._identity import WorkerIdentity, choose_identity
from ._options import HookSpec, Limits, Sandbox
from ._protocol import Call, Configure, Exited, Failure, FromChild, HostCall, HostReply, Result, Started
from ._result import CallResult
from ._template import Child, Template, TemplateDied

#: Answers a host call: ``(method, args) -> value``; raising sends the error back into the hook, under the
#: ``error_type`` of a :class:`HostCallError`, or else the exception's class name.
HostHandler = Callable[[str, dict[str, Any]], Awaitable[Any]]

# What the template's environment holds besides the operator's hook env: nothing of the parent's.
_BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
_RUNNER_DIR = os.path.dirname(os.path.abspath(__file__))
#: The sdk's package directory, beside the runner's: the hook's ``import sdk`` is pre-imported from there.
_SDK_DIR = os.path.join(os.path.dirname(_RUNNER_DIR), "sdk")
#: Tasks of a worker that are not calls' threads: the template, its reaper, reserve children and slack.
_TEMPLATE_TASKS = 16
#: Calls whose slot-holding time :meth:`HookRunner.typical_duration` takes the median of.
_RECENT_CALLS = 32


def _python_paths() -> list[str]:
    """The Python installation a hook needs to read: stdlib, extension modules and site-packages."""
    paths = {sysconfig.get_path(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths.update(site.getsitepackages())
    return sorted(p for p in paths if p and os.path.isdir(p))


@functools.cache
def _libraries() -> dict[str, str]:
    """The shared libraries the template's seccomp binding loads, found once per process (see
    ``runner._zygote._import_pyseccomp``)."""
    found = {name: ctypes.util.find_library(name) for name in ("c", "seccomp")}
    return {name: path for name, path in found.items() if path}


def _module_dir(module: str) -> str | None:
    """The top-level package directory of ``module`` (found without importing it)."""
    spec = importlib.util.find_spec(module.split(".", maxsplit=1)[0])
    if spec is None or spec.origin is None:
        return None
    origin = os.path.dirname(spec.origin) if spec.submodule_search_locations else spec.origin
    return os.path.abspath(origin)


#: A version of a hook's source as :func:`hook_fingerprint` sees it.
HookFingerprint = tuple[tuple[str, int, int], ...]


def hook_fingerprint(path: Path) -> HookFingerprint:
    """Return what identifies a version of the hook at ``path`` without reading it: each source file's path,
    size and mtime (for a package, every ``.py`` file under it); empty when it cannot be listed.

    Two calls give equal results as long as no source file was added, removed or written in between;
    :meth:`HookRunner.hook_changed` compares them.
    """
    try:
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        return tuple((str(f), (st := f.stat()).st_size, st.st_mtime_ns) for f in files)
    except OSError:
        return ()


class HookRunner:
    """Runs one hook in a fresh, confined child process per call.

    Use it as an async context manager::

        async with HookRunner(HookSpec("custom_sso.py", "custom_sso_handler"), Limits(timeout=5)) as runner:
            result = await runner.call({"id": "u1", "email": "alice@example.com"})

    Args:
        spec: which handler to run.
        limits: resource limits applied to every call.
        sandbox: how the worker is confined.
    """

    def __init__(self, spec: HookSpec, limits: Limits | None = None, sandbox: Sandbox | None = None) -> None:
        self.spec = spec
        self.limits = limits or Limits()
        self.sandbox = sandbox or Sandbox()
        self._path = Path(spec.path).resolve()
        self._template: Template | None = None
        self._retired: set[Template] = set()
        self._restarting: asyncio.Task[Template] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._tokens = itertools.count(1)
        self._tmp_root: str | None = None
        self._identity = WorkerIdentity(None, "off: the sandbox is disabled")
        self._fingerprint: HookFingerprint = ()
        self._closed = False
        self._encoder = FrameEncoder()
        self.restarts = 0
        # Read-only counters for the embedding application (metrics, backpressure): calls waiting for a worker
        # slot, and when each call holding one took it; how long recent calls held their slot.
        self._waiting = 0
        self._holding: dict[int, float] = {}
        self._slot_ids = itertools.count()
        self._held: collections.deque[float] = collections.deque(maxlen=_RECENT_CALLS)

    # --- lifecycle -----------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Starts the worker template: imports and checks the hook, sets up the sandbox.

        Raises:
            HookImportError: the hook cannot be imported or is not a usable handler.
            SandboxUnavailable: a required confinement layer is missing on this host.
        """
        if not self._path.exists():
            raise HookImportError(f"hook file not found: {self._path.name}")
        self._slots = asyncio.Semaphore(self.limits.max_concurrency)
        if self.sandbox.enabled:
            self._identity = choose_identity(self.sandbox.worker_uid, [sys.executable, *self._read_paths()])
        if self.sandbox.writable_tmp and self.sandbox.enabled:
            self._tmp_root = tempfile.mkdtemp(prefix="hookjail-")
            if self._identity.uid is not None:
                os.chown(self._tmp_root, self._identity.uid, self._identity.uid)
        try:
            self._template = await self._new_template()
        except BaseException:
            self._remove_tmp()
            raise

    async def close(self) -> None:
        """Stops the template and kills every child still running."""
        self._closed = True
        if self._restarting is not None:
            self._restarting.cancel()
            with contextlib.suppress(BaseException):
                await self._restarting
        for template in [self._template, *self._retired]:
            if template is not None:
                await template.stop()
        self._template = None
        self._retired.clear()
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        if self._tmp_root is not None:
            if self._identity.uid is not None:  # it was the worker's: take it back (/tmp is sticky)
                with contextlib.suppress(OSError):
                    os.chown(self._tmp_root, os.geteuid(), os.getegid())
            shutil.rmtree(self._tmp_root, ignore_errors=True)
            self._tmp_root = None

    def _read_paths(self) -> list[str]:
        """What the worker may read: the Python installation, the runner, the hook, the adapter, the grants."""
        read_paths = [*_python_paths(), _RUNNER_DIR, str(self._path)]
        if self.spec.adapter:
            adapter_dir = _module_dir(self.spec.adapter.partition(":")[0])
            if adapter_dir:
                read_paths.append(adapter_dir)
        read_paths.extend(os.path.abspath(p) for p in self.sandbox.read_paths)
        return list(dict.fromkeys(read_paths))

    def _configure(self) -> Configure:
        read_paths = self._read_paths()
        return Configure(
            path=str(self._path),
            function=self.spec.function,
            adapter=self.spec.adapter,
            memory_mb=self.limits.memory_mb,
            cpu_seconds=self.limits.cpu_seconds,
            open_files=self.limits.open_files,
            file_size_mb=self.limits.file_size_mb,
            max_frame_bytes=self.limits.max_frame_bytes,
            network=self.sandbox.network,
            read_paths=tuple(read_paths),
            tmp_root=self._tmp_root,
            # Room for every call in flight to write files up to its own size limit.
            tmp_size_mb=max(16, self.limits.max_concurrency * self.limits.file_size_mb),
            strict=self.sandbox.strict,
            sandbox=self.sandbox.enabled,
            libraries=_libraries() if self.sandbox.enabled else {},
            trusted_paths=(*_python_paths(), _RUNNER_DIR, _SDK_DIR),
            max_tasks=self.limits.max_threads * self.limits.max_concurrency + _TEMPLATE_TASKS,
            nice=self.limits.nice,
        )

    async def _new_template(self) -> Template:
        fingerprint = hook_fingerprint(self._path)
        template = Template(
            self._configure(),
            {**_BASE_ENV, **self.sandbox.env},
            prefork=self.limits.prefork,
            next_token=lambda: next(self._tokens),
            on_death=self._on_template_death,
            user=self._identity.uid,
        )
        await template.start(self.limits.import_timeout)
        try:
            template.is_async = await self._probe(template)
        except BaseException:
            await asyncio.shield(template.stop())
            raise
        self._fingerprint = fingerprint
        return template

    async def _probe(self, template: Template) -> bool:
        """Proves in a throwaway child of ``template`` that the hook's module body runs and defines a usable
        handler, under the same layers and limits as a call. Returns whether the handler is async.

        Raises:
            HookImportError: it does not import, its handler is missing or has the wrong shape.
        """
        run = _Run(self, f"import-{next(self._tokens)}", asyncio.get_running_loop().time(), template=template)
        try:
            async with asyncio.timeout(self.limits.timeout):
                result = await run.execute(None, None, probe=True)
        except TimeoutError:
            error: HookError = HookImportError(
                f"importing the hook took longer than {self.limits.timeout:g} s (its module body runs in "
                "every call, within the call's timeout)"
            )
            raise run.fail(error) from None
        except HookImportError as exc:
            raise run.fail(exc) from None
        except HookError as exc:
            raise run.fail(HookImportError(f"importing the hook failed: {exc.message}")) from None
        finally:
            run.cleanup()
        value = result.value
        return bool(value.get("is_async")) if isinstance(value, dict) else False

    def _on_template_death(self, template: Template) -> None:
        self._retired.discard(template)
        if template is self._template and not self._closed and self._restarting is None:
            self._restarting = asyncio.get_running_loop().create_task(self._restart())

    async def _restart(self) -> Template:
        try:
            template = await self._new_template()
            self.restarts += 1
            self._template = template
            return template
        finally:
            self._restarting = None

    async def _live_template(self) -> Template:
        while True:
            template = self._template
            if template is not None and template.alive:
                return template
            if self._closed:
                raise HookError("the hook runner is closed")
            restarting = self._restarting
            if restarting is None:
                restarting = self._restarting = asyncio.get_running_loop().create_task(self._restart())
            await asyncio.shield(restarting)

    async def reload(self, *, if_changed: bool = False) -> bool:
        """Imports the hook again into a new template and swaps it in only if that succeeds.

        Calls already running finish on the old template; later calls use the new one.

        Args:
            if_changed: only reload when the hook's file (or any ``.py`` in its package) changed.

        Returns:
            True when a new template was swapped in.

        Raises:
            HookImportError: the new version does not import; the previous one keeps serving.
        """
        if if_changed and hook_fingerprint(self._path) == self._fingerprint:
            return False
        new = await self._new_template()
        old, self._template = self._template, new
        if old is not None:
            self._retired.add(old)
            await old.stop(graceful=True)
        return True

    # --- state ---------------------------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """True while a template is running and ready to fork children."""
        return self._template is not None and self._template.alive

    @property
    def layers(self) -> dict[str, bool | str]:
        """The confinement layers active in the worker: name -> on/off or a short detail."""
        if self._template is None or self._template.ready is None:
            return {}
        layers = dict(self._template.ready.layers)
        if self.sandbox.enabled:
            layers["distinct_uid"] = self._identity.note if self._identity.uid is not None else False
        return layers

    @property
    def layer_notes(self) -> dict[str, str]:
        """Why a layer that is not required is off (today: ``distinct_uid``)."""
        if not self.sandbox.enabled or self._identity.uid is not None:
            return {}
        return {"distinct_uid": self._identity.note}

    def report_layers(self) -> dict[str, bool | str]:
        """:attr:`layers` for people: a layer that is off for a reason shows the reason (``"off: ..."``)."""
        return {**self.layers, **self.layer_notes}

    @property
    def is_async(self) -> bool:
        """True when the handler is an ``async def``."""
        return bool(self._template and self._template.is_async)

    @property
    def hook_changed(self) -> bool:
        """True when the hook's file changed since the running template imported it."""
        return hook_fingerprint(self._path) != self._fingerprint

    @property
    def in_flight(self) -> int:
        """Calls holding a worker slot now (at most ``limits.max_concurrency``)."""
        return len(self._holding)

    @property
    def waiting(self) -> int:
        """Calls waiting for a worker slot now (inside their own deadline)."""
        return self._waiting

    def typical_duration(self) -> float | None:
        """The median time the last calls (up to 32) held their slot, in seconds; None before any ended."""
        return statistics.median(self._held) if self._held else None

    def expected_wait(self) -> float:
        """The estimated seconds a call made now would wait for a slot: 0 while one is free (or before any
        call ended). Every call is assumed to hold its slot for :meth:`typical_duration`: the oldest running call
        frees the first slot, and each full round of calls waiting ahead adds one more duration."""
        typical = self.typical_duration()
        if len(self._holding) < self.limits.max_concurrency or typical is None:
            return 0.0
        now = asyncio.get_running_loop().time()
        oldest = min(self._holding.values())
        return max(0.0, typical - (now - oldest)) + (self._waiting // self.limits.max_concurrency) * typical

    def would_miss_deadline(self) -> float | None:
        """Backpressure: the estimated wait (seconds) when a call made now would, by the estimate, not finish
        within ``limits.timeout``: every slot busy, and the expected wait plus a typical call's duration longer
        than the timeout. None otherwise (a slot is free, no call has ended yet, or the estimate fits). A caller
        can then refuse at once rather than queue a call into its timeout."""
        wait = self.expected_wait()
        typical = self.typical_duration()
        if wait <= 0.0 or typical is None or wait + typical <= self.limits.timeout:
            return None
        return wait

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """Hold one of the ``max_concurrency`` worker slots, keeping :attr:`waiting` and :attr:`in_flight`."""
        assert self._slots is not None
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        loop = asyncio.get_running_loop()
        token = next(self._slot_ids)
        self._holding[token] = taken = loop.time()
        try:
            yield
        finally:
            del self._holding[token]
            self._held.append(loop.time() - taken)
            self._slots.release()

    # --- calls ---------------------------------------------------------------------------------------------

    async def call(self, arg: Any, *, host: HostHandler | None = None, run_id: str | None = None) -> CallResult:
        """Runs the hook's module body and handler once on ``arg`` in a fresh child and returns what it returned.

        A call whose child dies with its template (never the hook's doing: the template runs no hook code)
        is run again on the restarted template, within the same deadline; before that, ``host.reset()`` is
        called when ``host`` has such a method, so that a host staging writes can drop the lost attempt's.

        Args:
            arg: plain data (msgpack-encodable) passed to the handler, after the spec's adapter if any.
            host: answers the host calls the hook makes; without it every host call is refused.
            run_id: the id to give this call (a random one by default).

        Raises:
            HookError: one of its subclasses, naming how the call failed.
        """
        if self._slots is None:
            raise RuntimeError("HookRunner.call() before start(); use 'async with HookRunner(...)'")
        run_id = run_id or secrets.token_hex(8)
        loop = asyncio.get_running_loop()
        started = loop.time()
        run = _Run(self, run_id, started)
        try:
            async with asyncio.timeout_at(started + self.limits.timeout) as scope:
                async with self._slot():
                    run.queued = False
                    return await run.execute(arg, host)
        except TimeoutError as exc:
            if not scope.expired():
                raise
            error: HookError = HookTimeout(
                f"the hook did not finish within {self.limits.timeout:g} s"
                + (" (it waited for a free worker slot)" if run.queued else ""),
            )
            raise run.fail(error) from exc
        except HookError as exc:
            raise run.fail(exc) from exc.__cause__
        finally:
            run.cleanup()

    async def _take_child(self) -> tuple[Template, Child]:
        while True:
            template = await self._live_template()
            # Ended calls first leave the temp space, so that a child forked now gets its temp dir.
            await template.settled()
            try:
                return template, await template.take_child()
            except TemplateDied:
                continue


class _ChildLost(Exception):
    """The child's template died under it: the call may be run again on the restarted template."""


#: What one call may send the parent in all, in units of ``Limits.max_frame_bytes`` (its result is one).
_CHANNEL_FRAMES = 4
#: How often a slow call's priority is lowered again, until it ends (see _Call._lower_priority).
_RELOWER_EVERY = 0.02
#: Attempts of one call whose child is lost with its template each time, before the call fails.
_MAX_ATTEMPTS = 3
#: Caps on the strings a worker reports (the child's own code caps them too, but hook code can forge frames).
_MAX_TYPE_NAME = 200
_MAX_MESSAGE = 1000
_MAX_TRACEBACK = 4000


class _Run:
    """The state of one call in the parent."""

    __slots__ = (
        "captures",
        "channel_budget",
        "child",
        "fixed",
        "host_calls",
        "queued",
        "run_id",
        "runner",
        "slow",
        "started",
        "template",
    )

    def __init__(self, runner: HookRunner, run_id: str, started: float, *, template: Template | None = None) -> None:
        self.runner = runner
        self.run_id = run_id
        self.started = started
        self.queued = True
        self.child: Child | None = None
        self.fixed = template  # the probe of a template not yet serving: only its children will do
        self.template: Template | None = None
        self.captures: tuple[Capture, Capture] | None = None
        self.host_calls: list[tuple[str, str]] = []
        self.channel_budget = 0  # bytes the child may still send on its channel (set per attempt)
        self.slow: asyncio.TimerHandle | None = None  # lowers the child's priority at Limits.slow_after

    async def execute(self, arg: Any, host: HostHandler | None, *, probe: bool = False) -> CallResult:
        for attempt in range(_MAX_ATTEMPTS):
            if attempt:
                # The template died under the child: the hook cannot cause that (it never runs in the
                # template), so the call is run again from scratch on the restarted template.
                reset = getattr(host, "reset", None)
                if callable(reset):
                    reset()
                self.host_calls.clear()
            try:
                return await self._attempt(arg, host, probe)
            except _ChildLost:
                self.cleanup()
                if self.fixed is not None:
                    raise HookImportError("the hook's worker exited while importing it") from None
        raise HookCrashed(f"the worker was lost with its template {_MAX_ATTEMPTS} times in a row")

    async def _take_child(self) -> tuple[Template, Child]:
        if self.fixed is None:
            return await self.runner._take_child()
        try:
            await self.fixed.settled()
            return self.fixed, await self.fixed.take_child()
        except TemplateDied:
            raise _ChildLost from None

    async def _attempt(self, arg: Any, host: HostHandler | None, probe: bool) -> CallResult:
        runner = self.runner
        loop = asyncio.get_running_loop()
        self.template, child = await self._take_child()
        self.child = child
        # No hook code runs while a call that has ended is not yet reaped and its temp dir removed: a login
        # that starts after another ended finds no trace of it, not even in the temp space's free counts.
        await self.template.settled()
        limit = runner.limits.max_output_bytes
        self.captures = (Capture(child.out, limit), Capture(child.err, limit))
        for capture in self.captures:
            loop.add_reader(capture.fd, self._drain, capture)
        with contextlib.suppress(ConnectionError):  # a dead child shows up as end of file just below
            call = Call(arg=arg, run_id=self.run_id, probe=probe)
            await loop.sock_sendall(child.channel, runner._encoder.encode(call))
        limits = runner.limits
        if limits.slow_after > 0 and limits.slow_nice > limits.nice:
            self.slow = loop.call_later(limits.slow_after, self._lower_priority, child, limits.slow_nice)
        decoder: FrameDecoder[Any] = FrameDecoder(FromChild, runner.limits.max_frame_bytes)
        self.channel_budget = _CHANNEL_FRAMES * runner.limits.max_frame_bytes
        started = False
        while True:
            for message in await self._receive(child, decoder):
                # The child says Started once, first; anything else is a hook writing to its channel itself.
                if isinstance(message, Started) == started:
                    raise HookProtocolError(f"the worker sent an unexpected {type(message).__name__.lower()} frame")
                if isinstance(message, Started):
                    started = True
                elif isinstance(message, Result):
                    return self._success(message.value)
                elif isinstance(message, Failure):
                    raise _failure_error(message)
                elif isinstance(message, HostCall):
                    reply = await self._answer(message, host)
                    with contextlib.suppress(ConnectionError):
                        await loop.sock_sendall(child.channel, runner._encoder.encode(reply))
            # sock_recv returns at once while data is waiting: without this, a hook that keeps its channel full
            # would hold the event loop (every other login, and this call's own deadline) for as long as it likes.
            await asyncio.sleep(0)

    async def _receive(self, child: Child, decoder: FrameDecoder[Any]) -> list[Any]:
        """The messages completed by the child's next bytes on its channel (maybe none).

        Raises:
            HookLimitExceeded: the child sent more than its channel budget.
            HookProtocolError: a frame is oversized or malformed, or the channel closed mid-frame.
            HookError: the channel closed without an answer (how the child ended: crash, CPU limit...).
            _ChildLost: the channel closed and the template died before it could say how the child ended.
        """
        try:
            data = await asyncio.get_running_loop().sock_recv(child.channel, 1 << 18)
        except ConnectionError:  # reset: the child died with our data unread
            data = b""
        self.channel_budget -= len(data)
        if self.channel_budget < 0:
            # Decoding is the parent's CPU: host calls with megabytes of arguments, a hundred times over,
            # held the proxy's event loop for seconds. A call gets a few frames' worth in all.
            raise HookLimitExceeded(
                f"the hook sent more than {_CHANNEL_FRAMES} frames' worth of data to the proxy", limit="channel"
            )
        if not data:
            error = await self._no_answer(child, decoder.pending)
            if error is None:
                raise _ChildLost
            raise error
        try:
            return list(decoder.feed(data))
        except FrameTooLarge as exc:
            raise HookProtocolError(f"the worker sent an oversized frame: {exc}") from exc
        except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
            raise HookProtocolError(f"the worker sent a malformed frame: {exc}") from exc

    async def _answer(self, request: HostCall, host: HostHandler | None) -> HostReply:
        limits = self.runner.limits
        if len(self.host_calls) >= limits.max_host_calls:
            raise HookLimitExceeded(f"the hook made more than {limits.max_host_calls} host calls", limit="host_calls")
        if host is None:
            self.host_calls.append((request.method, "refused"))
            return HostReply(
                id=request.id,
                ok=False,
                error_type="PermissionError",
                error="this hook may not make host calls",
            )
        try:
            value = await host(request.method, request.args)
        except HookError:
            raise
        except Exception as exc:
            error_type = _error_type(exc)
            self.host_calls.append((request.method, error_type))
            return HostReply(id=request.id, ok=False, error_type=error_type, error=str(exc)[:1000])
        reply = HostReply(id=request.id, ok=True, value=value)
        size = len(self.runner._encoder.encode(reply))
        if size > min(limits.max_host_reply_bytes, limits.max_frame_bytes):
            self.host_calls.append((request.method, "too large"))
            raise HookLimitExceeded(
                f"the answer to host call {request.method!r} is {size} bytes, more than the "
                f"{limits.max_host_reply_bytes} allowed",
                limit="host_reply",
            )
        self.host_calls.append((request.method, "ok"))
        return reply

    def _drain(self, capture: Capture) -> None:
        if not capture.read_available():
            asyncio.get_running_loop().remove_reader(capture.fd)

    def _success(self, value: Any) -> CallResult:
        stdout, stderr = self._output()
        return CallResult(
            value=value,
            duration=asyncio.get_running_loop().time() - self.started,
            run_id=self.run_id,
            stdout=stdout,
            stderr=stderr,
            host_calls=tuple(self.host_calls),
        )

    async def _no_answer(self, child: Child, pending: int) -> HookError | None:
        """The channel closed without a result: ask the template how the child ended (None: the template
        died first and cannot say)."""
        exited = await child.exited
        if pending:
            return HookProtocolError("the worker closed its channel in the middle of a frame")
        if exited is None:
            return None
        return _exit_error(exited, self.runner.limits)

    def _output(self) -> tuple[str, str]:
        if self.captures is None:
            return "", ""
        for capture in self.captures:
            capture.read_available()
        return self.captures[0].text(), self.captures[1].text()

    def fail(self, error: HookError) -> HookError:
        """Fills in the call's id, duration and output on ``error``."""
        error.run_id = self.run_id
        error.duration = asyncio.get_running_loop().time() - self.started
        error.stdout, error.stderr = self._output()
        return error

    def _lower_priority(self, child: Child, nice: int) -> None:
        """Lower the slow call's priority, and again every :data:`_RELOWER_EVERY` until it ends: a thread the
        child was starting while the kernel walked its threads keeps its creator's former niceness (the
        red team won that race about once in 30 calls), and is caught on the next pass."""
        child.lower_priority(nice)
        loop = asyncio.get_running_loop()
        self.slow = loop.call_later(_RELOWER_EVERY, self._lower_priority, child, nice)

    def cleanup(self) -> None:
        child = self.child
        if child is None:
            return
        if self.slow is not None:
            self.slow.cancel()
            self.slow = None
        loop = asyncio.get_running_loop()
        if self.captures is not None:
            for capture in self.captures:
                with contextlib.suppress(ValueError, OSError):
                    loop.remove_reader(capture.fd)
        # A child that has not answered is killed now: whatever it was doing must not outlive its call.
        child.kill()
        child.close()
        if self.template is not None:
            self.template.retire(child)  # the reserve is topped up once it is reaped
        self.child = None


def _error_type(exc: Exception) -> str:
    """The error type a host handler's exception is answered with: a :class:`HostCallError`'s own
    ``error_type``, else the class name (the builtins' names, "PermissionError", "ValueError", ...)."""
    if isinstance(exc, HostCallError) and exc.error_type:
        return exc.error_type
    return type(exc).__name__


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _failure_error(failure: Failure) -> HookError:
    type_name = _clip(failure.type_name, _MAX_TYPE_NAME)
    message = _clip(failure.message, _MAX_MESSAGE)
    traceback = failure.traceback[-_MAX_TRACEBACK:]
    if failure.kind == "memory":
        return HookLimitExceeded("the hook ran out of memory (memory limit)", limit="memory")
    if failure.kind == "output":
        return HookOutputError(f"the hook's return value cannot be sent back: {message}")
    if failure.kind == "import":
        return HookImportError(message, traceback=traceback)
    if failure.kind == "denied":
        return HookDenied(_clip(failure.message, MAX_DENIAL_REASON))
    text = f"{type_name}: {message}" if message else type_name
    return HookRaised(text, type_name=type_name, traceback=traceback)


def _exit_error(exited: Exited, limits: Limits) -> HookError:
    status = exited.status
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        # The parent's own kill at the deadline never gets here, so a SIGKILL after the CPU soft limit was
        # spent is the kernel enforcing the hard limit on a hook that ignored SIGXCPU.
        cpu_soft = max(1, math.ceil(limits.cpu_seconds))
        if number == signal.SIGXCPU or (number == signal.SIGKILL and exited.cpu >= cpu_soft - 0.05):
            return HookLimitExceeded(f"the hook used more than {limits.cpu_seconds:g} s of CPU", limit="cpu")
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return HookCrashed(f"the worker was killed by {name}", signal=number)
    code = os.WEXITSTATUS(status)
    return HookCrashed(f"the worker exited with code {code} without answering", exit_code=code)
