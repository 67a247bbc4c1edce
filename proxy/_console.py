"""The admin console: server-rendered pages for ``proxy_admin`` and ``proxy_admin_viewer``, and offline API docs.

Pages (no script at all; the strict Content-Security-Policy of :mod:`proxy._headers` applies; their stylesheet
is ``/static/console.css``):

- ``/ui/hook``: the loaded hook (file, SHA-256, when it was loaded, the import mode), its sandbox layers,
  limits, permissions and policy, and its reloads (how many, the last one's error).
- ``/ui/runs``: recent hook runs, newest first, filtered by ``outcome``, ``user`` (user id or IdP subject),
  ``since`` / ``until`` (ISO 8601 times, UTC unless they say otherwise; ``since`` may also be a span back from
  now: ``30m``, ``24h``, ``7d``) and ``limit`` (1-200), with a latency chart (p50 and p99 over time, and a
  histogram) of the runs the filters match, drawn server-side as SVG (:mod:`proxy._svg`). A bad filter is a
  422 page naming it.
- ``/ui/runs/{run_id}``: one run: what the hook saw as far as it is recorded (subject, provider, email; the
  OpenID itself is not stored), the user it named, outcome and HTTP status, error, what the hook printed, its
  host calls, the duration, the values it granted, the hook version that served it and the candidate's run in
  its shadow (outcome, values, the fields it decided otherwise). The run id on a failed login's error page
  links here for an admin.
- ``/ui/candidate``, ``/ui/versions`` and ``/ui/versions/diff``: safe rollout (:mod:`proxy._console_rollout`).
- ``/ui/users``: users (role, models, budget, teams, last login) and teams (models, budget, members), paged.
- ``/ui/hook/try``: "Try the hook": a dry run of the configured hook on an OpenID typed in (JSON), through the
  sandbox like a login, judged as a login judges it (validation, identity overrides, policy, admin-only, the
  identity binding), showing the outcome, the values, the error and traceback, the output and the host calls.
  **It writes nothing**: the host calls read the database through a :class:`~proxy._host.LoginHost` whose
  staged writes are shown and dropped (only a login's ``complete_login`` commits them), no user, session or
  hook run is written, and the run is only logged. Viewers may run it too (it changes nothing; any IdP user
  runs the hook by logging in). The POST is refused (403) unless it comes from the proxy's own pages
  (``Sec-Fetch-Site``/``Origin``, as ``/ui/logout``).

Anyone else: signed out, a redirect to ``/ui/``; signed in with another role, 403.

``/docs`` is Swagger UI served from the proxy (PyPI ``swagger-ui-bundle``: ``/static/swagger-ui/``), so it works
without internet access; its one inline script is allowed by its hash in the page's own Content-Security-Policy
(no CDN, no ``'unsafe-inline'`` script).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import math
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import swagger_ui_bundle  # type: ignore[import-untyped]
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi_sso.sso.base import OpenID
from pydantic import ConfigDict, ValidationError

from sdk.testing import SAMPLE_OPENID

from ._config import ProxyConfig
from ._console_rollout import rollout_routes, run_rollout
from ._db import Database, HookRun, User, as_utc, utcnow
from ._hook import HookService
from ._login import ADMIN_ROLES, LoginService, _with_identity
from ._outcomes import RUN_OUTCOMES
from ._pages import Pages
from ._svg import histogram, latency_chart, summarize
from ._text import ERROR_LIMIT, STREAM_LIMIT, TRACEBACK_LIMIT, clip, jsonable, one_line, printable
from .rollout import evaluate

__all__ = ("OUTCOMES", "RunFilter", "console_router", "parse_run_filter")

logger = logging.getLogger("hookjail.console")

STATIC = Path(__file__).with_name("static")
SWAGGER_UI = Path(swagger_ui_bundle.swagger_ui_path)

#: Every outcome a hook run is recorded with.
OUTCOMES = RUN_OUTCOMES
#: The most runs the run list shows, and the most the latency chart draws.
MAX_RUNS_SHOWN = 200
MAX_RUNS_CHARTED = 5000
USERS_PER_PAGE = 50
TEAMS_PER_PAGE = 50
MAX_PAGE = 1_000_000
#: The largest OpenID (JSON) the dry run takes.
MAX_OPENID_CHARS = 16 * 1024

_STATIC_FILES: dict[str, tuple[Path, str]] = {
    "console.css": (STATIC / "console.css", "text/css; charset=utf-8"),
    "swagger-ui/swagger-ui-bundle.js": (SWAGGER_UI / "swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    "swagger-ui/swagger-ui.css": (SWAGGER_UI / "swagger-ui.css", "text/css; charset=utf-8"),
    "swagger-ui/favicon-32x32.png": (SWAGGER_UI / "favicon-32x32.png", "image/png"),
}
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)
# C0 and C1 controls and the bidirectional-text controls: refused in filters (as the management API does)
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SPAN = re.compile(r"^([1-9][0-9]{0,5})([mhd])$")
_SPAN_UNIT = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}


class DryRunOpenID(OpenID):
    """What the dry run takes: fastapi-sso's ``OpenID`` plus the claims hookjail's generic provider adds (as a
    login passes them to the hook); any other key is refused, so a typo is not silently dropped."""

    model_config = ConfigDict(extra="forbid")

    email_verified: bool | None = None
    subject: str | None = None
    issuer: str | None = None


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


def _moment(name: str, text: str, now: datetime, *, span_allowed: bool) -> datetime:
    """An ISO 8601 time (UTC unless it names an offset), or with ``span_allowed`` a span back from ``now``."""
    span = _SPAN.match(text)
    if span and span_allowed:
        return now - int(span.group(1)) * _SPAN_UNIT[span.group(2)]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        hint = ", or a span back from now like 30m, 24h, 7d" if span_allowed else ""
        raise ValueError(f"{name}: not a time: give an ISO 8601 time like 2025-01-31T09:00 (UTC){hint}") from None
    return as_utc(moment).astimezone(UTC)  # OverflowError past year 9999 in UTC


def parse_run_filter(params: Mapping[str, str], now: datetime | None = None) -> tuple[RunFilter, list[str]]:
    """The run list's filters from the query string, and what is wrong with them (one message per field)."""
    now = now or utcnow()
    errors: list[str] = []
    values: dict[str, Any] = {}
    outcome = params.get("outcome", "").strip()
    if outcome:
        if outcome in OUTCOMES:
            values["outcome"] = outcome
        else:
            errors.append(f"outcome: must be one of {', '.join(OUTCOMES)}")
    user = params.get("user", "").strip()
    if user:
        if len(user) > 256:
            errors.append("user: at most 256 characters")
        elif _UNSAFE.search(user):
            errors.append("user: must not contain control characters or bidirectional-text controls")
        else:
            values["user"] = user
    for name in ("since", "until"):
        text = params.get(name, "").strip()
        if not text:
            continue
        if len(text) > 64 or _UNSAFE.search(text):
            errors.append(f"{name}: not a time")
            continue
        try:
            values[name] = _moment(name, text, now, span_allowed=name == "since")
        except (ValueError, OverflowError) as exc:
            errors.append(str(exc) if isinstance(exc, ValueError) else f"{name}: out of range")
    if "since" in values and "until" in values and values["since"] >= values["until"]:
        errors.append("until: must be later than since")
    limit = params.get("limit", "").strip()
    if limit:
        if limit.isascii() and limit.isdigit() and len(limit) <= 3 and 1 <= int(limit) <= MAX_RUNS_SHOWN:
            values["limit"] = int(limit)
        else:
            errors.append(f"limit: a whole number from 1 to {MAX_RUNS_SHOWN}")
    return RunFilter(**values), errors


