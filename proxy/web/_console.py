"""The admin console's pages for ``proxy_admin`` and ``proxy_admin_viewer`` (anyone else: signed out, a redirect
to ``/ui/``; signed in with another role, 403):

- ``/ui/hook``: the loaded hook (file, SHA-256, when it was loaded, the import mode), its sandbox layers,
  limits, permissions and policy, and its reloads (how many, the last one's error).
- ``/ui/runs``: recent hook runs, newest first, filtered by ``outcome``, ``user`` (user id or IdP subject),
  ``since`` / ``until`` (ISO 8601 times, UTC unless they say otherwise; ``since`` may also be a span back from
  now: ``30m``, ``24h``, ``7d``) and ``limit`` (1-200), with a latency chart (p50 and p99 over time, and a
  histogram) of the runs the filters match, drawn server-side as SVG (:mod:`proxy.web._svg`). A bad filter is
  a 422 page naming it.
- ``/ui/runs/{run_id}``: one run: what the hook saw as far as it is recorded (subject, provider, email; the
  OpenID itself is not stored), the user it named, outcome and HTTP status, error, what the hook printed, its
  host calls, the duration, the values it granted, the hook version that served it and the candidate's run in
  its shadow (outcome, values, the fields it decided otherwise). The run id on a failed login's error page
  links here for an admin.
- ``/ui/users``: users (role, models, budget, teams, last login) and teams (models, budget, members), paged.

The other console pages: "Try the hook" (:mod:`._try`), safe rollout (:mod:`._console_rollout`), ``/docs``
(:mod:`._docs`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .._db import HookRun, as_utc, utcnow
from .._hook import HookService
from .._outcomes import RUN_OUTCOMES
from .._text import one_line
from ._console_pages import hook_text, is_plain, message, pretty, render
from ._console_rollout import run_rollout
from ._svg import histogram, latency_chart, summarize
from ._web import Admin, DatabaseDep, HookDep, WebDep

__all__ = ("OUTCOMES", "RunFilter", "parse_run_filter", "router")

#: Every outcome a hook run is recorded with.
OUTCOMES = RUN_OUTCOMES
#: The most runs the run list shows, and the most the latency chart draws.
MAX_RUNS_SHOWN = 200
MAX_RUNS_CHARTED = 5000
USERS_PER_PAGE = 50
TEAMS_PER_PAGE = 50
MAX_PAGE = 1_000_000
_SPAN = re.compile(r"^([1-9][0-9]{0,5})([mhd])$")
_SPAN_UNIT = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}

router = APIRouter(include_in_schema=False)


# --- filters ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFilter:
    """The run list's filters, validated."""

    outcome: str | None = None
    user: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50

    def query(self) -> dict[str, Any]:
        """The filters as :meth:`proxy._db.Database.search_runs` takes them."""
        return {"outcome": self.outcome, "user_id": self.user, "since": self.since, "until": self.until}


def _moment(text: str, now: datetime, *, span_allowed: bool) -> datetime:
    """An ISO 8601 time (UTC unless it names an offset), or with ``span_allowed`` a span back from ``now``."""
    span = _SPAN.match(text)
    if span and span_allowed:
        return now - int(span.group(1)) * _SPAN_UNIT[span.group(2)]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        hint = ", or a span back from now like 30m, 24h, 7d" if span_allowed else ""
        raise ValueError(f"not a time: give an ISO 8601 time like 2025-01-31T09:00 (UTC){hint}") from None
    return as_utc(moment).astimezone(UTC)  # OverflowError past year 9999 in UTC


def parse_run_filter(params: Mapping[str, str], now: datetime | None = None) -> tuple[RunFilter, list[str]]:
    """The run list's filters from the query string, and what is wrong with them (one message per field)."""
    now = now or utcnow()
    errors: list[str] = []
    values: dict[str, Any] = {}
    for name, parse in _FILTERS:
        text = params.get(name, "").strip()
        if not text:
            continue
        try:
            values[name] = parse(text, now)
        except ValueError as exc:
            errors.append(f"{name}: {exc}")
    if "since" in values and "until" in values and values["since"] >= values["until"]:
        errors.append("until: must be later than since")
    return RunFilter(**values), errors


def _outcome(text: str, _now: datetime) -> str:
    if text not in OUTCOMES:
        raise ValueError(f"must be one of {', '.join(OUTCOMES)}")
    return text


def _user(text: str, _now: datetime) -> str:
    if len(text) > 256:
        raise ValueError("at most 256 characters")
    if not is_plain(text):
        raise ValueError("must not contain control characters or bidirectional-text controls")
    return text


def _since(text: str, now: datetime) -> datetime:
    return _time(text, now, span_allowed=True)


def _until(text: str, now: datetime) -> datetime:
    return _time(text, now, span_allowed=False)


def _time(text: str, now: datetime, *, span_allowed: bool) -> datetime:
    if len(text) > 64 or not is_plain(text):
        raise ValueError("not a time")
    try:
        return _moment(text, now, span_allowed=span_allowed)
    except OverflowError:
        raise ValueError("out of range") from None


def _limit(text: str, _now: datetime) -> int:
    if text.isascii() and text.isdigit() and len(text) <= 3 and 1 <= int(text) <= MAX_RUNS_SHOWN:
        return int(text)
    raise ValueError(f"a whole number from 1 to {MAX_RUNS_SHOWN}")


#: The filters, in the order their errors are listed.
_FILTERS: tuple[tuple[str, Callable[[str, datetime], Any]], ...] = (
    ("outcome", _outcome),
    ("user", _user),
    ("since", _since),
    ("until", _until),
    ("limit", _limit),
)


