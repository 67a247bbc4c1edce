"""Server-side SVG charts of hook-run latency for the admin console: no script, no inline style.

:func:`latency_chart` draws p50 and p99 of the runs' durations over equal time buckets, :func:`histogram` how
many runs took how long (roughly logarithmic bins). Both return markup ready to embed in a page
(:class:`markupsafe.Markup`): every number is formatted here and every label escaped, and the colours come from
classes of the console's stylesheet (``svg-*``), since the strict Content-Security-Policy refuses ``style``
attributes. Each point and bar has a ``<title>`` (the browser's tooltip) with its exact numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from markupsafe import Markup

__all__ = ("HISTOGRAM_EDGES_MS", "Bucket", "LatencySummary", "histogram", "latency_chart", "percentile", "summarize")

#: The histogram's bin edges in milliseconds; the last bin is everything from 10 s up.
HISTOGRAM_EDGES_MS: tuple[float, ...] = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)

_WIDTH = 640
_HEIGHT = 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 16, 40


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of ``values`` (not empty; any order)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class LatencySummary:
    """Counts and percentiles of a set of durations (milliseconds)."""

    count: int
    p50: float
    p90: float
    p99: float
    max: float


def summarize(durations: Sequence[float]) -> LatencySummary | None:
    """The summary of ``durations``, or ``None`` when there are none."""
    if not durations:
        return None
    return LatencySummary(
        count=len(durations),
        p50=percentile(durations, 50),
        p90=percentile(durations, 90),
        p99=percentile(durations, 99),
        max=max(durations),
    )


@dataclass(frozen=True)
class Bucket:
    """One time bucket of the latency chart."""

    start: datetime
    end: datetime
    count: int
    p50: float
    p99: float


def buckets(samples: Sequence[tuple[datetime, float]], count: int = 24) -> list[Bucket]:
    """``samples`` (start time, duration in ms) in ``count`` equal time buckets from the first to the last
    sample; empty buckets are left out."""
    if not samples:
        return []
    first = min(moment for moment, _ in samples)
    last = max(moment for moment, _ in samples)
    span = (last - first) / count if last > first else timedelta(seconds=1)
    grouped: list[list[float]] = [[] for _ in range(count)]
    for moment, duration in samples:
        index = min(int((moment - first) / span), count - 1) if last > first else 0
        grouped[index].append(duration)
    return [
        Bucket(
            start=first + span * index,
            end=first + span * (index + 1),
            count=len(values),
            p50=percentile(values, 50),
            p99=percentile(values, 99),
        )
        for index, values in enumerate(grouped)
        if values
    ]


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value`` (> 0)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def _ms(value: float) -> str:
    """A duration for a label: ``0.42 ms``, ``12.3 ms``, ``850 ms``, ``1.25 s``."""
    if value >= 1000:
        return f"{value / 1000:.3g} s"
    if value >= 100:
        return f"{value:.0f} ms"
    return f"{value:.3g} ms"


def _num(value: float) -> str:
    """A coordinate: at most one decimal."""
    return f"{value:.1f}".removesuffix(".0")


def _time(moment: datetime, *, with_date: bool) -> str:
    return moment.strftime("%Y-%m-%d %H:%M" if with_date else "%H:%M")


def _svg(title: str, description: str, body: list[str], *, element_id: str) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{escape(element_id)}" class="chart" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}" width="{_WIDTH}" height="{_HEIGHT}" role="img" '
        f'aria-labelledby="{escape(element_id)}-title {escape(element_id)}-desc">'
        f'<title id="{escape(element_id)}-title">{escape(title)}</title>'
        f'<desc id="{escape(element_id)}-desc">{escape(description)}</desc>'
    )
    return Markup(head + "".join(body) + "</svg>")  # noqa: S704 - built here from numbers and escaped text


def _y_axis(top_value: float, plot_height: float, unit_label: bool) -> list[str]:
    parts: list[str] = []
    for tick in range(5):
        value = top_value * tick / 4
        y = _TOP + plot_height - plot_height * tick / 4
        parts.append(
            f'<line class="svg-grid" x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{_num(y)}" y2="{_num(y)}"/>'
            f'<text class="svg-label" x="{_LEFT - 6}" y="{_num(y + 4)}" text-anchor="end">'
            f"{escape(_ms(value) if unit_label else f'{value:g}')}</text>"
        )
    return parts


def latency_chart(samples: Sequence[tuple[datetime, float]], *, bucket_count: int = 24) -> Markup:
    """p50 and p99 of the durations (ms) over ``bucket_count`` equal time buckets, as an SVG line chart;
    empty markup when there are no samples."""
    found = buckets(samples, bucket_count)
    if not found:
        return Markup("")
    plot_width = _WIDTH - _LEFT - _RIGHT
    plot_height = _HEIGHT - _TOP - _BOTTOM
    top_value = _nice_ceiling(max(bucket.p99 for bucket in found))
    first, last = found[0].start, found[-1].end
    total = (last - first).total_seconds() or 1.0

    def x(bucket: Bucket) -> float:
        middle = bucket.start + (bucket.end - bucket.start) / 2
        return _LEFT + plot_width * (middle - first).total_seconds() / total

    def y(value: float) -> float:
        return _TOP + plot_height - plot_height * value / top_value

    with_date = (last - first) >= timedelta(days=1) or first.date() != last.date()
    body = _y_axis(top_value, plot_height, unit_label=True)
    body.append(
        f'<line class="svg-axis" x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{_TOP + plot_height}" '
        f'y2="{_TOP + plot_height}"/>'
        f'<text class="svg-label" x="{_LEFT}" y="{_HEIGHT - 22}" text-anchor="start">'
        f"{escape(_time(first, with_date=with_date))}</text>"
        f'<text class="svg-label" x="{_WIDTH - _RIGHT}" y="{_HEIGHT - 22}" text-anchor="end">'
        f"{escape(_time(last, with_date=with_date))} UTC</text>"
    )
    for name, values in (("p99", [b.p99 for b in found]), ("p50", [b.p50 for b in found])):
        points = " ".join(f"{_num(x(bucket))},{_num(y(value))}" for bucket, value in zip(found, values, strict=True))
        body.append(f'<polyline class="svg-{name}" points="{points}"/>')
    for bucket in found:
        tip = (
            f"{_time(bucket.start, with_date=True)} to {_time(bucket.end, with_date=True)} UTC: "
            f"{bucket.count} run{'s' if bucket.count != 1 else ''}, p50 {_ms(bucket.p50)}, p99 {_ms(bucket.p99)}"
        )
        for name, value in (("p99", bucket.p99), ("p50", bucket.p50)):
            body.append(
                f'<circle class="svg-{name}-point" cx="{_num(x(bucket))}" cy="{_num(y(value))}" r="3">'
                f"<title>{escape(tip)}</title></circle>"
            )
    legend_y = _HEIGHT - 6
    body.append(
        f'<line class="svg-p50" x1="{_LEFT}" x2="{_LEFT + 20}" y1="{legend_y - 4}" y2="{legend_y - 4}"/>'
        f'<text class="svg-label" x="{_LEFT + 24}" y="{legend_y}">p50</text>'
        f'<line class="svg-p99" x1="{_LEFT + 64}" x2="{_LEFT + 84}" y1="{legend_y - 4}" y2="{legend_y - 4}"/>'
        f'<text class="svg-label" x="{_LEFT + 88}" y="{legend_y}">p99</text>'
    )
    runs = sum(bucket.count for bucket in found)
    return _svg(
        "Hook run latency over time",
        f"p50 and p99 of {runs} runs in {len(found)} time buckets from {_time(first, with_date=True)} to "
        f"{_time(last, with_date=True)} UTC",
        body,
        element_id="latency-chart",
    )


def _edge(value: float) -> str:
    return f"{value / 1000:g}k" if value >= 1000 else f"{value:g}"


def _bin_label(index: int) -> str:
    """The label of histogram bin ``index``, in ms: ``<1``, ``1-2``, ..., ``5k-10k``, ``≥10k``."""
    edges = HISTOGRAM_EDGES_MS
    if index == len(edges) - 1:
        return f"≥{_edge(edges[index])}"
    low, high = edges[index], edges[index + 1]
    return f"<{_edge(high)}" if low == 0 else f"{_edge(low)}-{_edge(high)}"


def histogram(durations: Sequence[float]) -> Markup:
    """How many runs took how long (bins of :data:`HISTOGRAM_EDGES_MS`), as an SVG bar chart; empty markup
    when there are no durations. Only the bins from the first to the last one used are drawn."""
    if not durations:
        return Markup("")
    edges = HISTOGRAM_EDGES_MS
    counts = [0] * len(edges)
    for duration in durations:
        index = 0
        for position, edge in enumerate(edges):
            if duration >= edge:
                index = position
        counts[index] += 1
    used = [index for index, count in enumerate(counts) if count]
    shown = list(range(used[0], used[-1] + 1))
    plot_width = _WIDTH - _LEFT - _RIGHT
    plot_height = _HEIGHT - _TOP - _BOTTOM
    top_value = _nice_ceiling(max(counts))
    slot = plot_width / len(shown)
    body = _y_axis(top_value, plot_height, unit_label=False)
    body.append(
        f'<line class="svg-axis" x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{_TOP + plot_height}" '
        f'y2="{_TOP + plot_height}"/>'
    )
    for position, index in enumerate(shown):
        count = counts[index]
        height = plot_height * count / top_value
        left = _LEFT + slot * position + slot * 0.1
        label = _bin_label(index)
        body.append(
            f'<rect class="svg-bar" x="{_num(left)}" y="{_num(_TOP + plot_height - height)}" '
            f'width="{_num(slot * 0.8)}" height="{_num(height)}">'
            f"<title>{escape(f'{label} ms: {count} run' + ('s' if count != 1 else ''))}</title></rect>"
            f'<text class="svg-label" x="{_num(left + slot * 0.4)}" y="{_HEIGHT - 22}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
        if count:
            body.append(
                f'<text class="svg-label" x="{_num(left + slot * 0.4)}" y="{_num(_TOP + plot_height - height - 3)}" '
                f'text-anchor="middle">{count}</text>'
            )
    body.append(
        f'<text class="svg-label" x="{_LEFT + plot_width / 2}" y="{_HEIGHT - 6}" text-anchor="middle">'
        "duration (ms)</text>"
    )
    return _svg(
        "Hook run durations",
        f"a histogram of {len(durations)} run durations",
        body,
        element_id="latency-histogram",
    )
