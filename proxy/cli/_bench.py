"""``hookjail bench``: run the hook through the sandbox many times and suggest a ``--hook-timeout``.

Every call goes the way a login's does — a fresh confined child from the worker template, the config's
``hook_settings`` (limits, sandbox, env, files), validation and policy — with the same OpenID each time and,
as in ``hookjail check``, host calls answered by an empty in-memory host (a fresh one per call, so each call
is a first login). Latency is measured around the runner call, so it includes waiting for a worker slot
when more callers than ``max_concurrency`` are in flight, exactly as a login would wait.

The suggested timeout is ``max(p99 * safety factor, floor)``, rounded up: p99 rather than the maximum
because one outlier in a few hundred calls says little; the factor leaves room for what the sample did not
show (a busier machine, a slower network behind a host call, a cold cache); the floor keeps a very fast hook
from getting a timeout so tight that an unlucky scheduling delay fails a login.
"""

from __future__ import annotations

import asyncio
import math
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner import HookDenied, HookError, HookRunner

from .._config import ProxyConfig
from .._hook import runner_options
from .._outcomes import BENCH_OUTCOMES
from .._text import ERROR_LIMIT, clip, one_line
from ._check import SAMPLE_OPENID, empty_host, format_layers, host_description, judge
from ._term import bar, can_encode

__all__ = (
    "OUTCOMES",
    "BenchOptions",
    "BenchReport",
    "Bucket",
    "Suggestion",
    "histogram",
    "percentile",
    "round_up_timeout",
    "run_bench",
    "suggest_timeout",
)

#: Every outcome a call can have, in the order reports list them (``--json`` always has all of them).
OUTCOMES = BENCH_OUTCOMES


@dataclass(frozen=True, kw_only=True)
class BenchOptions:
    """How to bench.

    Args:
        calls: how many calls in all.
        concurrency: callers running at once (each calls again as soon as its call returns).
        safety_factor: the suggested timeout is p99 times this (at least ``floor``).
        floor: the smallest timeout suggested, in seconds.
        host: answer host calls from an empty in-memory host (``False``: refuse them).
        allow_weak_sandbox: run even if a confinement layer is unavailable.
        bins: rows of the latency histogram.
    """

    calls: int = 500
    concurrency: int = 4
    safety_factor: float = 3.0
    floor: float = 1.0
    host: bool = True
    allow_weak_sandbox: bool = False
    bins: int = 12


@dataclass(frozen=True)
class Bucket:
    """One histogram row: calls that took more than ``low_ms`` and at most ``high_ms`` (the first row includes
    its low edge)."""

    low_ms: float
    high_ms: float
    count: int


@dataclass(frozen=True)
class Suggestion:
    """The suggested ``--hook-timeout`` and why."""

    seconds: float
    p99_ms: float
    safety_factor: float
    floor: float
    reasoning: list[str]


