"""A per-client-address token bucket for the login routes, in memory (each replica counts for itself).

``HOOKJAIL_SSO_RATE_LIMIT`` sets it, e.g. ``30/minute`` (``<n>/second``, ``/minute`` or ``/hour``; ``off`` turns
it off): each client address may make that many requests to ``/sso/key/generate`` and as many to
``/sso/callback`` in a burst, refilled evenly over the period. A refused request gets 429 with ``Retry-After``.
"""

from __future__ import annotations

import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ._errors import ConfigError

__all__ = ("DEFAULT_RATE_LIMIT", "RateLimit", "TokenBuckets", "parse_rate_limit")

_RATE = re.compile(r"^([1-9][0-9]{0,6})\s*/\s*(s|sec|second|m|min|minute|h|hour)$")
_PERIOD = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


@dataclass(frozen=True)
class RateLimit:
    """``requests`` per ``period`` seconds (also the burst)."""

    requests: int
    period: int

    def __str__(self) -> str:
        return f"{self.requests}/{self.period}s"


#: The default: 60 requests a minute per client address and route.
DEFAULT_RATE_LIMIT = RateLimit(60, 60)


def parse_rate_limit(text: str | None, *, name: str) -> RateLimit | None:
    """Parse ``30/minute`` (``None`` for ``off``; the default when unset).

    Raises:
        ConfigError: naming ``name`` when the value does not parse.
    """
    if text is None or not text.strip():
        return DEFAULT_RATE_LIMIT
    value = text.strip().lower()
    if value in ("off", "0", "none", "false"):
        return None
    match = _RATE.fullmatch(value)
    if match is None:
        raise ConfigError(f"{name}: expected a rate like 30/minute, 5/second, 600/hour or off, got {text!r}")
    return RateLimit(int(match.group(1)), _PERIOD[match.group(2)])


class TokenBuckets:
    """One token bucket per key (a client address), least recently used keys forgotten beyond ``max_keys``.

    Args:
        limit: the rate and burst.
        max_keys: how many addresses to track (a forgotten address starts again with a full bucket).
        clock: monotonic seconds (for tests).
    """

    def __init__(
        self, limit: RateLimit, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self._rate = limit.requests / limit.period
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, when)

    def take(self, key: str) -> int | None:
        """Take one token for ``key``: ``None`` if allowed, else the whole seconds to wait (at least 1)."""
        now = self._clock()
        capacity = float(self.limit.requests)
        tokens, when = self._buckets.pop(key, (capacity, now))
        tokens = min(capacity, tokens + (now - when) * self._rate)
        wait: int | None = None
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = max(1, math.ceil((1.0 - tokens) / self._rate))
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait
