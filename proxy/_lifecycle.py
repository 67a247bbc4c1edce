"""Signals of a serving proxy.

- **SIGTERM** (and Ctrl-C): uvicorn stops accepting connections at once, lets the requests in flight finish
  (a login within its deadline: :func:`drain_timeout`), then the lifespan stops the hook runner, which kills
  every worker process; the process exits 0. Requests still running after the drain timeout are cancelled.
  The serving process then waits until every process that was below its worker templates is gone
  (:class:`WorkerGuard`; the runner's PID-namespace reaper can outlive its template by up to a second),
  killing any still there after a few seconds, so that nothing outlives the proxy.
- **SIGHUP**: re-import the hook now, changed or not (keep-last-good: a version that does not import is logged
  and the running one keeps serving); counted in ``/metrics`` (``hookjail_hook_reloads_total{result}``) and
  logged. Without a hook configured it is logged and ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import time
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI

from ._config import ProxyConfig
from ._hook import HookService

__all__ = ("IDP_TIMEOUT", "WorkerGuard", "drain_timeout", "install_reload_signal")

logger = logging.getLogger("hookjail")

#: Seconds each request to the identity provider may take (connect, read, write, pool: each).
IDP_TIMEOUT = 5.0


def drain_timeout(config: ProxyConfig) -> float:
    """How long SIGTERM lets requests in flight run: a login's hook deadline (``hook_settings.timeout``), its
    two requests to the identity provider and a few seconds for the database."""
    return config.hook_settings.timeout + 2 * IDP_TIMEOUT + 5.0


def install_reload_signal(app: FastAPI, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Reload the hook on SIGHUP (see the module's docstring); returns the function that removes the handler.

    Only in the main thread of a process (the loop's signal handling); elsewhere nothing is installed.
    """
    tasks: set[asyncio.Task[bool]] = set()

    def on_sighup() -> None:
        hook: HookService | None = getattr(app.state, "hook", None)
        if hook is None:
            logger.info("SIGHUP: no hook is loaded, nothing to reload", extra={"event": "reload", "signal": "SIGHUP"})
            return
        logger.info("SIGHUP: reloading hook %s", hook.target.dotted, extra={"event": "reload", "signal": "SIGHUP"})
        task = loop.create_task(hook.reload_now())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    try:
        loop.add_signal_handler(signal.SIGHUP, on_sighup)
    except (RuntimeError, ValueError, NotImplementedError):  # not the main thread, or no signals here
        return lambda: None

    def remove() -> None:
        with contextlib.suppress(RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)
        for task in tasks:
            task.cancel()

    return remove


#: What the command line of a worker template (a child of this process) contains.
_TEMPLATE_MARK = b"runner._zygote"


class WorkerGuard:
    """No worker process outlives the proxy: :meth:`snapshot` (before the runner stops) takes a pidfd of every
    process below this process's worker templates; :meth:`wait_gone` (after it stopped) waits for them all to
    exit and SIGKILLs what is left after ``grace`` seconds. Pidfds follow a process that its parent's death
    re-parented, and cannot hit a reused pid.

    Only for a process that owns every worker template below it (``hookjail serve``, not a test process
    running several apps): the CLI enables it.
    """

    def __init__(self) -> None:
        self._pidfds: dict[int, int] = {}

    def snapshot(self) -> None:
        parents = _parents()
        me = os.getpid()
        roots = {pid for pid, parent in parents.items() if parent == me and _is_template(pid)}
        below = set(roots)
        changed = True
        while changed:
            found = {pid for pid, parent in parents.items() if parent in below} - below
            below |= found
            changed = bool(found)
        for pid in below:
            with contextlib.suppress(OSError):
                self._pidfds[pid] = os.pidfd_open(pid)

    async def wait_gone(self, grace: float = 3.0) -> None:
        deadline = time.monotonic() + grace
        try:
            while True:
                left = {pid: fd for pid, fd in self._pidfds.items() if not _exited(fd)}
                if not left:
                    return
                if time.monotonic() >= deadline:
                    logger.warning("killing %d worker process(es) still running after the runner stopped", len(left))
                    for fd in left.values():
                        with contextlib.suppress(OSError):
                            signal.pidfd_send_signal(fd, signal.SIGKILL)
                    deadline = time.monotonic() + 1.0
                    while any(not _exited(fd) for fd in left.values()) and time.monotonic() < deadline:
                        await asyncio.sleep(0.02)
                    return
                await asyncio.sleep(0.02)
        finally:
            for fd in self._pidfds.values():
                os.close(fd)
            self._pidfds.clear()


def _parents() -> dict[int, int]:
    table: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                table[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return table


def _is_template(pid: int) -> bool:
    try:
        return _TEMPLATE_MARK in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _exited(pidfd: int) -> bool:
    """A pidfd is readable once its process has exited (a zombie counts as gone: it runs nothing)."""
    return bool(select.select([pidfd], [], [], 0)[0])
