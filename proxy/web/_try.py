"""``/ui/hook/try``: "Try the hook", a dry run of the configured hook on an OpenID typed in (JSON).

It runs through the sandbox like a login and is judged as a login judges it (validation, identity overrides,
policy, admin-only, the identity binding: :func:`proxy.rollout.evaluate`), showing the outcome, the values, the
error and traceback, the output and the host calls. **It writes nothing**: the host calls read the database
through a :class:`~proxy._host.LoginHost` whose staged writes are shown and dropped (only a login's
``complete_login`` commits them), no user, session or hook run is written, and the run is only logged. Viewers
may run it too (it changes nothing; any IdP user runs the hook by logging in). The POST is refused (403) unless
it comes from the proxy's own pages (``Sec-Fetch-Site``/``Origin``, as ``/ui/logout``).
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi_sso.sso.base import OpenID
from pydantic import ConfigDict

from sdk.testing import SAMPLE_OPENID

from .._config import ProxyConfig
from .._db import Database
from .._hook import HookService
from .._login import LoginService, _with_identity
from .._openid import OpenIDInvalid, parse_openid
from .._text import ERROR_LIMIT, STREAM_LIMIT, TRACEBACK_LIMIT, clip, one_line
from ..rollout import Evaluation, evaluate
from ._console_pages import hook_text, message, pretty, render
from ._web import Admin, DatabaseDep, HookDep, LoginDep, WebDep

__all__ = ("MAX_OPENID_CHARS", "DryRun", "DryRunOpenID", "dry_run", "router")

logger = logging.getLogger("hookjail.console")

#: The largest OpenID (JSON) the dry run takes.
MAX_OPENID_CHARS = 16 * 1024
_SAMPLE_OPENID = json.dumps(SAMPLE_OPENID, indent=2)

router = APIRouter(include_in_schema=False)


class DryRunOpenID(OpenID):
    """What the dry run takes: fastapi-sso's ``OpenID`` plus the claims hookjail's generic provider adds (as a
    login passes them to the hook); any other key is refused, so a typo is not silently dropped."""

    model_config = ConfigDict(extra="forbid")

    email_verified: bool | None = None
    subject: str | None = None
    issuer: str | None = None


@dataclass
class DryRun:
    """What "Try the hook" shows: the judged run, and its hook-made text clipped and escaped for the page."""

    judged: Evaluation
    run_id: str
    error: str | None = None
    traceback: str = ""
    stdout: str = ""
    stderr: str = ""
    host_calls: list[dict[str, Any]] = field(default_factory=list)
    staged_users: list[str] = field(default_factory=list)
    staged_memberships: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        return self.judged.outcome

    @property
    def http_status(self) -> int:
        return self.judged.http_status

    @property
    def duration_ms(self) -> float | None:
        return self.judged.duration_ms

    @property
    def values(self) -> dict[str, Any] | None:
        return self.judged.values


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
        judged,
        run_id,
        error=None if judged.error is None else hook_text(clip(judged.error, ERROR_LIMIT)),
        traceback=hook_text(clip(judged.traceback, TRACEBACK_LIMIT)),
        stdout=hook_text(clip(judged.stdout, STREAM_LIMIT)),
        stderr=hook_text(clip(judged.stderr, STREAM_LIMIT)),
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
    return found


def openid_from_form(text: str) -> tuple[dict[str, Any] | None, str | None]:
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
        openid = parse_openid(data, DryRunOpenID)
    except OpenIDInvalid as exc:
        return None, f"openid: {exc}"
    # claims not given are left for the login's own defaults (subject: the id; issuer: the provider)
    return {key: value for key, value in openid.items() if key in data or key in OpenID.model_fields}, None


@router.get("/ui/hook/try")
async def try_page(request: Request, user: Admin, hook: HookDep) -> Response:
    return render(request, "try.html", user, section="try", hook=hook, openid=_SAMPLE_OPENID, errors=[], result=None)


@router.post("/ui/hook/try")
async def try_hook(
    request: Request, user: Admin, web: WebDep, database: DatabaseDep, hook: HookDep, login: LoginDep
) -> Response:
    if not web.same_origin(request):
        logger.warning(
            "refused a cross-site dry run of the hook (Origin %s, Sec-Fetch-Site %s)",
            one_line(request.headers.get("origin", "(none)"), 200),
            one_line(request.headers.get("sec-fetch-site", "(none)"), 40),
        )
        text = "That request came from another site and was refused: nothing was run. Use the form on this page."
        return message(request, user, 403, "Refused", text)
    form = await request.form()
    raw = form.get("openid")
    text = raw if isinstance(raw, str) else ""
    page: dict[str, Any] = {"section": "try", "hook": hook, "openid": text}
    if hook is None:
        nothing = "No hook is configured (general_settings.custom_sso): there is nothing to run."
        return render(request, "try.html", user, status=409, **page, errors=[nothing], result=None)
    openid, error = openid_from_form(text)
    if openid is None:
        return render(request, "try.html", user, status=422, **page, errors=[error], result=None)
    config = web.settings.config
    result = await dry_run(openid, hook=hook, login=login, database=database, config=config)
    logger.info(
        "dry run %s of the hook by %s for %s: %s (nothing written)",
        result.run_id,
        one_line(user.id, 300),
        one_line(str(openid.get("id") or openid.get("email") or "?"), 300),
        result.outcome,
    )
    values = pretty(result.values) if result.values is not None else ""
    return render(request, "try.html", user, **page, errors=[], result=result, values=values)
