"""The login's two routes: ``/sso/key/generate`` (off to the identity provider) and ``/sso/callback`` (back from
it: the code redeemed, the hook run by :class:`~proxy._login.LoginService`, the session cookie set)."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from fastapi_sso.sso.base import OpenID

from .._login import ADMIN_ROLES, LoginFailed
from .._metrics import PhaseTimer
from .._ratelimit import TokenBuckets
from .._sessions import COOKIE_NAME
from .._sso import ProviderUnavailable
from .._text import one_line
from ._oauth_state import COOKIE_LIFETIME, StateInvalid, cookie_name, provider_error_text
from ._web import Web, hook_of, login_of, signed_in, web_of

__all__ = ("router",)

logger = logging.getLogger("hookjail")

router = APIRouter(include_in_schema=False)

_FAILED = "Sign-in with the identity provider failed."
_UNREACHABLE = "The identity provider is not reachable right now."


@router.get("/sso/key/generate")
async def sso_login(request: Request) -> Response:
    """Start a sign-in: a state and PKCE verifier in a signed cookie, and a redirect to the provider."""
    web = web_of(request)
    refused = _too_many(web, request, web.login_buckets)
    if refused is not None:
        return refused
    redirect_uri = _callback_uri(web, request)
    if redirect_uri is None:
        return _unknown_host(web, request)
    try:
        sso = await web.provider.create(redirect_uri)
    except ProviderUnavailable as exc:
        logger.error("identity provider unavailable: %s", exc)
        return web.pages.error(_UNREACHABLE, status=502)
    transaction = web.states.begin()
    try:
        async with sso:
            url = await web.provider.login_url(
                sso, redirect_uri=redirect_uri, state=transaction.state, code_challenge=transaction.code_challenge
            )
    except Exception as exc:  # oauthlib refuses, e.g., an http authorization endpoint for an https proxy
        logger.error("cannot make the authorization URL: %s", one_line(str(exc) or type(exc).__name__))
        return web.pages.error("The identity provider cannot be used right now.", status=502)
    response = RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
    is_secure = web.secure(request)
    response.set_cookie(
        cookie_name(is_secure),
        transaction.cookie,
        max_age=COOKIE_LIFETIME,
        httponly=True,
        samesite="lax",
        secure=is_secure,
        path="/",
    )
    return response


@dataclass
class _Trace:
    """What one ``/sso/callback`` ended with, for its log line and the logins counter."""

    outcome: str = "error"
    run_id: str | None = None
    subject: str | None = None
    provider: str | None = None


@router.get("/sso/callback")
async def sso_callback(request: Request) -> Response:
    """The login's callback, timed (``Server-Timing``: idp, hook, db, total), counted by outcome
    (``/metrics``) and logged as one line (``event: login``)."""
    web = web_of(request)
    timer = PhaseTimer()
    trace = _Trace()
    try:
        response = await _callback(web, request, timer, trace)
    except BaseException:
        web.metrics.login("error")
        raise
    response.headers["Server-Timing"] = timer.header()
    web.metrics.login(trace.outcome)
    _log_login(trace, response, timer)
    return response


def _log_login(trace: _Trace, response: Response, timer: PhaseTimer) -> None:
    total_ms = (time.perf_counter() - timer.started) * 1000
    logger.info(
        "login %s: %s (%d) in %.1f ms, run %s",
        one_line(trace.subject or "?", 300),
        trace.outcome,
        response.status_code,
        total_ms,
        trace.run_id or "-",
        extra={
            "event": "login",
            "run_id": trace.run_id,
            "outcome": trace.outcome,
            "status": response.status_code,
            "duration_ms": round(total_ms, 1),
            "subject": trace.subject,
            "provider": trace.provider,
            **{f"{name}_ms": round(timer.phases.get(name, 0.0) * 1000, 1) for name in PhaseTimer.PHASES},
        },
    )


async def _callback(web: Web, request: Request, timer: PhaseTimer, trace: _Trace) -> Response:
    """Refuse what can be refused before the provider is asked, learn who signed in, then log them in."""
    checked = _check_callback(web, request, trace)
    if isinstance(checked, Response):
        return checked
    redirect_uri, verifier, code = checked
    trace.outcome = "idp_error"
    with timer.phase("idp"):  # the discovery document (first login only), the token and userinfo requests
        openid = await _identify(web, request, redirect_uri, verifier, code, trace)
    if isinstance(openid, Response):
        return openid
    trace.subject = openid.id or openid.email
    trace.provider = openid.provider
    try:
        granted = await login_of(request).login(openid.model_dump(mode="json"), timer=timer)
    except LoginFailed as failed:
        trace.outcome, trace.run_id = failed.outcome, failed.run_id
        viewer = await signed_in(request, web.codec)  # an admin already signed in gets a link to the run
        run_link = viewer is not None and viewer.role in ADMIN_ROLES
        return _login_error(web, request, failed.reason, status=failed.status, run_id=failed.run_id, run_link=run_link)
    trace.outcome, trace.run_id = granted.fallback or "ok", granted.run_id
    response = RedirectResponse("/ui/?login=success", status_code=303)
    response.set_cookie(
        COOKIE_NAME,
        granted.token,
        max_age=int(web.settings.session_duration.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=web.secure(request),
        path="/",
    )
    web.forget_login(request, response)
    return response


def _check_callback(web: Web, request: Request, trace: _Trace) -> Response | tuple[str, str, str]:
    """The callback's URI, PKCE verifier and code; or the answer, before any request to the provider."""
    refused = _too_many(web, request, web.callback_buckets)
    if refused is not None:
        trace.outcome = "rate_limited"
        return refused
    redirect_uri = _callback_uri(web, request)
    if redirect_uri is None:
        trace.outcome = "bad_request"
        return _unknown_host(web, request)
    params = request.query_params
    if "error" in params:
        trace.outcome = "idp_error"
        # the provider's words (or an attacker's: anyone can send this link) are logged escaped, never shown
        error = params["error"]
        logger.info(
            "identity provider refused the login: error=%s error_description=%s",
            one_line(error, 100),
            one_line(params.get("error_description", ""), 300),
        )
        return _login_error(web, request, provider_error_text(error), status=401)
    overloaded = _busy(web, request)
    if overloaded is not None:
        trace.outcome = "busy"
        return overloaded
    try:
        verifier = web.states.finish(request.cookies.get(cookie_name(web.secure(request))), params.get("state"))
    except StateInvalid as exc:
        trace.outcome = "state_invalid"
        logger.warning("refused a sign-in callback: %s", exc.reason)
        return _login_error(
            web,
            request,
            "This sign-in attempt is not valid: it expired, was already used or was started in another "
            "browser. Please sign in again.",
            status=401,
        )
    code = params.get("code")
    if not code:
        trace.outcome = "bad_request"
        return _login_error(web, request, _FAILED, status=401)
    return redirect_uri, verifier, code


