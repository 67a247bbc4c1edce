"""What ``GET /metrics`` reports (Prometheus text format), and the per-login phase timer behind ``Server-Timing``.

The metrics live in a registry of the app's own (never prometheus_client's global one, so two apps in one
process, as in the tests, do not mix). Counters the runner and the hook service already keep (calls in flight
and waiting, template restarts, reloads) are read when scraped, not copied.

Label values are fixed sets: a login's or a hook call's ``outcome`` is one of the proxy's outcome names, a host
call's ``method`` one of the four the contract defines (anything else a hook sends is ``other``), so a hook
cannot grow the number of series.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ._outcomes import LOGIN_OUTCOMES

if TYPE_CHECKING:
    from ._hook import HookService

__all__ = ("COMPARED_FIELDS", "CONTENT_TYPE", "HOST_METHODS", "LOGIN_OUTCOMES", "Metrics", "PhaseTimer")

#: The ``Content-Type`` of ``/metrics``.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: What a candidate's decision is compared on: the outcome, then the six values (``SSOUserDefinedValues``).
COMPARED_FIELDS = ("outcome", "user_id", "user_email", "user_role", "models", "max_budget", "budget_duration")

#: The host-call methods of the contract; any other name is counted as ``other``.
HOST_METHODS = frozenset({"user_info", "new_user", "add_new_member", "team_info"})

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The proxy's metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.hook_calls = Histogram(
            "hookjail_hook_call_duration_seconds",
            "Duration of hook calls (queueing for a worker slot included), by the runner's outcome",
            ["outcome"],
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.logins = Counter(
            "hookjail_logins",
            "Completed /sso/callback requests, by the login's outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.host_calls = Counter(
            "hookjail_host_calls",
            "Host calls made by hooks, by method and outcome (ok, PermissionError, NotFound, Invalid, Conflict, "
            "HostUnavailable, limit, unfinished)",
            ["method", "outcome"],
            registry=self.registry,
        )
        self.database_errors = Counter(
            "hookjail_database_errors",
            "Database operations that failed: saving a login (login), recording a hook run (record_run), "
            "the health check's ping (ping)",
            ["operation"],
            registry=self.registry,
        )
        self.candidate_runs = Counter(
            "hookjail_candidate_runs",
            "Runs of hook_settings.candidate in the shadow of logins, by whether it decided as the live hook did "
            "(agree, differ) or did not run (skipped: every candidate slot and its queue were busy)",
            ["result"],
            registry=self.registry,
        )
        self.candidate_differences = Counter(
            "hookjail_candidate_differences",
            "Shadow runs whose decision differed from the live hook's, by the field that differed "
            "(outcome, or one of the values' six fields)",
            ["field"],
            registry=self.registry,
        )
        for outcome in LOGIN_OUTCOMES:
            self.logins.labels(outcome)
        for operation in ("login", "record_run", "ping"):
            self.database_errors.labels(operation)
        self._hook = _HookCollector()
        self.registry.register(self._hook)

    def watch(self, hook: HookService | None) -> None:
        """Report this hook service's runner (calls in flight and waiting, restarts, reloads)."""
        self._hook.hook = hook

    def login(self, outcome: str) -> None:
        """Count one finished login."""
        self.logins.labels(outcome if outcome in LOGIN_OUTCOMES else "error").inc()

    def hook_call(self, outcome: str, seconds: float) -> None:
        """Count one hook call (``outcome``: the runner's: ok, denied, timeout, ...)."""
        self.hook_calls.labels(outcome[:32]).observe(seconds)

    def host_call(self, method: str, outcome: str) -> None:
        """Count one host call."""
        self.host_calls.labels(method if method in HOST_METHODS else "other", outcome[:32]).inc()

    def candidate_run(self, diff: Mapping[str, object] | None) -> None:
        """Count one shadow run of the candidate: ``diff`` is its per-field difference (``None``: skipped)."""
        if diff is None:
            self.candidate_runs.labels("skipped").inc()
            return
        self.candidate_runs.labels("differ" if diff else "agree").inc()
        for name in diff:
            self.candidate_differences.labels(name if name in COMPARED_FIELDS else "other").inc()

    def database_error(self, operation: str) -> None:
        """Count one failed database operation."""
        self.database_errors.labels(operation).inc()

    def render(self) -> bytes:
        """The metrics in Prometheus' text exposition format."""
        return generate_latest(self.registry)


class _HookCollector(Collector):
    """Reads the runner's and the hook service's own counters at scrape time."""

    def __init__(self) -> None:
        self.hook: HookService | None = None

    def describe(self) -> Iterator[Metric]:
        return iter(())  # reported families vary with whether a hook is configured

    def collect(self) -> Iterator[Metric]:
        hook = self.hook
        if hook is None:
            return
        runner = hook.runner
        yield GaugeMetricFamily(
            "hookjail_hook_calls_in_flight", "Hook calls holding a worker slot now", value=runner.in_flight
        )
        yield GaugeMetricFamily(
            "hookjail_hook_calls_waiting", "Hook calls waiting for a worker slot now", value=runner.waiting
        )
        yield GaugeMetricFamily(
            "hookjail_hook_slots", "Worker slots (hook_settings.max_concurrency)", value=runner.limits.max_concurrency
        )
        yield GaugeMetricFamily(
            "hookjail_hook_healthy", "1 while the worker template runs", value=1 if runner.healthy else 0
        )
        yield CounterMetricFamily(
            "hookjail_hook_template_restarts",
            "Worker templates started again after the running one died",
            value=runner.restarts,
        )
        reloads = CounterMetricFamily(
            "hookjail_hook_reloads",
            "Re-imports of the hook (file changed, or SIGHUP), by result; a failed one keeps the last good version",
            labels=["result"],
        )
        reloads.add_metric(["ok"], hook.reloads)
        reloads.add_metric(["failed"], hook.reload_failures)
        yield reloads


class PhaseTimer:
    """Times the phases of one ``/sso/callback`` for its ``Server-Timing`` header.

    ``with timer.phase("db"): ...`` adds the block's wall time to the phase (a phase may run several times).
    """

    PHASES = ("idp", "hook", "db")

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.phases: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.phases[name] = self.phases.get(name, 0.0) + seconds

    def phase(self, name: str) -> _Phase:
        return _Phase(self, name)

    def header(self) -> str:
        """``idp;dur=…, hook;dur=…, db;dur=…, total;dur=…`` in milliseconds (phases that did not run: 0)."""
        total = time.perf_counter() - self.started
        parts = [f"{name};dur={self.phases.get(name, 0.0) * 1000:.1f}" for name in self.PHASES]
        return ", ".join([*parts, f"total;dur={total * 1000:.1f}"])


class _Phase:
    __slots__ = ("name", "started", "timer")

    def __init__(self, timer: PhaseTimer, name: str) -> None:
        self.timer = timer
        self.name = name
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *exc_info: object) -> None:
        self.timer.add(self.name, time.perf_counter() - self.started)
