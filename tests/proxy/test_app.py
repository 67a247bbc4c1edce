"""The ASGI app in-process (no hook, no IdP round trip): pages, cookies and error paths."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from proxy import create_app, load_config, serve_settings
from proxy._db import Database, LoginRecord, RunRecord, utcnow
from proxy._sessions import SessionCodec
from tests.idp.provider import free_port

pytestmark = pytest.mark.anyio

MASTER_KEY = "sk-in-process"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    (tmp_path / "config.yaml").write_text("general_settings:\n  master_key: os.environ/LITELLM_MASTER_KEY\n")
    environ = {
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "GENERIC_CLIENT_ID": "client",
        "GENERIC_CLIENT_SECRET": "secret",
        # nothing listens there: the provider is unreachable
        "GENERIC_DISCOVERY_URL": f"http://127.0.0.1:{free_port()}/.well-known/openid-configuration",
        "PROXY_BASE_URL": "https://hookjail.example.com",
    }
    application = create_app(serve_settings(load_config(tmp_path / "config.yaml", environ), environ))
    async with application.router.lifespan_context(application):
        yield application


def client(app: FastAPI, token: str | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="https://hookjail.example.com",
        cookies={"token": token} if token else None,
    )


async def signed_in(app: FastAPI, user_id: str = "alice") -> str:
    database: Database = app.state.database
    codec = SessionCodec(MASTER_KEY, timedelta(hours=1))
    token, expires = codec.issue(session_id="sess-1", user_id=user_id, now=utcnow())
    login = LoginRecord(
        user_id=user_id,
        email=f"{user_id}@example.com",
        role="internal_user",
        models=["gpt-4o"],
        max_budget=None,
        budget_duration=None,
        provider="generic",
        session_id="sess-1",
        session_expires_at=expires,
    )
    run = RunRecord(run_id="r1", started_at=utcnow(), outcome="ok", duration_ms=1, subject=user_id, provider="x")
    await database.complete_login(login, run)
    return token


async def test_runner_is_on_app_state_and_health_says_no_hook(app: FastAPI) -> None:
    assert app.state.runner is None
    async with client(app) as http:
        response = await http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "hook": None}


async def test_signed_out_ui_offers_sso_login(app: FastAPI) -> None:
    async with client(app) as http:
        response = await http.get("/ui/")
    assert 'href="/sso/key/generate"' in response.text
    assert response.headers["cache-control"] == "no-store"


async def test_signed_in_ui_shows_the_user(app: FastAPI) -> None:
    token = await signed_in(app)
    async with client(app, token) as http:
        response = await http.get("/ui/")
    assert 'id="user-id">alice<' in response.text
    assert 'id="user-max-budget">unlimited<' in response.text


async def test_logout_clears_a_secure_cookie_on_https(app: FastAPI) -> None:
    token = await signed_in(app)
    async with client(app, token) as http:
        response = await http.post("/ui/logout")
    assert response.status_code == 303
    header = response.headers["set-cookie"]
    assert header.startswith("token=")
    assert "Secure" in header
    assert "HttpOnly" in header
    database: Database = app.state.database
    assert await database.get_session("sess-1") is None


async def test_page_text_is_escaped(app: FastAPI) -> None:
    token = await signed_in(app, user_id="<script>alert(1)</script>")
    async with client(app, token) as http:
        response = await http.get("/ui/")
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;" in response.text


async def test_unreachable_provider_is_an_error_page_not_a_500(app: FastAPI) -> None:
    async with client(app) as http:
        response = await http.get("/sso/key/generate")
    assert response.status_code == 502
    assert "identity provider is not reachable" in response.text


async def test_callback_without_code_is_a_401(app: FastAPI) -> None:
    async with client(app) as http:
        response = await http.get("/sso/callback", params={"error": "access_denied"})
    assert response.status_code == 401
