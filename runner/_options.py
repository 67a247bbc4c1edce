"""Options for the runner: what to run (:class:`HookSpec`), how much it may use (:class:`Limits`) and how it
is confined (:class:`Sandbox`). All are small immutable keyword-only objects passed in, never globals."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from ._identity import DEFAULT_WORKER_UID


@dataclass(frozen=True)
class HookSpec:
    """Which handler to run.

    Args:
        path: the hook's Python file, or a package directory (its ``__init__.py`` is imported).
        function: the name of the handler function in that module.
        adapter: optional ``module:function`` run inside the worker on the call's argument before it is
            passed to the handler (the SDK uses this to hand hooks an ``OpenID`` object, not a dict).
    """

    path: str | Path
    function: str
    adapter: str | None = None

    def __post_init__(self) -> None:
        if not self.function.isidentifier():
            raise ValueError(f"function must be a Python identifier, got {self.function!r}")


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Resource limits for every call.

    Args:
        timeout: wall-clock seconds per call, queueing for a free slot included.
        memory_mb: address space a call may add on top of the worker template's own size.
        cpu_seconds: CPU seconds per call; overrunning it is reported as a CPU limit.
        max_concurrency: calls in flight at once; further calls wait inside their own deadline.
        open_files: the most file descriptors a call may hold.
        file_size_mb: the largest file a call may write (0: none at all).
        max_output_bytes: how much of stdout and of stderr is kept per call (the rest is dropped).
        max_frame_bytes: the largest message a worker may send (the result included). Decoded, a frame can
            take tens of times its size in the parent's memory, once per call in flight: keep it small.
        max_host_calls: host calls one call may make; one more stops the call (a limit).
        max_host_reply_bytes: the largest answer to one host call; a larger one stops the call (a limit).
        prefork: children forked ahead of time so that fork is off the critical path.
        max_threads: threads a call may run, on average: the worker's calls together may run
            ``max_threads * max_concurrency`` tasks (RLIMIT_NPROC, counted in the worker's user namespace),
            so that no hook can run the host out of process ids.
        import_timeout: seconds the worker template may take to import the hook.
        nice: the worker's scheduling niceness, 0 (as the proxy) to 19 (only the CPU nobody else wants): a
            hook of lower priority (a candidate in the shadow of logins) cannot take CPU from the live one.
        slow_after: seconds of wall-clock time after which a call still running is lowered to ``slow_nice``
            (0: never). A quick call keeps ``nice`` to its end; a slow or spinning one then takes CPU only when
            the proxy and the quick calls leave it.
        slow_nice: the niceness of a call past ``slow_after``, for all its threads, applied again every 20 ms
            until the call ends; at or below ``nice`` nothing changes.
    """

    timeout: float = 5.0
    memory_mb: int = 256
    cpu_seconds: float = 2.0
    max_concurrency: int = 8
    open_files: int = 64
    file_size_mb: int = 8
    max_output_bytes: int = 64 * 1024
    max_frame_bytes: int = 1024 * 1024
    max_host_calls: int = 100
    max_host_reply_bytes: int = 1024 * 1024
    prefork: int = 2
    max_threads: int = 32
    import_timeout: float = 30.0
    nice: int = 0
    slow_after: float = 0.05
    slow_nice: int = 10

    def __post_init__(self) -> None:
        for name in ("nice", "slow_nice"):
            value = getattr(self, name)
            if not (isinstance(value, int) and 0 <= value <= 19):
                raise ValueError(f"{name} must be an integer from 0 to 19, got {value!r}")
        if not (isinstance(self.slow_after, int | float) and math.isfinite(self.slow_after) and self.slow_after >= 0):
            raise ValueError(f"slow_after must be a non-negative number of seconds, got {self.slow_after!r}")
        for name in ("timeout", "cpu_seconds", "import_timeout"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        for name in (
            "memory_mb",
            "max_concurrency",
            "open_files",
            "max_output_bytes",
            "max_frame_bytes",
            "max_host_reply_bytes",
            "max_threads",
        ):
            value = getattr(self, name)
            if not (isinstance(value, int) and value > 0):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("file_size_mb", "prefork", "max_host_calls"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 0):
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.open_files < 16:
            raise ValueError("open_files must be at least 16 (the interpreter needs a few)")


@dataclass(frozen=True, kw_only=True)
class Sandbox:
    """How the worker is confined.

    Args:
        network: allow network access (otherwise the worker lives in an empty network namespace).
        read_paths: extra files or directories the hook may read (data files), besides its own module.
        env: extra environment variables for the hook (its own secrets); nothing else is inherited.
        writable_tmp: give each call a private, empty, writable temporary directory (``$TMPDIR``).
        strict: a confinement layer this host cannot provide is an error; ``False`` only warns.
        enabled: apply the confinement layers at all (``False`` only for the runner's own benchmarks).
        worker_uid: when the proxy runs as root, start the worker as this uid (and gid), provided it can read
            the Python installation, the runner, the hook and its files (else the worker keeps the proxy's
            uid and the ``distinct_uid`` layer says why); ``None`` never changes uid.
    """

    network: bool = False
    read_paths: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    writable_tmp: bool = True
    strict: bool = True
    enabled: bool = True
    worker_uid: int | None = DEFAULT_WORKER_UID

    def __post_init__(self) -> None:
        if self.worker_uid is not None and not (isinstance(self.worker_uid, int) and 0 < self.worker_uid < 2**32 - 1):
            raise ValueError(f"worker_uid must be a uid other than 0, got {self.worker_uid!r}")