async def _identify(
    web: Web, request: Request, redirect_uri: str, verifier: str, code: str, trace: _Trace
) -> OpenID | Response:
    """Redeem the code at the provider: who signed in, or the error page."""
    try:
        sso = await web.provider.create(redirect_uri)
    except ProviderUnavailable as exc:
        trace.outcome = "idp_unavailable"
        logger.error("identity provider unavailable: %s", exc)
        return _login_error(web, request, _UNREACHABLE, status=502)
    try:
        async with sso:
            openid = await sso.process_login(
                code,
                request,
                redirect_uri=redirect_uri,
                pkce_code_verifier=verifier if web.provider.uses_pkce else None,
            )
    except Exception as exc:
        # fastapi-sso lets oauthlib, httpx and pydantic errors escape: all of them are a failed sign-in.
        detail = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
        logger.warning("sign-in with the identity provider failed: %s", one_line(str(detail)))
        return _login_error(web, request, _FAILED, status=401)
    if not isinstance(openid, OpenID):
        return _login_error(web, request, _FAILED, status=401)
    return openid


def _too_many(web: Web, request: Request, buckets: TokenBuckets | None) -> Response | None:
    """429 with Retry-After when the client address has used up its login requests (HOOKJAIL_SSO_RATE_LIMIT)."""
    if buckets is None:
        return None
    wait = buckets.take(request.client.host if request.client is not None else "unknown")
    if wait is None:
        return None
    response = web.pages.error(f"Too many sign-in attempts from your address. Try again in {wait} s.", status=429)
    response.headers["Retry-After"] = str(wait)
    return response


def _callback_uri(web: Web, request: Request) -> str | None:
    return web.provider.redirect_uri(request.url.scheme, request.headers.get("host"))


def _unknown_host(web: Web, request: Request) -> Response:
    logger.warning(
        "refused a sign-in reached through Host %s: without PROXY_BASE_URL only loopback hosts are used for the "
        "callback URL; set PROXY_BASE_URL to the proxy's public URL",
        one_line(request.headers.get("host", "(none)"), 200),
    )
    return web.pages.error("This proxy does not know its public address; its administrator must set it.", status=400)


def _busy(web: Web, request: Request) -> Response | None:
    """Backpressure: 503 with Retry-After at once when every hook slot is busy and, by the runner's estimate
    (:meth:`runner.HookRunner.would_miss_deadline`), this login would wait past its deadline. Answered
    before the state is used or the code redeemed, and the login cookie is kept: reloading the page once
    the proxy has room finishes the sign-in."""
    hook = hook_of(request)
    if hook is None:
        return None
    wait = hook.runner.would_miss_deadline()
    if wait is None:
        return None
    retry = max(1, math.ceil(wait))
    logger.warning(
        "refused a sign-in callback at once: every hook slot is busy (%d running, %d waiting) and it would "
        "wait about %.1f s, past its %g s deadline",
        hook.runner.in_flight,
        hook.runner.waiting,
        wait,
        web.settings.config.hook_settings.timeout,
    )
    response = web.pages.error(
        f"Too many sign-ins are in progress right now. Reload this page in {retry} s to finish signing in.",
        status=503,
    )
    response.headers["Retry-After"] = str(retry)
    return response


def _login_error(
    web: Web, request: Request, reason: str, *, status: int, run_id: str | None = None, run_link: bool = False
) -> Response:
    """The error page of a failed sign-in; the login cookie is deleted (the attempt is over)."""
    response = web.pages.error(reason, status=status, run_id=run_id, run_link=run_link)
    web.forget_login(request, response)
    return response
