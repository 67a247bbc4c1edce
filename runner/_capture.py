"""Bounded capture of a child's stdout or stderr."""

from __future__ import annotations

import os

#: Bytes one wake-up reads from a pipe at most: a few system calls' worth.
_READ_BUDGET = 4 << 16


class Capture:
    """Keeps the first ``limit`` bytes read from a pipe and counts the rest, which is dropped.

    The pipe is always drained, so a hook printing without end never blocks on a full pipe: it runs into
    its own deadline instead. Each :meth:`read_available` reads a bounded amount, so that a worker writing
    as fast as it can never holds the parent's event loop: what is left is read on the loop's next turn.
    """

    __slots__ = ("_data", "_dropped", "_fd", "_limit")

    def __init__(self, fd: int, limit: int) -> None:
        self._fd = fd
        self._limit = limit
        self._data = bytearray()
        self._dropped = 0

    @property
    def fd(self) -> int:
        return self._fd

    def close(self) -> None:
        """Closes the pipe; what was captured stays readable with :meth:`text`."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def read_available(self, budget: int = _READ_BUDGET) -> bool:
        """Reads what the pipe holds now, at most ``budget`` bytes; returns False at end of file (or once
        closed)."""
        while self._fd >= 0 and budget > 0:
            budget -= 1 << 16
            try:
                chunk = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not chunk:
                return False
            room = self._limit - len(self._data)
            if room > 0:
                self._data += chunk[:room]
            self._dropped += max(0, len(chunk) - max(room, 0))
        return self._fd >= 0

    def text(self) -> str:
        text = self._data.decode("utf-8", errors="replace")
        if self._dropped:
            text += f"\n[… {self._dropped} more bytes dropped]"
        return text
