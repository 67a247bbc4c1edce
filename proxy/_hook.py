"""The configured hook and its runner: ``hook_settings`` mapped 1:1 onto the runner's options, and reloads.

Reload policy: before each login the proxy asks the runner whether the hook's file (or any ``.py`` of its
package) changed since it was imported — one ``stat`` per login — and if so re-imports it into a new worker
template. The new version replaces the old only if it imports (keep-last-good); a failed reload is reported by
``/health`` and logged, and logins go on with the last good version until the file changes again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio

from runner import (
    CallResult,
    HookError,
    HookFingerprint,
    HookRunner,
    HookSpec,
    HostHandler,
    Limits,
    Sandbox,
    hook_fingerprint,
    hook_source_files,
)
from sdk.contract import ADAPTER

from ._config import HookSettings, HookTarget, ProxyConfig
from ._db import VersionRecord, utcnow
from ._text import ERROR_LIMIT, clip, one_line

__all__ = ("ADAPTER", "HookService", "HookSource", "hook_source", "runner_options")


logger = logging.getLogger("hookjail.hook")


def runner_options(
    config: ProxyConfig,
    *,
    allow_weak_sandbox: bool = False,
    target: HookTarget | None = None,
    settings: HookSettings | None = None,
    nice: int = 0,
) -> tuple[HookSpec, Limits, Sandbox]:
    """The runner's options for the configured hook (``config.hook`` must be set), or for ``target`` run with
    ``settings`` (the candidate) in the same sandbox."""
    target = target or config.hook
    assert target is not None
    settings = settings or config.hook_settings
    spec = HookSpec(path=str(target.path), function=target.function, adapter=ADAPTER)
    limits = Limits(
        timeout=settings.timeout,
        memory_mb=settings.memory_mb,
        cpu_seconds=settings.cpu_seconds,
        max_concurrency=settings.max_concurrency,
        max_host_calls=settings.max_host_calls,
        max_host_reply_bytes=settings.max_host_reply_kb * 1024,
        nice=nice,
    )
    sandbox = Sandbox(
        network=settings.network == "allow",
        read_paths=config.read_paths,
        env=dict(config.env),
        writable_tmp=True,
        strict=settings.sandbox == "strict" and not allow_weak_sandbox,
        worker_uid=settings.worker_uid,
    )
    return spec, limits, sandbox


@dataclass(frozen=True)
class HookSource:
    """Which version of the hook is loaded, as the dashboard shows it.

    Attributes:
        file: the hook's file name (``custom_sso.py``), or its package's name and a slash (``my_hook/``).
        sha256: hex SHA-256 of its source: for a module, of the file's bytes (``sha256sum custom_sso.py``);
            for a package, of a record naming each source file the template reads (its path inside the
            package, its length, its bytes), in the template's order. Empty when the source could not be read
            (a file that is not a regular file, or more than 64 MiB in all).
        loaded_at: when this version was imported (start-up or reload).
    """

    file: str
    sha256: str
    loaded_at: datetime
    #: the source files by path (relative to the package for a package), kept with the version; ``None`` when
    #: larger than :data:`MAX_KEPT_SOURCE` or not UTF-8
    sources: dict[str, str] | None = None

    @property
    def short_sha256(self) -> str:
        """The first 12 hex digits of :attr:`sha256`."""
        return self.sha256[:12]


#: The workers' niceness: the live hook's start as the proxy's own (a quick login's hook waits for no one) and
#: are lowered to runner.Limits.slow_nice once slower than slow_after; the candidate's always run at 19.
CANDIDATE_NICE = 19
LIVE_NICE = 0

#: The most source text a kept version holds (a larger hook is kept without its source).
MAX_KEPT_SOURCE = 1024 * 1024


#: The most bytes of source hashed; a larger hook gets no SHA-256 (and keeps no source).
MAX_HASHED_SOURCE = 64 * 1024 * 1024
#: Prefix of a package's hashed record, so that no module's bytes hash like a package.
_PACKAGE_RECORD = b"hookjail package v1\0"


class _Unreadable(Exception):
    """A source file that is not a regular file of the package, or the sources are too large to hash."""


def _read_regular(file: str, budget: int) -> bytes:
    """The bytes of ``file`` if it is a regular file (a symlink, device or FIFO is refused without reading it),
    at most ``budget`` of them."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise _Unreadable(file) from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _Unreadable(file)
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 1 << 20):
            size += len(chunk)
            if size > budget:
                raise _Unreadable(file)
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def hook_source(path: Path) -> HookSource:
    """Describe the hook at ``path`` (a module file or a package directory) as it is on disk now.

    Reads exactly the files the worker template compiles (:func:`runner.hook_source_files`), each only if it is
    a regular file (never through a symlink), at most :data:`MAX_HASHED_SOURCE` bytes in all: the proxy reads
    them unconfined, so a link in the package to a secret or a device is refused, not read. Such a hook gets no
    SHA-256 and keeps no source.
    """
    files: dict[str, bytes] = {}
    try:
        budget = MAX_HASHED_SOURCE
        for file in hook_source_files(str(path)):
            data = _read_regular(file, budget)
            budget -= len(data)
            files[Path(file).relative_to(path).as_posix() if path.is_dir() else path.name] = data
    except (_Unreadable, OSError, ValueError):
        return HookSource(file=_shown_name(path), sha256="", loaded_at=utcnow())
    if path.is_dir():
        digest = hashlib.sha256(_PACKAGE_RECORD)
        for name, data in files.items():
            digest.update(b"%s\0%d\0" % (name.encode("utf-8", "surrogateescape"), len(data)))
            digest.update(data)
    else:
        digest = hashlib.sha256(files[path.name])
    sources: dict[str, str] | None = None
    if sum(len(data) for data in files.values()) <= MAX_KEPT_SOURCE:
        try:
            sources = {name: data.decode("utf-8") for name, data in files.items()}
        except UnicodeDecodeError:
            sources = None
    return HookSource(file=_shown_name(path), sha256=digest.hexdigest(), loaded_at=utcnow(), sources=sources)


