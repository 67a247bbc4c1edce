"""The FastAPI application: lifespan (database, migrations, hook runner) and the routes.

Routes: ``/sso/key/generate`` and ``/sso/callback`` (the login), ``/ui/`` and ``/ui/logout`` (the admin UI),
the management API (``/user/...``, ``/team/...``, ``/hook/runs``, see :mod:`proxy._management`), ``/health``,
and the OpenAPI docs at ``/docs``. The hook runner is started in the lifespan and lives on ``app.state.runner``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi_sso.sso.base import OpenID

from runner import HookImportError, SandboxUnavailable

from ._config import ProxyConfig, resolve_reference
from ._db import Database, User, as_utc, normalize_url, utcnow
from ._errors import ConfigError, StartupError
from ._hook import HookService
from ._login import LoginFailed, LoginService
from ._management import install_error_handlers, management_router
from ._pages import Pages
from ._sessions import COOKIE_NAME, DEFAULT_SESSION_DURATION, SessionCodec, SessionInvalid, parse_duration
from ._sso import ProviderUnavailable, SSOProvider, SSOSettings, sso_settings_from_env
from ._text import one_line

__all__ = ("ServeSettings", "create_app", "serve_settings")

logger = logging.getLogger("hookjail")

_SSO_COOKIES = ("sso_state", "pkce_code_verifier")


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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            hook: HookService | None = None
            if config.hook is not None:
                hook = HookService(config, allow_weak_sandbox=settings.allow_weak_sandbox)
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
            app.state.login = LoginService(
                config=config, sso=settings.sso, hook=hook, database=database, sessions=codec
            )
            yield

    app = FastAPI(
        title="hookjail",
        summary="SSO login gateway whose LiteLLM-style custom SSO handler runs sandboxed",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    install_error_handlers(app)
    app.include_router(management_router(settings.master_key))
    app.state.settings = settings
    app.state.startup_error = None

    def secure(request: Request) -> bool:
        return (settings.sso.base_url or str(request.base_url)).startswith("https://")

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

    def login_error(reason: str, *, status: int, run_id: str | None = None) -> Response:
        response = pages.error(reason, status=status, run_id=run_id)
        for name in _SSO_COOKIES:
            response.delete_cookie(name)
        return response

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=303)

    @app.get("/sso/key/generate", include_in_schema=False)
    async def sso_login(request: Request) -> Response:
        try:
            sso = await provider.create(provider.redirect_uri(str(request.base_url)))
        except ProviderUnavailable as exc:
            logger.error("identity provider unavailable: %s", exc)
            return pages.error("The identity provider is not reachable right now.", status=502)
        async with sso:
            return await sso.get_login_redirect()

    @app.get("/sso/callback", include_in_schema=False)
    async def sso_callback(request: Request) -> Response:
        error = request.query_params.get("error")
        if error:
            logger.info("identity provider refused the login: %s", one_line(error, 200))
            return login_error(f"The identity provider did not sign you in ({error[:64]}).", status=401)
        try:
            sso = await provider.create(provider.redirect_uri(str(request.base_url)))
        except ProviderUnavailable as exc:
            logger.error("identity provider unavailable: %s", exc)
            return login_error("The identity provider is not reachable right now.", status=502)
        try:
            async with sso:
                openid = await sso.verify_and_process(request)
        except Exception as exc:
            # fastapi-sso lets oauthlib, httpx and pydantic errors escape: all of them are a failed sign-in.
            detail = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
            logger.warning("sign-in with the identity provider failed: %s", one_line(str(detail)))
            return login_error("Sign-in with the identity provider failed.", status=401)
        if not isinstance(openid, OpenID):
            return login_error("Sign-in with the identity provider failed.", status=401)
        login: LoginService = request.app.state.login
        try:
            granted = await login.login(openid.model_dump(mode="json"))
        except LoginFailed as failed:
            return login_error(failed.reason, status=failed.status, run_id=failed.run_id)
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
        for name in _SSO_COOKIES:
            response.delete_cookie(name)
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

    @app.get("/health", tags=["health"])
    async def health(request: Request) -> JSONResponse:
        database: Database = request.app.state.database
        hook: HookService | None = request.app.state.hook
        database_ok = await database.ping()
        hook_info: dict[str, Any] | None = hook.health() if hook is not None else None
        healthy = database_ok and (hook_info is None or bool(hook_info["healthy"]))
        body = {
            "status": "ok" if healthy else "unhealthy",
            "database": "ok" if database_ok else "unreachable",
            "hook": hook_info,
        }
        return JSONResponse(body, status_code=200 if healthy else 503)

    return app


def _startup_failed(app: FastAPI, message: str) -> StartupError:
    # the message may carry the hook's import error (its own words): one line, bounded
    message = one_line(message)
    app.state.startup_error = message
    logger.error("cannot start: %s", message)
    return StartupError(message)


def _layers(hook: HookService) -> str:
    layers = hook.runner.report_layers()
    return one_line(", ".join(f"{name}={value}" for name, value in layers.items()) or "none reported")