@dataclass
class BenchReport:
    """What ``hookjail bench`` measured (``--json`` prints :meth:`as_dict`)."""

    hook: str
    config: str
    calls: int
    concurrency: int
    max_concurrency: int
    current_timeout: float
    host: str
    layers: dict[str, bool | str] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    histogram: list[Bucket] = field(default_factory=list)
    wall_seconds: float = 0.0
    suggestion: Suggestion | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the hook started and every call was ok."""
        return self.error is None and self.outcomes.get("ok", 0) == self.calls

    def latency(self) -> dict[str, float] | None:
        """min, p50, p90, p99, max and mean of the per-call latency, in milliseconds."""
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return None
        return {
            "min": ordered[0],
            "p50": percentile(ordered, 50),
            "p90": percentile(ordered, 90),
            "p99": percentile(ordered, 99),
            "max": ordered[-1],
            "mean": sum(ordered) / len(ordered),
        }

    def as_dict(self) -> dict[str, Any]:
        """The report as the JSON object ``--json`` prints."""
        suggestion = self.suggestion
        return {
            "hook": self.hook,
            "config": self.config,
            "calls": self.calls,
            "concurrency": self.concurrency,
            "max_concurrency": self.max_concurrency,
            "outcomes": self.outcomes,
            "errors": self.errors,
            "latency_ms": self.latency(),
            "histogram": [{"low_ms": b.low_ms, "high_ms": b.high_ms, "count": b.count} for b in self.histogram],
            "wall_seconds": self.wall_seconds,
            "calls_per_second": self.calls / self.wall_seconds if self.wall_seconds > 0 else None,
            "current_timeout": self.current_timeout,
            "suggested_timeout": None
            if suggestion is None
            else {
                "seconds": suggestion.seconds,
                "p99_ms": suggestion.p99_ms,
                "safety_factor": suggestion.safety_factor,
                "floor_seconds": suggestion.floor,
                "reasoning": " ".join(suggestion.reasoning),
            },
            "host": self.host,
            "layers": self.layers,
            "error": self.error,
        }

    def as_text(self, *, unicode: bool = True, width: int = 40) -> str:
        """The report for people: figures, a histogram drawn with text bars, and the suggestion."""
        lines = [f"hookjail bench: {self.hook} ({self.config})"]
        if self.error is not None:
            lines.append(f"error: {one_line(self.error)}")  # may carry the hook's import error: escaped
            return "\n".join(lines)
        rate = f", {self.calls / self.wall_seconds:.0f} calls/s" if self.wall_seconds > 0 else ""
        lines += [
            f"  {self.calls} calls, {self.concurrency} concurrent callers "
            f"(hook_settings.max_concurrency: {self.max_concurrency}), {self.wall_seconds:.2f} s{rate}",
            *(
                [
                    f"  {self.concurrency} callers share {self.max_concurrency} worker slots: calls wait for a "
                    "free slot, as logins would at this load"
                ]
                if self.concurrency > self.max_concurrency
                else []
            ),
            f"  host calls: {self.host}",
            "  sandbox layers:",
            *["  " + line for line in format_layers(self.layers)],
            "",
            "outcomes",
        ]
        shown = [name for name in self.outcomes if self.outcomes[name] or name == "ok"]
        name_width = max(len(name) for name in shown)
        count_width = len(str(self.calls))
        for name in shown:
            count = self.outcomes[name]
            line = f"  {name:<{name_width}}  {count:>{count_width}}  {count / max(self.calls, 1):6.1%}"
            if name in self.errors:
                line += f"   first: {_first_line(self.errors[name])}"
            lines.append(line)
        latency = self.latency()
        if latency is not None:
            lines += [
                "",
                "latency per call (ms; waiting for a free worker slot included)",
                "  " + "  ".join(f"{key} {_ms(value)}" for key, value in latency.items()),
                "",
                "histogram (ms)",
                *_draw_histogram(self.histogram, unicode=unicode, width=width),
            ]
        if self.suggestion is not None:
            seconds = f"{self.suggestion.seconds:g}"
            lines += [
                "",
                f"suggested --hook-timeout: {seconds}   (or in config.yaml: hook_settings.timeout: {seconds})",
            ]
            for sentence in self.suggestion.reasoning:
                lines += textwrap.wrap(sentence, 110, initial_indent="  ", subsequent_indent="    ")
        return "\n".join(lines)


def percentile(ordered: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of sorted values (always one of the values)."""
    if not ordered:
        raise ValueError("percentile of no values")
    rank = max(math.ceil(p / 100 * len(ordered)), 1)
    return ordered[min(rank, len(ordered)) - 1]


