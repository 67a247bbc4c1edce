"""The FastAPI application: lifespan (database, migrations, hook runner) and the routes.

Routes: ``/sso/key/generate`` and ``/sso/callback`` (the login), ``/ui/`` and ``/ui/logout`` (the admin UI),
the management API (``/user/...``, ``/team/...``, ``/hook/runs``, see :mod:`proxy._management`), ``/health``,
and the OpenAPI docs at ``/docs``. The hook runner is started in the lifespan and lives on ``app.state.runner``.
"""

from __future__ import annotations

import gc
import importlib.metadata
import logging
import math
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi_sso.sso.base import OpenID

from runner import HookImportError, SandboxUnavailable

from ._bodylimit import MAX_BODY_BYTES, BodyLimit
from ._config import ProxyConfig, resolve_reference
from ._console import console_router
from ._db import Database, User, as_utc, normalize_url, utcnow
from ._errors import ConfigError, StartupError
from ._headers import install_security_headers
from ._hook import HookService
from ._lifecycle import WorkerGuard
from ._login import ADMIN_ROLES, LoginFailed, LoginService
from ._management import check_master_key, install_error_handlers, management_router
from ._metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ._metrics import Metrics, PhaseTimer
from ._oauth_state import COOKIE_LIFETIME, OAuthStates, StateInvalid, cookie_name, provider_error_text
from ._pages import Pages
from ._ratelimit import TokenBuckets
from ._sessions import COOKIE_NAME, DEFAULT_SESSION_DURATION, SessionCodec, SessionInvalid, parse_duration
from ._sso import ProviderUnavailable, SSOProvider, SSOSettings, sso_settings_from_env
from ._text import one_line
from .rollout import CandidateUnusable, start_rollout

__all__ = ("ServeSettings", "create_app", "serve_settings")

logger = logging.getLogger("hookjail")


@dataclass(frozen=True, kw_only=True)
class ServeSettings:
    """Everything the server needs, validated before anything listens."""

    config: ProxyConfig
    sso: SSOSettings
    master_key: str = field(repr=False)
    database_url: str
    session_duration: timedelta = DEFAULT_SESSION_DURATION
    allow_weak_sandbox: bool = False


def serve_settings(
    config: ProxyConfig,
    environ: Mapping[str, str],
    *,
    database_url: str | None = None,
    allow_weak_sandbox: bool = False,
) -> ServeSettings:
    """Combine config.yaml, flags and the environment (LiteLLM's variables) into :class:`ServeSettings`.

    Raises:
        ConfigError: naming the key, flag or variable at fault.
    """
    general = config.general_settings
    if general.master_key is not None:
        master_key = resolve_reference(general.master_key.get_secret_value(), "general_settings.master_key", environ)
        if not master_key:
            raise ConfigError("general_settings.master_key: must not be empty (it signs UI sessions)")
    elif environ.get("LITELLM_MASTER_KEY"):
        master_key = environ["LITELLM_MASTER_KEY"]
    else:
        raise ConfigError(
            "general_settings.master_key: required (it signs UI sessions); set it in config.yaml "
            "(e.g. os.environ/LITELLM_MASTER_KEY) or set LITELLM_MASTER_KEY"
        )
    raw_duration = environ.get("LITELLM_UI_SESSION_DURATION", "").strip()
    duration = (
        parse_duration(raw_duration, name="environment: LITELLM_UI_SESSION_DURATION")
        if raw_duration
        else DEFAULT_SESSION_DURATION
    )
    url = database_url or general.database_url or "sqlite:///hookjail.db"
    if database_url is None and general.database_url is not None:
        url = resolve_reference(general.database_url, "general_settings.database_url", environ)
    try:
        normalized = normalize_url(url, config.directory)
    except Exception as exc:
        source = "--database-url" if database_url else "general_settings.database_url"
        raise ConfigError(f"{source}: not a database URL ({exc})") from None
    return ServeSettings(
        config=config,
        sso=sso_settings_from_env(environ),
        master_key=master_key,
        database_url=normalized,
        session_duration=duration,
        allow_weak_sandbox=allow_weak_sandbox,
    )