def _shown_name(path: Path) -> str:
    return f"{path.name}/" if path.is_dir() else path.name


class HookService:
    """Owns the :class:`~runner.HookRunner` of the configured hook for the proxy's lifetime.

    Args:
        config: the validated configuration (``config.hook`` must be set).
        allow_weak_sandbox: run even if a confinement layer is unavailable (``--allow-weak-sandbox``).
    """

    def __init__(self, config: ProxyConfig, *, allow_weak_sandbox: bool = False, candidate: bool = False) -> None:
        target = config.candidate if candidate else config.hook
        assert target is not None
        self.config = config
        self.target = target
        self.settings = config.hook_settings.for_candidate() if candidate else config.hook_settings
        self.spec, self.limits, self.sandbox = runner_options(
            config,
            allow_weak_sandbox=allow_weak_sandbox,
            target=target,
            settings=self.settings,
            # a candidate runs on the CPU the live logins leave: it must never slow them
            nice=CANDIDATE_NICE if candidate else LIVE_NICE,
        )
        self.runner = HookRunner(self.spec, self.limits, self.sandbox)
        #: what loaded the current version: ``start``, ``reload``, ``sighup`` (``candidate`` for a candidate)
        self.loaded_by = "candidate" if candidate else "start"
        #: told of each version loaded after start-up (the proxy keeps it in the database)
        self.on_load: Callable[[VersionRecord], Awaitable[None]] | None = None
        self.reloads = 0
        self.reload_failures = 0
        self.last_reload_error: str | None = None
        self._stack = AsyncExitStack()
        self._reload_lock = anyio.Lock()
        self._failed_fingerprint: HookFingerprint | None = None
        self._source: HookSource | None = None

    async def __aenter__(self) -> HookService:
        """Start the runner.

        Raises:
            HookImportError: the hook does not import or is not a usable handler.
            SandboxUnavailable: a required confinement layer is missing.
        """
        await self._stack.enter_async_context(self.runner)
        self._source = hook_source(self.target.path)
        return self

    def describe(self) -> HookSource:
        """The loaded version of the hook: file name and source SHA-256, computed when it was imported (at
        start-up and on each successful reload), not per call.

        Read after the import, so a file changed meanwhile is hashed as changed and the next login reloads
        it (the runner's own check), which hashes it again.
        """
        if self._source is None:  # not started: what is on disk
            self._source = hook_source(self.target.path)
        return self._source

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    def version(self) -> VersionRecord:
        """The loaded version as the database keeps it."""
        source = self.describe()
        return VersionRecord(
            sha256=source.sha256,
            file=source.file,
            function=self.target.function,
            sources=source.sources,
            loaded_by=self.loaded_by,
        )

    async def _loaded(self, by: str) -> None:
        """A new version replaced the old one: describe it and tell :attr:`on_load`."""
        self._source = hook_source(self.target.path)
        if self.loaded_by != "candidate":
            self.loaded_by = by
        if self.on_load is not None and self._source.sha256:
            try:
                await self.on_load(self.version())
            except Exception:
                logger.exception("could not keep version %s of hook %s", self._source.short_sha256, self.target.dotted)

    async def reload_if_changed(self) -> None:
        """Re-import the hook if its file changed (keep-last-good on failure).

        A version that failed to import is not retried until the file changes again.
        """
        try:
            if not self.runner.hook_changed:
                return
            fingerprint = hook_fingerprint(self.target.path)
        except OSError as exc:
            self.last_reload_error = f"cannot read the hook file: {exc.strerror}"
            return
        if fingerprint == self._failed_fingerprint:
            return
        async with self._reload_lock:
            try:
                if await self.runner.reload(if_changed=True):
                    await self._loaded("reload")
                    self.reloads += 1
                    self.last_reload_error = None
                    logger.info("reloaded hook %s", self.target.dotted)
            except HookError as exc:  # HookImportError, or SandboxUnavailable for the new template
                self._failed_fingerprint = fingerprint
                self.reload_failures += 1
                self.last_reload_error = clip(exc.message, ERROR_LIMIT)  # the hook's import-time word
                logger.error(
                    "hook %s changed but does not import, keeping the last good version: %s",
                    self.target.dotted,
                    one_line(exc.message),
                )
            except OSError as exc:
                self.last_reload_error = f"cannot read the hook file: {exc.strerror}"

    async def reload_now(self) -> bool:
        """Re-import the hook now, changed or not (SIGHUP); keep-last-good when the new import fails.

        Returns:
            True when the new version replaced the old one.
        """
        async with self._reload_lock:
            try:
                fingerprint = hook_fingerprint(self.target.path)
                await self.runner.reload()
            except HookError as exc:
                self._failed_fingerprint = fingerprint
                self.reload_failures += 1
                self.last_reload_error = clip(exc.message, ERROR_LIMIT)
                logger.error(
                    "reload of hook %s requested (SIGHUP) failed, keeping the last good version: %s",
                    self.target.dotted,
                    one_line(exc.message),
                )
                return False
            except OSError as exc:
                self.reload_failures += 1
                self.last_reload_error = f"cannot read the hook file: {exc.strerror}"
                logger.error("reload of hook %s requested (SIGHUP) failed: %s", self.target.dotted, exc.strerror)
                return False
            await self._loaded("sighup")
            self._failed_fingerprint = None
            self.reloads += 1
            self.last_reload_error = None
            logger.info("reloaded hook %s (SIGHUP)", self.target.dotted)
            return True

    async def call(self, openid: dict[str, Any], *, run_id: str, host: HostHandler | None = None) -> CallResult:
        """Run the hook once for one login (reloading it first if its file changed).

        Args:
            openid: the provider's ``OpenID`` as a plain dict.
            run_id: the id recorded with the login.
            host: answers the hook's host calls (``user_info``, ...); without it every host call is refused.

        Raises:
            HookError: how the call failed.
        """
        await self.reload_if_changed()
        return await self.runner.call(openid, run_id=run_id, host=host)

    def health(self) -> dict[str, Any]:
        """What ``/health`` reports about the hook."""
        return {
            "handler": self.target.dotted,
            "healthy": self.runner.healthy,
            "is_async": self.runner.is_async,
            "layers": self.runner.report_layers(),
            "reloads": self.reloads,
            "restarts": self.runner.restarts,
            "last_reload_error": self.last_reload_error,
        }