def histogram(values: Sequence[float], bins: int = 12) -> list[Bucket]:
    """Count ``values`` into ``bins`` rows between their min and max.

    The rows are spaced geometrically when the values span more than a factor of 4 (latency has a long tail:
    with equal widths one slow call would squeeze every other call into the first row), linearly otherwise.
    """
    if not values:
        return []
    low, high = min(values), max(values)
    if high <= low:
        return [Bucket(low, high, len(values))]
    if low > 0 and high / low > 4:
        ratio = (high / low) ** (1 / bins)
        edges = [low * ratio**i for i in range(bins + 1)]
    else:
        step = (high - low) / bins
        edges = [low + step * i for i in range(bins + 1)]
    edges[-1] = high
    counts = [0] * bins
    for value in values:
        index = next((i for i in range(bins) if value <= edges[i + 1]), bins - 1)
        counts[index] += 1
    return [Bucket(edges[i], edges[i + 1], counts[i]) for i in range(bins)]


def round_up_timeout(seconds: float) -> float:
    """Round a timeout up to a step people would write: 0.1 s below 1 s, 0.5 s below 10 s, 1 s below 60 s,
    then 5 s."""
    step = next((step for limit, step in ((1.0, 0.1), (10.0, 0.5), (60.0, 1.0)) if seconds <= limit), 5.0)
    # the small tolerance keeps 1.5000000001 (float noise) from becoming 2.0
    return round(math.ceil(seconds / step - 1e-9) * step, 3)


def suggest_timeout(
    p99_seconds: float,
    *,
    safety_factor: float,
    floor: float,
    current: float,
    calls: int,
    timeouts: int = 0,
) -> Suggestion:
    """The suggested ``--hook-timeout``: ``max(p99 * safety_factor, floor)`` rounded up, with the reasoning."""
    scaled = p99_seconds * safety_factor
    chosen = round_up_timeout(max(scaled, floor))
    reasoning = [
        f"p99 of {calls} calls is {_seconds(p99_seconds)}; "
        f"times the safety factor {safety_factor:g} = {_seconds(scaled)}"
        + (
            f", below the floor of {_seconds(floor)}, so the floor: {_seconds(chosen)}."
            if scaled < floor
            else f", rounded up: {_seconds(chosen)}."
        ),
        "The factor covers what this sample did not show (a busier machine, slow host calls or network); "
        "the floor keeps a fast hook from failing logins on an unlucky scheduling delay.",
    ]
    if timeouts:
        reasoning.append(
            f"Warning: {timeouts} of {calls} calls hit the current timeout of {_seconds(current)}, so the hook's "
            "real tail is longer than measured: make the hook faster, or bench again with a larger "
            "--hook-timeout."
        )
    elif current < chosen:
        reasoning.append(f"The current timeout ({_seconds(current)}) is shorter: logins in the slow tail may time out.")
    elif current > chosen * 3:
        reasoning.append(
            f"The current timeout ({_seconds(current)}) is generous: a hanging hook holds a worker slot that long."
        )
    return Suggestion(
        seconds=chosen,
        p99_ms=p99_seconds * 1000,
        safety_factor=safety_factor,
        floor=floor,
        reasoning=reasoning,
    )


@dataclass(frozen=True)
class _Sample:
    outcome: str
    seconds: float
    error: str | None