def _page_number(params: Mapping[str, str], name: str) -> int | None:
    """A page number from the query string (default 1), or ``None`` when it is not one."""
    text = params.get(name, "").strip() or "1"
    if text.isascii() and text.isdigit() and len(text) <= 7 and 1 <= int(text) <= MAX_PAGE:
        return int(text)
    return None


# --- shown values ----------------------------------------------------------------------------------------------


def _limits(hook: HookService) -> list[tuple[str, str]]:
    shown: list[tuple[str, str]] = []
    for item in dataclasses.fields(hook.limits):
        value = getattr(hook.limits, item.name)
        shown.append((item.name, "—" if value is None else str(value)))
    return shown


def _sandbox(hook: HookService) -> list[tuple[str, str]]:
    sandbox = hook.sandbox
    return [
        ("network", "allowed (the host's network)" if sandbox.network else "none (an empty network namespace)"),
        ("mode", "strict" if sandbox.strict else "permissive (a missing layer only warns)"),
        ("worker_uid", "—" if sandbox.worker_uid is None else str(sandbox.worker_uid)),
        ("writable /tmp", "yes" if sandbox.writable_tmp else "no"),
        ("readable paths", ", ".join(sandbox.read_paths) or "—"),
        # the names only: a value may be a secret resolved from os.environ/NAME
        ("environment", ", ".join(sorted(sandbox.env)) or "—"),
    ]


def _host_calls(run: HookRun) -> tuple[list[dict[str, Any]], int]:
    """The recorded host calls, with their arguments as JSON, and how many more were not recorded."""
    calls: list[dict[str, Any]] = []
    unrecorded = 0
    for call in run.host_calls or []:
        if "unrecorded" in call:
            unrecorded = int(call.get("unrecorded") or 0)
            continue
        calls.append(
            {
                "method": str(call.get("method", "?")),
                "args": pretty(call.get("args")),
                "outcome": str(call.get("outcome", "?")),
                "error": hook_text(str(call["error"])) if call.get("error") else "",
                "ms": call.get("ms"),
            }
        )
    return calls, unrecorded


# --- the pages -------------------------------------------------------------------------------------------------


@router.get("/ui/hook")
async def hook_page(request: Request, user: Admin, web: WebDep, hook: HookDep) -> Response:
    config = web.settings.config
    context: dict[str, Any] = {"section": "hook", "config": config, "hook": hook}
    if hook is not None:
        health = hook.health()
        context |= {
            "source": hook.describe(),
            "health": health,
            "layers": hook.runner.report_layers(),
            "limits": _limits(hook),
            "sandbox": _sandbox(hook),
            "settings": config.hook_settings,
            "last_reload_error": hook_text(health["last_reload_error"]),
        }
    return render(request, "hook.html", user, **context)


@router.get("/ui/runs")
async def runs_page(request: Request, user: Admin, database: DatabaseDep) -> Response:
    params = request.query_params
    filters, errors = parse_run_filter(params)
    form = {name: params.get(name, "")[:256] for name in ("outcome", "user", "since", "until", "limit")}
    page: dict[str, Any] = {"section": "runs", "form": form, "outcomes": OUTCOMES}
    if errors:
        return render(request, "runs.html", user, status=422, **page, errors=errors, runs=[])
    runs = await database.search_runs(filters.limit, **filters.query())
    timings = await database.run_timings(MAX_RUNS_CHARTED, **filters.query())
    durations = [duration for _, duration in timings]
    return render(
        request,
        "runs.html",
        user,
        **page,
        errors=[],
        runs=runs,
        filters=filters,
        summary=summarize(durations),
        chart=latency_chart(timings),
        histogram=histogram(durations),
        charted=len(timings),
        max_charted=MAX_RUNS_CHARTED,
    )


@router.get("/ui/runs/{run_id}")
async def run_page(request: Request, run_id: str, user: Admin, database: DatabaseDep) -> Response:
    run = None if len(run_id) > 64 or not is_plain(run_id) else await database.get_run(run_id)
    if run is None:
        return message(request, user, 404, "No such run", f"There is no hook run with the id {one_line(run_id, 80)}.")
    extra = dict(run.extra or {})
    traceback = extra.pop("traceback", None)
    email = extra.pop("email", None)
    calls, unrecorded = _host_calls(run)
    return render(
        request,
        "run.html",
        user,
        section="runs",
        run=run,
        email=email if isinstance(email, str) else None,
        traceback=hook_text(traceback) if isinstance(traceback, str) else "",
        extra=pretty(extra) if extra else "",
        error=hook_text(run.error),
        stdout=hook_text(run.stdout),
        stderr=hook_text(run.stderr),
        calls=calls,
        unrecorded=unrecorded,
        named=await database.get_user(run.user_id) if run.user_id else None,
        **await run_rollout(database, run),
    )


@router.get("/ui/users")
async def users_page(request: Request, user: Admin, database: DatabaseDep) -> Response:
    page = _page_number(request.query_params, "page")
    teams_page = _page_number(request.query_params, "teams_page")
    if page is None or teams_page is None:
        text = f"page and teams_page: whole numbers from 1 to {MAX_PAGE:,}."
        return message(request, user, 422, "Bad page number", text)
    async with database.reader() as rows:
        users, total = await rows.page_of_users(page=page, page_size=USERS_PER_PAGE)
        teams_of = await rows.team_ids_of_users([u.id for u in users])
        teams, teams_total = await rows.page_of_teams(page=teams_page, page_size=TEAMS_PER_PAGE)
    return render(
        request,
        "users.html",
        user,
        section="users",
        users=users,
        teams_of=teams_of,
        total=total,
        page=page,
        pages=max(1, math.ceil(total / USERS_PER_PAGE)),
        teams=teams,
        teams_total=teams_total,
        teams_page=teams_page,
        teams_pages=max(1, math.ceil(teams_total / TEAMS_PER_PAGE)),
    )