def create_app(settings: ServeSettings) -> FastAPI:
    """Build the proxy's ASGI application (resources start in its lifespan)."""
    config = settings.config
    pages = Pages()
    provider = SSOProvider(settings.sso)
    codec = SessionCodec(settings.master_key, settings.session_duration)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            hook: HookService | None = None
            if config.hook is not None:
                hook = HookService(config, allow_weak_sandbox=settings.allow_weak_sandbox)
                # the serving process (app.state.reap_workers): no worker outlives the runner's stop
                guard = WorkerGuard() if app.state.reap_workers else None
                if guard is not None:
                    stack.push_async_callback(guard.wait_gone)
                try:
                    await stack.enter_async_context(hook)
                except HookImportError as exc:
                    raise _startup_failed(
                        app,
                        f"general_settings.custom_sso: the hook {config.hook.dotted} cannot be used: {exc.message}",
                    ) from None
                except SandboxUnavailable as exc:
                    raise _startup_failed(
                        app,
                        f"sandbox: {exc.message} (run with --allow-weak-sandbox or set "
                        "hook_settings.sandbox: permissive to accept a weaker sandbox)",
                    ) from None
                logger.info("hook %s ready; sandbox layers: %s", config.hook.dotted, _layers(hook))
                if guard is not None:
                    stack.callback(guard.snapshot)  # at shutdown, before the runner stops
            else:
                logger.warning("general_settings.custom_sso is not set: logins get LiteLLM's default values")
            try:
                database = Database(settings.database_url)
                stack.push_async_callback(database.close)
                await database.upgrade()
            except Exception as exc:
                raise _startup_failed(app, f"database: cannot open or migrate: {exc}") from exc
            if config.ignored:
                logger.info("ignoring LiteLLM settings hookjail does not use: %s", ", ".join(config.ignored))
            app.state.database = database
            app.state.hook = hook
            app.state.runner = hook.runner if hook is not None else None
            metrics.watch(hook)
            login = LoginService(
                config=config, sso=settings.sso, hook=hook, database=database, sessions=codec, metrics=metrics
            )
            app.state.login = login
            try:
                app.state.shadow = await start_rollout(
                    stack,
                    config=config,
                    hook=hook,
                    database=database,
                    login=login,
                    metrics=metrics,
                    allow_weak_sandbox=settings.allow_weak_sandbox,
                )
            except CandidateUnusable as exc:
                raise _startup_failed(app, f"hook_settings.candidate: {exc}") from None
            except SandboxUnavailable as exc:
                raise _startup_failed(app, f"hook_settings.candidate: sandbox: {exc.message}") from None
            # What exists now lives as long as the app: kept out of the cyclic collector's sight, a full
            # collection no longer walks it (under load it paused the event loop ~100 ms every few seconds).
            gc.collect()
            gc.freeze()
            stack.callback(gc.unfreeze)
            yield

    app = FastAPI(
        title="hookjail",
        summary="SSO login gateway whose LiteLLM-style custom SSO handler runs sandboxed",
        lifespan=lifespan,
        docs_url=None,  # /docs is served by the console router, with Swagger UI's files from the proxy
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)  # every body capped before it is read (413)
    install_security_headers(app)
    app.include_router(management_router(settings.master_key))
    app.state.settings = settings
    app.state.startup_error = None
    app.state.shadow = None  # the candidate's shadow runs (hook_settings.candidate), set in the lifespan
    app.state.metrics = metrics
    app.state.reap_workers = False  # True in `hookjail serve`, whose process owns every worker below it

    states = OAuthStates(settings.master_key)
    rate_limit = settings.sso.rate_limit
    login_buckets = TokenBuckets(rate_limit) if rate_limit is not None else None
    callback_buckets = TokenBuckets(rate_limit) if rate_limit is not None else None

    def secure(request: Request) -> bool:
        """Cookies get ``Secure`` when the public URL (PROXY_BASE_URL) is https, or the request came over https
        (directly, or through a TLS terminator whose ``X-Forwarded-Proto`` uvicorn trusts: --forwarded-allow-ips).
        """
        return (settings.sso.base_url or "").startswith("https://") or request.url.scheme == "https"

    def too_many(request: Request, buckets: TokenBuckets | None) -> Response | None:
        """429 with Retry-After when the client address has used up its login requests (HOOKJAIL_SSO_RATE_LIMIT)."""
        if buckets is None:
            return None
        wait = buckets.take(request.client.host if request.client is not None else "unknown")
        if wait is None:
            return None
        response = pages.error(f"Too many sign-in attempts from your address. Try again in {wait} s.", status=429)
        response.headers["Retry-After"] = str(wait)
        return response

    def callback_uri(request: Request) -> str | None:
        return provider.redirect_uri(request.url.scheme, request.headers.get("host"))

    def unknown_host(request: Request) -> Response:
        logger.warning(
            "refused a sign-in reached through Host %s: without PROXY_BASE_URL only loopback hosts are used for the "
            "callback URL; set PROXY_BASE_URL to the proxy's public URL",
            one_line(request.headers.get("host", "(none)"), 200),
        )
        return pages.error("This proxy does not know its public address; its administrator must set it.", status=400)

    def same_origin(request: Request) -> bool:
        """A state-changing request from the proxy's own pages: ``Sec-Fetch-Site: same-origin`` when the browser
        sends it, else an ``Origin`` of this proxy (PROXY_BASE_URL's or the one the request was sent to). Browsers
        send at least ``Origin`` with every POST, so a request with neither comes from no web page (curl, scripts):
        it cannot be a cross-site forgery."""
        site = request.headers.get("sec-fetch-site")
        if site is not None:
            return site.strip().lower() == "same-origin"
        origin = request.headers.get("origin")
        if origin is None:
            return True
        allowed = set()
        if settings.sso.base_url is not None:
            parts = urlsplit(settings.sso.base_url)
            allowed.add(f"{parts.scheme}://{parts.netloc}".lower())
        host = request.headers.get("host")
        if host:
            allowed.add(f"{request.url.scheme}://{host}".lower())
        return origin.strip().lower() in allowed

    async def current_user(request: Request) -> User | None:
        token = request.cookies.get(COOKIE_NAME)
        if not token:
            return None
        database: Database = request.app.state.database
        try:
            claims = codec.verify(token)
        except SessionInvalid:
            return None
        row = await database.get_session(claims.session_id)
        if row is None or row.user_id != claims.user_id or as_utc(row.expires_at) <= utcnow():
            return None
        return await database.get_user(claims.user_id)

    def forget_login(request: Request, response: Response) -> None:
        """Delete the login cookie (``__Host-`` on https needs ``Secure`` and ``Path=/`` to be deleted too)."""
        is_secure = secure(request)
        response.delete_cookie(cookie_name(is_secure), path="/", secure=is_secure, httponly=True, samesite="lax")

    def login_error(
        request: Request, reason: str, *, status: int, run_id: str | None = None, run_link: bool = False
    ) -> Response:
        response = pages.error(reason, status=status, run_id=run_id, run_link=run_link)
        forget_login(request, response)
        return response

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=303)

    @app.get("/sso/key/generate", include_in_schema=False)
    async def sso_login(request: Request) -> Response:
        refused = too_many(request, login_buckets)
        if refused is not None:
            return refused
        redirect_uri = callback_uri(request)
        if redirect_uri is None:
            return unknown_host(request)
        try:
            sso = await provider.create(redirect_uri)
        except ProviderUnavailable as exc:
            logger.error("identity provider unavailable: %s", exc)
            return pages.error("The identity provider is not reachable right now.", status=502)
        transaction = states.begin()
        try:
            async with sso:
                url = await provider.login_url(
                    sso, redirect_uri=redirect_uri, state=transaction.state, code_challenge=transaction.code_challenge
                )
        except Exception as exc:  # oauthlib refuses, e.g., an http authorization endpoint for an https proxy
            logger.error("cannot make the authorization URL: %s", one_line(str(exc) or type(exc).__name__))
            return pages.error("The identity provider cannot be used right now.", status=502)
        response = RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
        is_secure = secure(request)
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

    def busy(request: Request) -> Response | None:
        """Backpressure: 503 with Retry-After at once when every hook slot is busy and, by the runner's estimate
        (:meth:`runner.HookRunner.would_miss_deadline`), this login would wait past its deadline. Answered
        before the state is used or the code redeemed, and the login cookie is kept: reloading the page once
        the proxy has room finishes the sign-in."""
        hook: HookService | None = request.app.state.hook
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
            config.hook_settings.timeout,
        )
        response = pages.error(
            f"Too many sign-ins are in progress right now. Reload this page in {retry} s to finish signing in.",
            status=503,
        )
        response.headers["Retry-After"] = str(retry)
        return response

    @app.get("/sso/callback", include_in_schema=False)
    async def sso_callback(request: Request) -> Response:
        """The login's callback, timed (``Server-Timing``: idp, hook, db, total), counted by outcome
        (``/metrics``) and logged as one line (``event: login``)."""
        timer = PhaseTimer()
        trace = _LoginTrace()
        try:
            response = await _sso_callback(request, timer, trace)
        except BaseException:
            metrics.login("error")
            raise
        response.headers["Server-Timing"] = timer.header()
        metrics.login(trace.outcome)
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
        return response

    async def _sso_callback(request: Request, timer: PhaseTimer, trace: _LoginTrace) -> Response:
        refused = too_many(request, callback_buckets)
        if refused is not None:
            trace.outcome = "rate_limited"
            return refused
        redirect_uri = callback_uri(request)
        if redirect_uri is None:
            trace.outcome = "bad_request"
            return unknown_host(request)
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
            return login_error(request, provider_error_text(error), status=401)
        overloaded = busy(request)
        if overloaded is not None:
            trace.outcome = "busy"
            return overloaded
        try:
            verifier = states.finish(request.cookies.get(cookie_name(secure(request))), params.get("state"))
        except StateInvalid as exc:
            # refused before any request to the identity provider
            trace.outcome = "state_invalid"
            logger.warning("refused a sign-in callback: %s", exc.reason)
            return login_error(
                request,
                "This sign-in attempt is not valid: it expired, was already used or was started in another "
                "browser. Please sign in again.",
                status=401,
            )
        code = params.get("code")
        if not code:
            trace.outcome = "bad_request"
            return login_error(request, "Sign-in with the identity provider failed.", status=401)
        trace.outcome = "idp_error"
        with timer.phase("idp"):  # the discovery document (first login only), the token and userinfo requests
            try:
                sso = await provider.create(redirect_uri)
            except ProviderUnavailable as exc:
                trace.outcome = "idp_unavailable"
                logger.error("identity provider unavailable: %s", exc)
                return login_error(request, "The identity provider is not reachable right now.", status=502)
            try:
                async with sso:
                    openid = await sso.process_login(
                        code,
                        request,
                        redirect_uri=redirect_uri,
                        pkce_code_verifier=verifier if provider.uses_pkce else None,
                    )
            except Exception as exc:
                # fastapi-sso lets oauthlib, httpx and pydantic errors escape: all of them are a failed sign-in.
                detail = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
                logger.warning("sign-in with the identity provider failed: %s", one_line(str(detail)))
                return login_error(request, "Sign-in with the identity provider failed.", status=401)
        if not isinstance(openid, OpenID):
            return login_error(request, "Sign-in with the identity provider failed.", status=401)
        trace.subject = openid.id or openid.email
        trace.provider = openid.provider
        login: LoginService = request.app.state.login
        try:
            granted = await login.login(openid.model_dump(mode="json"), timer=timer)
        except LoginFailed as failed:
            trace.outcome, trace.run_id = failed.outcome, failed.run_id
            viewer = await current_user(request)  # an admin already signed in gets a link to the run
            run_link = viewer is not None and viewer.role in ADMIN_ROLES
            return login_error(request, failed.reason, status=failed.status, run_id=failed.run_id, run_link=run_link)
        trace.outcome, trace.run_id = granted.fallback or "ok", granted.run_id
        response = RedirectResponse("/ui/?login=success", status_code=303)
        response.set_cookie(
            COOKIE_NAME,
            granted.token,
            max_age=int(settings.session_duration.total_seconds()),
            httponly=True,
            samesite="lax",
            secure=secure(request),
            path="/",
        )
        forget_login(request, response)
        return response

    @app.get("/ui", include_in_schema=False)
    async def ui_no_slash() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    @app.get("/ui/", include_in_schema=False)
    async def ui(request: Request) -> Response:
        user = await current_user(request)
        response = pages.render(
            "ui.html",
            user=user,
            login_success=request.query_params.get("login") == "success",
            logged_out=request.query_params.get("logout") is not None,
            **(await _decided_by(request, user) if user is not None else {}),
        )
        if user is None and COOKIE_NAME in request.cookies:
            response.delete_cookie(COOKIE_NAME, path="/")
        return response

    @app.get("/ui/logout", include_in_schema=False)
    async def logout_page(request: Request) -> Response:
        if await current_user(request) is None:
            return RedirectResponse("/ui/", status_code=303)
        return pages.render("logout.html")

    @app.post("/ui/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        if not same_origin(request):
            # a cross-site form must not end the victim's session (nor clear the cookie): 403, nothing changed
            logger.warning(
                "refused a cross-site logout (Origin %s, Sec-Fetch-Site %s)",
                one_line(request.headers.get("origin", "(none)"), 200),
                one_line(request.headers.get("sec-fetch-site", "(none)"), 40),
            )
            return pages.render("logout.html", status=403, refused=True)
        token = request.cookies.get(COOKIE_NAME)
        if token:
            try:
                claims = codec.verify(token)
            except SessionInvalid:
                pass
            else:
                database: Database = request.app.state.database
                await database.delete_session(claims.session_id)
        response = RedirectResponse("/ui/?logout=1", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="lax", secure=secure(request))
        return response

    app.include_router(console_router(pages, current_user, same_origin))  # /ui/hook, /ui/runs, /ui/users, /docs

    master_key = settings.master_key.encode()
    version = _version()

    @app.get(
        "/health",
        tags=["health"],
        responses={
            401: {"description": "An Authorization header with another key than the master key"},
            503: {"description": "Unhealthy: the database is unreachable or the hook's runner is not usable"},
        },
    )
    async def health(request: Request) -> JSONResponse:
        """``{"status": "ok" | "unhealthy", "version"}`` with 200 or 503, for anyone (a load balancer). With
        ``Authorization: Bearer <master_key>`` also the details: ``database`` and ``hook`` (handler, sandbox
        layers, reloads, restarts, last reload error)."""
        authorization = request.headers.get("authorization")
        if authorization is not None:
            check_master_key(authorization, master_key)  # a wrong key is a 401, not the short answer
        database: Database = request.app.state.database
        hook: HookService | None = request.app.state.hook
        database_ok = await database.recently_pinged()
        if not database_ok:
            metrics.database_error("ping")
        hook_info: dict[str, Any] | None = hook.health() if hook is not None else None
        healthy = database_ok and (hook_info is None or bool(hook_info["healthy"]))
        body: dict[str, Any] = {"status": "ok" if healthy else "unhealthy", "version": version}
        if authorization is not None:  # the details (the hook's own words among them) are the operator's only
            body |= {"database": "ok" if database_ok else "unreachable", "hook": hook_info}
        return JSONResponse(body, status_code=200 if healthy else 503)

    @app.get(
        "/metrics",
        tags=["health"],
        response_class=Response,
        responses={
            200: {"content": {METRICS_CONTENT_TYPE: {}}, "description": "Prometheus text format"},
            401: {"description": "No Authorization: Bearer <master_key> header, or another key"},
        },
    )
    async def metrics_route(request: Request) -> Response:
        """The proxy's metrics in Prometheus' text format, with ``Authorization: Bearer <master_key>``: hook call
        durations by outcome, logins by outcome, hook calls in flight and waiting, template restarts and
        reloads, host calls by method and outcome, database errors."""
        check_master_key(request.headers.get("authorization"), master_key)
        return Response(metrics.render(), media_type=METRICS_CONTENT_TYPE, headers={"Cache-Control": "no-store"})

    return app


@dataclass
class _LoginTrace:
    """What one ``/sso/callback`` ended with, for its log line and the logins counter."""

    outcome: str = "error"
    run_id: str | None = None
    subject: str | None = None
    provider: str | None = None


async def _decided_by(request: Request, user: User) -> dict[str, Any]:
    """What the dashboard says about who decided the signed-in user's values: the run of their latest
    successful login (looked up by their own user id, never taken from the request), the loaded hook's file and
    source hash (computed at import, not here), and whether they may open the run (admins)."""
    database: Database = request.app.state.database
    hook: HookService | None = request.app.state.hook
    run = await database.latest_login_run(user.id)
    source = hook.describe() if hook is not None else None
    return {
        "run": run,
        "hook_source": source,
        # the hook was re-imported after this run: the file and hash shown are of the version now loaded
        "hook_reloaded_since": run is not None and source is not None and as_utc(run.started_at) < source.loaded_at,
        "can_read_runs": user.role in ADMIN_ROLES,
    }


def _version() -> str:
    """hookjail's version, as ``/health`` reports it."""
    try:
        return importlib.metadata.version("hookjail")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _startup_failed(app: FastAPI, message: str) -> StartupError:
    # the message may carry the hook's import error (its own words): one line, bounded
    message = one_line(message)
    app.state.startup_error = message
    logger.error("cannot start: %s", message)
    return StartupError(message)


def _layers(hook: HookService) -> str:
    layers = hook.runner.report_layers()
    return one_line(", ".join(f"{name}={value}" for name, value in layers.items()) or "none reported")