def _page_number(params: Mapping[str, str], name: str) -> int | None:
    """A page number from the query string (default 1), or ``None`` when it is not one."""
    text = params.get(name, "").strip() or "1"
    if text.isascii() and text.isdigit() and len(text) <= 7 and 1 <= int(text) <= MAX_PAGE:
        return int(text)
    return None


# --- shown values ----------------------------------------------------------------------------------------------


def when(moment: datetime | None) -> str:
    """A stored time as the console shows it: UTC, to the second."""
    if moment is None:
        return "—"
    return as_utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC")


def hook_text(text: str | None) -> str:
    """Hook-derived text for a page: escaped by the template, and here every control character but newline and
    tab shown as an escape, so bidirectional-text controls cannot reorder what the admin reads."""
    return printable(text or "")


def pretty(value: Any) -> str:
    """Plain data as indented JSON (values that are not plain data named by type)."""
    return json.dumps(jsonable(value), indent=2, ensure_ascii=False)


def budget(value: float | None) -> str:
    return "unlimited" if value is None else f"{value:g}"


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


# --- the dry run -----------------------------------------------------------------------------------------------


@dataclass
class DryRun:
    """What "Try the hook" found: the outcome a login would have, and everything the run showed."""

    outcome: str
    http_status: int
    run_id: str
    values: dict[str, Any] | None = None
    error: str | None = None
    traceback: str = ""
    duration_ms: float | None = None
    stdout: str = ""
    stderr: str = ""
    host_calls: list[dict[str, Any]] = field(default_factory=list)
    staged_users: list[str] = field(default_factory=list)
    staged_memberships: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


