"""The FastAPI application: its lifespan (hook runner, database, rollout) and its routers put together.

Routes: the login (``/sso/key/generate``, ``/sso/callback``: :mod:`._sso_routes`), the user's pages (``/ui/``,
``/ui/logout``: :mod:`._ui`), the admin console (``/ui/hook``, ``/ui/runs``, ...: :mod:`._console`), the
management API (``/user/...``, ``/team/...``, ``/hook/runs``: :mod:`._management`), ``/health`` and
``/metrics`` (:mod:`._health`) and the OpenAPI docs at ``/docs``. The hook runner is started in the lifespan and
lives on ``app.state.runner``.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from runner import HookImportError, SandboxUnavailable

from .._db import Database
from .._errors import StartupError
from .._hook import HookService
from .._lifecycle import WorkerGuard
from .._login import LoginService
from .._text import one_line
from ..rollout import CandidateUnusable, start_rollout
from . import _console, _console_rollout, _docs, _health, _management, _sso_routes, _try, _ui
from ._bodylimit import MAX_BODY_BYTES, BodyLimit
from ._headers import install_security_headers
from ._management import install_error_handlers
from ._settings import ServeSettings
from ._web import Web, install_answer_handler

__all__ = ("create_app",)

logger = logging.getLogger("hookjail")


def create_app(settings: ServeSettings) -> FastAPI:
    """Build the proxy's ASGI application (resources start in its lifespan)."""
    app = FastAPI(
        title="hookjail",
        summary="SSO login gateway whose LiteLLM-style custom SSO handler runs sandboxed",
        lifespan=_lifespan,
        docs_url=None,  # /docs is served by the console, with Swagger UI's files from the proxy
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    install_error_handlers(app)
    install_answer_handler(app)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)  # every body capped before it is read (413)
    install_security_headers(app)
    for part in (_management, _sso_routes, _ui, _console, _console_rollout, _try, _docs, _health):
        app.include_router(part.router)
    web = Web.create(settings)
    app.state.web = web
    app.state.settings = settings
    app.state.metrics = web.metrics
    app.state.startup_error = None
    app.state.shadow = None  # the candidate's shadow runs (hook_settings.candidate), set in the lifespan
    app.state.reap_workers = False  # True in `hookjail serve`, whose process owns every worker below it
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    web: Web = app.state.web
    async with AsyncExitStack() as stack:
        hook = await _start_hook(app, stack)
        database = await _open_database(app, stack)
        config = web.settings.config
        if config.ignored:
            logger.info("ignoring LiteLLM settings hookjail does not use: %s", ", ".join(config.ignored))
        app.state.database = database
        app.state.hook = hook
        app.state.runner = hook.runner if hook is not None else None
        web.metrics.watch(hook)
        login = LoginService(
            config=config, sso=web.settings.sso, hook=hook, database=database, sessions=web.codec, metrics=web.metrics
        )
        app.state.login = login
        try:
            app.state.shadow = await start_rollout(
                stack,
                config=config,
                hook=hook,
                database=database,
                login=login,
                metrics=web.metrics,
                allow_weak_sandbox=web.settings.allow_weak_sandbox,
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


async def _start_hook(app: FastAPI, stack: AsyncExitStack) -> HookService | None:
    """The configured hook's runner, started (``None`` without ``custom_sso``)."""
    settings: ServeSettings = app.state.settings
    config = settings.config
    if config.hook is None:
        logger.warning("general_settings.custom_sso is not set: logins get LiteLLM's default values")
        return None
    hook = HookService(config, allow_weak_sandbox=settings.allow_weak_sandbox)
    # the serving process (app.state.reap_workers): no worker outlives the runner's stop
    guard = WorkerGuard() if app.state.reap_workers else None
    if guard is not None:
        stack.push_async_callback(guard.wait_gone)
    try:
        await stack.enter_async_context(hook)
    except HookImportError as exc:
        raise _startup_failed(
            app, f"general_settings.custom_sso: the hook {config.hook.dotted} cannot be used: {exc.message}"
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
    return hook


async def _open_database(app: FastAPI, stack: AsyncExitStack) -> Database:
    settings: ServeSettings = app.state.settings
    try:
        database = Database(settings.database_url)
        stack.push_async_callback(database.close)
        await database.upgrade()
    except Exception as exc:
        raise _startup_failed(app, f"database: cannot open or migrate: {exc}") from exc
    return database


def _startup_failed(app: FastAPI, message: str) -> StartupError:
    # the message may carry the hook's import error (its own words): one line, bounded
    message = one_line(message)
    app.state.startup_error = message
    logger.error("cannot start: %s", message)
    return StartupError(message)


def _layers(hook: HookService) -> str:
    layers = hook.runner.report_layers()
    return one_line(", ".join(f"{name}={value}" for name, value in layers.items()) or "none reported")
