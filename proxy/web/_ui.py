"""The signed-in user's pages: ``/ui/`` (who you are, and which hook run decided your values) and the logout."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from .._db import Database, User, as_utc
from .._hook import HookService
from .._login import ADMIN_ROLES
from .._sessions import COOKIE_NAME, SessionInvalid
from .._text import one_line
from ._web import CurrentUser, DatabaseDep, HookDep, WebDep

__all__ = ("router",)

logger = logging.getLogger("hookjail")

router = APIRouter(include_in_schema=False)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=303)


@router.get("/ui")
async def ui_no_slash() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/")
async def ui(request: Request, web: WebDep, user: CurrentUser, database: DatabaseDep, hook: HookDep) -> Response:
    response = web.pages.render(
        "ui.html",
        user=user,
        login_success=request.query_params.get("login") == "success",
        logged_out=request.query_params.get("logout") is not None,
        **(await _decided_by(user, database, hook) if user is not None else {}),
    )
    if user is None and COOKIE_NAME in request.cookies:
        response.delete_cookie(COOKIE_NAME, path="/")
    return response


async def _decided_by(user: User, database: Database, hook: HookService | None) -> dict[str, Any]:
    """What the dashboard says about who decided the signed-in user's values: the run of their latest
    successful login (looked up by their own user id, never taken from the request), the loaded hook's file and
    source hash (computed at import, not here), and whether they may open the run (admins)."""
    run = await database.latest_login_run(user.id)
    source = hook.describe() if hook is not None else None
    return {
        "run": run,
        "hook_source": source,
        # the hook was re-imported after this run: the file and hash shown are of the version now loaded
        "hook_reloaded_since": run is not None and source is not None and as_utc(run.started_at) < source.loaded_at,
        "can_read_runs": user.role in ADMIN_ROLES,
    }


@router.get("/ui/logout")
async def logout_page(web: WebDep, user: CurrentUser) -> Response:
    if user is None:
        return RedirectResponse("/ui/", status_code=303)
    return web.pages.render("logout.html")


@router.post("/ui/logout")
async def logout(request: Request, web: WebDep, database: DatabaseDep) -> Response:
    if not web.same_origin(request):
        # a cross-site form must not end the victim's session (nor clear the cookie): 403, nothing changed
        logger.warning(
            "refused a cross-site logout (Origin %s, Sec-Fetch-Site %s)",
            one_line(request.headers.get("origin", "(none)"), 200),
            one_line(request.headers.get("sec-fetch-site", "(none)"), 40),
        )
        return web.pages.render("logout.html", status=403, refused=True)
    token = request.cookies.get(COOKIE_NAME)
    if token:
        try:
            claims = web.codec.verify(token)
        except SessionInvalid:
            pass
        else:
            await database.delete_session(claims.session_id)
    response = RedirectResponse("/ui/?logout=1", status_code=303)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="lax", secure=web.secure(request))
    return response