async def dry_run(
    openid: dict[str, Any], *, hook: HookService, login: LoginService, database: Database, config: ProxyConfig
) -> DryRun:
    """Run the hook once on ``openid`` as a login would, judge its values as a login would, and write nothing."""
    settings = config.hook_settings
    run_id = secrets.token_hex(8)
    judged = await evaluate(
        _with_identity(openid), hook=hook, login=login, database=database, settings=settings, run_id=run_id
    )
    found = DryRun(
        judged.outcome,
        judged.http_status,
        run_id,
        values=judged.values,
        error=judged.error,
        traceback=judged.traceback,
        duration_ms=judged.duration_ms,
        stdout=judged.stdout,
        stderr=judged.stderr,
    )
    subject = openid.get("id") or openid.get("email")
    if found.outcome not in ("ok", "denied", "refused") and settings.on_failure == "idp_defaults" and subject:
        found.notes.append(
            "hook_settings.on_failure is idp_defaults: a login would go on with the identity provider's defaults "
            "(internal_user_viewer, no models), recorded with this outcome."
        )
    host = judged.host
    if host is not None:
        found.host_calls = [
            {**call, "args": pretty(call.get("args")), "error": hook_text(call.get("error"))}
            for call in host.record()
            if "unrecorded" not in call
        ]
        staged = host.staged
        found.staged_users = [user.id for user in staged.users]
        found.staged_memberships = [f"{m.user_id} in {m.team_id} ({m.role})" for m in staged.memberships]
    found.error = None if found.error is None else hook_text(clip(found.error, ERROR_LIMIT))
    found.traceback = hook_text(clip(found.traceback, TRACEBACK_LIMIT))
    found.stdout = hook_text(clip(found.stdout, STREAM_LIMIT))
    found.stderr = hook_text(clip(found.stderr, STREAM_LIMIT))
    return found


def _openid_from_form(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """The OpenID typed into the form, or why it is not one."""
    if not text.strip():
        return None, "openid: required (a JSON object)"
    if len(text) > MAX_OPENID_CHARS:
        return None, f"openid: at most {MAX_OPENID_CHARS} characters"
    try:
        data = json.loads(text)
    except ValueError as exc:
        return None, f"openid: not valid JSON: {exc}"
    except RecursionError:
        return None, "openid: not valid JSON: nested too deep"
    if not isinstance(data, dict):
        return None, f"openid: expected a JSON object, got {type(data).__name__}"
    try:
        openid = DryRunOpenID.model_validate(data).model_dump(mode="json")
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'openid'}: {e['msg']}" for e in exc.errors())
        return None, f"openid: {problems}"
    # claims not given are left for the login's own defaults (subject: the id; issuer: the provider)
    return {key: value for key, value in openid.items() if key in data or key in OpenID.model_fields}, None