async def run_bench(
    config: ProxyConfig,
    openid: dict[str, Any] | None,
    options: BenchOptions,
    on_call: Callable[[str], None] | None = None,
) -> BenchReport:
    """Start the hook's worker once, then call it ``options.calls`` times from ``options.concurrency`` callers.

    Args:
        config: the validated configuration (its ``hook_settings`` apply).
        openid: the user passed on every call (default: the sample user of ``hookjail check``).
        options: how many calls, how many at once, and the suggestion's parameters.
        on_call: called with each call's outcome as it finishes (the CLI's progress bar).
    """
    settings = config.hook_settings
    report = BenchReport(
        hook=config.hook.dotted if config.hook is not None else "(no hook)",
        config=str(config.path),
        calls=options.calls,
        concurrency=options.concurrency,
        max_concurrency=settings.max_concurrency,
        current_timeout=settings.timeout,
        host=host_description(config, host=options.host),
        outcomes=dict.fromkeys(OUTCOMES, 0),
    )
    if config.hook is None:
        report.error = "general_settings.custom_sso is not set: there is no hook to bench"
        return report
    argument = openid if openid is not None else SAMPLE_OPENID
    spec, limits, sandbox = runner_options(config, allow_weak_sandbox=options.allow_weak_sandbox)
    samples: list[_Sample] = []

    async def one(runner: HookRunner) -> _Sample:
        started = time.perf_counter()
        try:
            result = await runner.call(argument, host=empty_host(config) if options.host else None)
        except HookError as exc:
            # a denial (``raise Deny(reason)``) is counted as "denied", with the reason a login would show
            error = exc.reason if isinstance(exc, HookDenied) else exc.message
            return _Sample(exc.outcome, time.perf_counter() - started, clip(error, ERROR_LIMIT))
        elapsed = time.perf_counter() - started
        verdict = judge(result.value, config)
        return _Sample(verdict.outcome, elapsed, verdict.error)

    try:
        async with HookRunner(spec, limits, sandbox) as runner:
            report.layers = runner.report_layers()
            turns = iter(range(options.calls))

            async def caller() -> None:
                for _ in turns:  # shared by every caller: each takes the next turn when its call returns
                    sample = await one(runner)
                    samples.append(sample)
                    if on_call is not None:
                        on_call(sample.outcome)

            started = time.perf_counter()
            async with asyncio.TaskGroup() as group:
                for _ in range(min(options.concurrency, options.calls)):
                    group.create_task(caller())
            report.wall_seconds = time.perf_counter() - started
    except HookError as exc:
        hint = " (--allow-weak-sandbox accepts a weaker sandbox)" if exc.outcome == "sandbox" else ""
        report.error = f"{exc.outcome}: {clip(exc.message, ERROR_LIMIT)}{hint}"
        return report

    counts = Counter(sample.outcome for sample in samples)
    report.outcomes = {name: counts.get(name, 0) for name in OUTCOMES} | {
        name: count for name, count in counts.items() if name not in OUTCOMES
    }
    for sample in samples:
        if sample.outcome != "ok" and sample.error and sample.outcome not in report.errors:
            report.errors[sample.outcome] = sample.error
    report.latencies_ms = [sample.seconds * 1000 for sample in samples]
    report.histogram = histogram(report.latencies_ms, options.bins)
    latency = report.latency()
    if latency is not None:
        report.suggestion = suggest_timeout(
            latency["p99"] / 1000,
            safety_factor=options.safety_factor,
            floor=options.floor,
            current=settings.timeout,
            calls=len(samples),
            timeouts=counts.get("timeout", 0),
        )
    return report


def _draw_histogram(buckets: Sequence[Bucket], *, unicode: bool, width: int) -> list[str]:
    if not buckets:
        return []
    most = max(bucket.count for bucket in buckets) or 1
    lows = [_ms(bucket.low_ms) for bucket in buckets]
    highs = [_ms(bucket.high_ms) for bucket in buckets]
    low_width, high_width = max(map(len, lows)), max(map(len, highs))
    edge = "│" if unicode else "|"
    return [
        f"  {low:>{low_width}} - {high:>{high_width}} {edge}{bar(b.count / most, width, unicode=unicode):<{width}}"
        f"{edge} {b.count}"
        for low, high, b in zip(lows, highs, buckets, strict=True)
    ]


def _ms(value: float) -> str:
    """Milliseconds with three significant digits (at most one decimal place past 100)."""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.3g} ms"
    return f"{value:g} s"


def _first_line(text: str, limit: int = 100) -> str:
    """A hook's error message on one short line: whitespace runs become one space, then every control
    character left (ESC, bidi overrides, ...) is escaped."""
    line = " ".join(text.split())
    if len(line) > limit:
        line = line[: limit - 1] + "…"
    return one_line(line, 6 * limit)


def unicode_ok(stream: Any) -> bool:
    """Whether the report's block characters and dashes print on ``stream``."""
    return can_encode(stream, "█▉│…")
