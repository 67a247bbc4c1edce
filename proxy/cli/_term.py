"""Small terminal helpers for the CLI: text bars and a progress bar that never garbles piped output."""

from __future__ import annotations

import math
import time
from typing import TextIO

__all__ = ("ProgressBar", "bar", "can_encode")

_EIGHTHS = " ▏▎▍▌▋▊▉"


def can_encode(stream: TextIO, text: str) -> bool:
    """Whether ``stream`` can print ``text`` (block characters need a UTF-8 or similar encoding)."""
    try:
        text.encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def bar(fraction: float, width: int, *, unicode: bool = True) -> str:
    """A horizontal bar ``width`` cells wide filled to ``fraction`` (0..1), in eighths of a cell if ``unicode``."""
    fraction = min(max(fraction, 0.0), 1.0)
    if not unicode:
        return "#" * round(fraction * width)
    eighths = round(fraction * width * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + (_EIGHTHS[rest] if rest else "")


class ProgressBar:
    """A one-line progress bar redrawn in place on a terminal; silent when ``enabled`` is false.

    Args:
        total: the number of steps.
        stream: where to draw (the CLI uses stderr, so ``--json`` on stdout stays clean).
        enabled: draw at all (the CLI enables it only when ``stream`` is a terminal).
        label: shown before the bar.
        width: cells of the bar itself.
        interval: the least seconds between redraws.
    """

    def __init__(
        self,
        total: int,
        stream: TextIO,
        *,
        enabled: bool,
        label: str = "",
        width: int = 30,
        interval: float = 0.1,
    ) -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.enabled = enabled
        self.label = label
        self.width = width
        self.interval = interval
        self.done = 0
        self._started = time.monotonic()
        self._drawn_at = -math.inf
        self._unicode = can_encode(stream, "█▉")

    def advance(self, steps: int = 1, *, note: str = "") -> None:
        """Count ``steps`` more and redraw if enough time passed (always on the last step)."""
        self.done += steps
        now = time.monotonic()
        if self.enabled and (now - self._drawn_at >= self.interval or self.done >= self.total):
            self._drawn_at = now
            self._draw(now, note)

    def close(self) -> None:
        """Erase the bar so that what follows starts on a clean line."""
        if self.enabled:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()

    def _draw(self, now: float, note: str) -> None:
        fraction = self.done / self.total
        elapsed = max(now - self._started, 1e-9)
        filled = bar(fraction, self.width, unicode=self._unicode)
        line = (
            f"{self.label}{self.done:>{len(str(self.total))}}/{self.total} "
            f"|{filled:<{self.width}}| {fraction:4.0%}  {self.done / elapsed:6.0f}/s"
        )
        if note:
            line += f"  {note}"
        self.stream.write("\r\x1b[2K" + line)
        self.stream.flush()