# --- the router ------------------------------------------------------------------------------------------------


def console_router(
    pages: Pages,
    current_user: Callable[[Request], Awaitable[User | None]],
    same_origin: Callable[[Request], bool],
) -> APIRouter:
    """The console's pages, ``/docs`` and ``/static/…``.

    Args:
        pages: the proxy's templates.
        current_user: the signed-in user of a request (a valid, unexpired, not logged-out session), or ``None``.
        same_origin: whether a POST comes from the proxy's own pages (the logout route's check).
    """
    router = APIRouter(include_in_schema=False)
    sample_openid = json.dumps(SAMPLE_OPENID, indent=2)

    async def admin(request: Request) -> User | Response:
        """The signed-in admin, or the answer for anyone else: signed out, to ``/ui/``; another role, 403."""
        user = await current_user(request)
        if user is None:
            return RedirectResponse("/ui/", status_code=303)
        if user.role not in ADMIN_ROLES:
            return message(
                user,
                403,
                "Not an admin",
                "The admin console is for proxy admins (proxy_admin and proxy_admin_viewer).",
            )
        return user

    def message(user: User | None, status: int, title: str, text: str) -> Response:
        return pages.render("console/message.html", status=status, me=user, title=title, message=text)

    def render(name: str, user: User, *, status: int = 200, **context: Any) -> Response:
        return pages.render(
            f"console/{name}", status=status, me=user, when=when, budget=budget, hook_text=hook_text, **context
        )

    def state(request: Request) -> tuple[Database, HookService | None, ProxyConfig]:
        app_state = request.app.state
        return app_state.database, app_state.hook, app_state.settings.config

    @router.get("/ui/hook")
    async def hook_page(request: Request) -> Response:
        user = await admin(request)
        if isinstance(user, Response):
            return user
        _, hook, config = state(request)
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
        return render("hook.html", user, **context)

    @router.get("/ui/runs")
    async def runs_page(request: Request) -> Response:
        user = await admin(request)
        if isinstance(user, Response):
            return user
        database, _, _ = state(request)
        params = request.query_params
        filters, errors = parse_run_filter(params)
        form = {name: params.get(name, "")[:256] for name in ("outcome", "user", "since", "until", "limit")}
        if errors:
            return render(
                "runs.html", user, status=422, section="runs", errors=errors, form=form, outcomes=OUTCOMES, runs=[]
            )
        runs = await database.search_runs(filters.limit, **filters.query())
        timings = await database.run_timings(MAX_RUNS_CHARTED, **filters.query())
        durations = [duration for _, duration in timings]
        return render(
            "runs.html",
            user,
            section="runs",
            errors=[],
            form=form,
            outcomes=OUTCOMES,
            runs=runs,
            filters=filters,
            summary=summarize(durations),
            chart=latency_chart(timings),
            histogram=histogram(durations),
            charted=len(timings),
            max_charted=MAX_RUNS_CHARTED,
        )

    @router.get("/ui/runs/{run_id}")
    async def run_page(request: Request, run_id: str) -> Response:
        user = await admin(request)
        if isinstance(user, Response):
            return user
        database, _, _ = state(request)
        run = None if len(run_id) > 64 or _UNSAFE.search(run_id) else await database.get_run(run_id)
        if run is None:
            return message(user, 404, "No such run", f"There is no hook run with the id {one_line(run_id, 80)}.")
        extra = dict(run.extra or {})
        traceback = extra.pop("traceback", None)
        email = extra.pop("email", None)
        calls, unrecorded = _host_calls(run)
        named = await database.get_user(run.user_id) if run.user_id else None
        rollout = await run_rollout(database, run)
        return render(
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
            named=named,
            **rollout,
        )

    rollout_routes(router, admin=admin, render=render)

    @router.get("/ui/users")
    async def users_page(request: Request) -> Response:
        user = await admin(request)
        if isinstance(user, Response):
            return user
        database, _, _ = state(request)
        page = _page_number(request.query_params, "page")
        teams_page = _page_number(request.query_params, "teams_page")
        if page is None or teams_page is None:
            return message(user, 422, "Bad page number", f"page and teams_page: whole numbers from 1 to {MAX_PAGE:,}.")
        async with database.reader() as rows:
            users, total = await rows.page_of_users(page=page, page_size=USERS_PER_PAGE)
            teams_of = await rows.team_ids_of_users([u.id for u in users])
            teams, teams_total = await rows.page_of_teams(page=teams_page, page_size=TEAMS_PER_PAGE)
        return render(
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

    @router.get("/ui/hook/try")
    async def try_page(request: Request) -> Response:
        user = await admin(request)
        if isinstance(user, Response):
            return user
        _, hook, _ = state(request)
        return render("try.html", user, section="try", hook=hook, openid=sample_openid, errors=[], result=None)

    @router.post("/ui/hook/try")
    async def try_hook(request: Request) -> Response:
        user = await admin(request)
        if isinstance(user, Response):
            return user
        if not same_origin(request):
            logger.warning(
                "refused a cross-site dry run of the hook (Origin %s, Sec-Fetch-Site %s)",
                one_line(request.headers.get("origin", "(none)"), 200),
                one_line(request.headers.get("sec-fetch-site", "(none)"), 40),
            )
            return message(
                user,
                403,
                "Refused",
                "That request came from another site and was refused: nothing was run. Use the form on this page.",
            )
        database, hook, config = state(request)
        form = await request.form()
        raw = form.get("openid")
        text = raw if isinstance(raw, str) else ""
        if hook is None:
            return render(
                "try.html",
                user,
                status=409,
                section="try",
                hook=None,
                openid=text,
                errors=["No hook is configured (general_settings.custom_sso): there is nothing to run."],
                result=None,
            )
        openid, error = _openid_from_form(text)
        if openid is None:
            return render(
                "try.html", user, status=422, section="try", hook=hook, openid=text, errors=[error], result=None
            )
        result = await dry_run(openid, hook=hook, login=request.app.state.login, database=database, config=config)
        logger.info(
            "dry run %s of the hook by %s for %s: %s (nothing written)",
            result.run_id,
            one_line(user.id, 300),
            one_line(str(openid.get("id") or openid.get("email") or "?"), 300),
            result.outcome,
        )
        return render(
            "try.html",
            user,
            section="try",
            hook=hook,
            openid=text,
            errors=[],
            result=result,
            values=pretty(result.values) if result.values is not None else "",
        )

    @router.get("/docs")
    async def docs(request: Request) -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=request.app.openapi_url or "/openapi.json",
            title=f"{request.app.title} - API docs",
            swagger_js_url="/static/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/swagger-ui/favicon-32x32.png",
        )
        page.headers["Content-Security-Policy"] = _docs_policy(bytes(page.body).decode("utf-8"))
        return page

    @router.get("/static/{name:path}")
    async def static(name: str) -> Response:
        found = _STATIC_FILES.get(name)
        if found is None:
            return Response("Not Found", status_code=404, media_type="text/plain")
        path, media_type = found
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": "public, max-age=3600"})

    return router


def _docs_policy(page: str) -> str:
    """The Content-Security-Policy of the Swagger UI page: its script and stylesheet from the proxy, its one
    inline script allowed by hash, the OpenAPI document fetched from the proxy, no framing."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(block.encode("utf-8")).digest()).decode("ascii") + "'"
        for block in _INLINE_SCRIPT.findall(page)
    )
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src 'self' {hashes}".strip(),
            "style-src 'self' 'unsafe-inline'",  # Swagger UI sets inline styles on its elements
            "img-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )
