"""The proxy's ASGI app in-process (lifespan and all) for httpx's ASGI transport, and what the in-process tests
write straight into the database: no ``hookjail`` process, and no login through an identity provider (the one
configured is unreachable)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI

from proxy import create_app, load_config, serve_settings
from proxy._db import Database, LoginRecord, RunRecord, normalize_url, utcnow
from proxy._directory import new_team
from proxy._sessions import SessionCodec
from tests.idp.provider import free_port
from tests.proxy.harness import MASTER_KEY

#: A config.yaml with nothing but the master key: no hook, no models.
BARE_CONFIG = "general_settings:\n  master_key: os.environ/LITELLM_MASTER_KEY\n"


def offline_environ(master_key: str = MASTER_KEY, **extra: str) -> dict[str, str]:
    """LiteLLM's variables for the generic provider, whose discovery URL nothing listens on (it is unreachable)."""
    return {
        "LITELLM_MASTER_KEY": master_key,
        "GENERIC_CLIENT_ID": "client",
        "GENERIC_CLIENT_SECRET": "secret",
        "GENERIC_DISCOVERY_URL": f"http://127.0.0.1:{free_port()}/.well-known/openid-configuration",
        **extra,
    }


@asynccontextmanager
async def running_app(
    config: Path, environ: dict[str, str], *, allow_weak_sandbox: bool = False
) -> AsyncIterator[FastAPI]:
    """The app on ``config`` and ``environ``, its lifespan entered (hook loaded, database migrated) for the block."""
    application = create_app(
        serve_settings(load_config(config, environ), environ, allow_weak_sandbox=allow_weak_sandbox)
    )
    async with application.router.lifespan_context(application):
        yield application


@asynccontextmanager
async def bare_app(directory: Path, master_key: str = MASTER_KEY, **extra_env: str) -> AsyncIterator[FastAPI]:
    """:func:`running_app` on :data:`BARE_CONFIG` (written into ``directory``) and :func:`offline_environ`."""
    config = directory / "config.yaml"
    config.write_text(BARE_CONFIG)
    async with running_app(config, offline_environ(master_key, **extra_env)) as application:
        yield application


def asgi_client(
    app: FastAPI,
    base_url: str = "http://hookjail.test",
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.AsyncClient:
    """httpx against ``app`` in-process; with ``token``, signed in by that session cookie."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=base_url,
        cookies={"token": token} if token else None,
        headers=headers,
    )


# --- the database ----------------------------------------------------------------------------------------------


@asynccontextmanager
async def sqlite_database(directory: Path, *, teams: tuple[str, ...] = ()) -> AsyncIterator[Database]:
    """A SQLite database (``hj.db`` in ``directory``) migrated to the newest schema, with the empty ``teams``
    (no alias, models, budget or members); closed when the block ends."""
    database = Database(normalize_url("sqlite:///hj.db", directory))
    await database.upgrade()
    if teams:
        async with database.transaction() as rows:
            for team_id in teams:
                await new_team(rows, team_id=team_id, team_alias=None, models=[], max_budget=None, members=[])
    yield database
    await database.close()


def login_record(
    user_id: str,
    session_id: str,
    *,
    email: str | None = None,
    role: str = "internal_user",
    models: list[str] | None = None,
    expires: datetime | None = None,
    idp_issuer: str | None = None,
    idp_subject: str | None = None,
) -> LoginRecord:
    """A login through the generic provider with no budget, as the proxy records one: ``user_id@example.com``
    unless ``email`` is given, no models unless ``models`` are, the session expiring ``expires`` (default: now)."""
    return LoginRecord(
        user_id=user_id,
        email=email or f"{user_id}@example.com",
        role=role,
        models=models or [],
        max_budget=None,
        budget_duration=None,
        provider="generic",
        session_id=session_id,
        session_expires_at=expires or utcnow(),
        idp_issuer=idp_issuer,
        idp_subject=idp_subject,
    )


async def session_cookie(
    app: FastAPI,
    master_key: str,
    run: RunRecord,
    *,
    user_id: str,
    session_id: str,
    role: str = "internal_user",
    models: list[str] | None = None,
) -> str:
    """Write a login of ``user_id`` (see :func:`login_record`) and its ``run`` as the proxy does; the session
    cookie it grants for an hour, signed with ``master_key``."""
    database: Database = app.state.database
    codec = SessionCodec(master_key, timedelta(hours=1))
    token, expires = codec.issue(session_id=session_id, user_id=user_id, now=utcnow())
    login = login_record(user_id, session_id, role=role, models=models, expires=expires)
    await database.complete_login(login, run)
    return token
