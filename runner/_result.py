"""What a successful call returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class CallResult:
    """The outcome of one successful hook call.

    Attributes:
        value: what the handler returned, as plain data (dict, list, str, int, float, bool, None).
        duration: wall-clock seconds from the call to its result, queueing included.
        run_id: the id of this call, for logs and the hook-run record.
        stdout: what the hook printed on stdout (bounded; a truncation note is appended when cut).
        stderr: what the hook printed on stderr (bounded, likewise).
        host_calls: the host calls the hook made, in order: (method, outcome) pairs.
    """

    value: Any
    duration: float
    run_id: str
    stdout: str = ""
    stderr: str = ""
    host_calls: tuple[tuple[str, str], ...] = field(default=())
