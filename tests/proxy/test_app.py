"""The ASGI app in-process (no hook, no IdP round trip): pages, cookies and error paths."""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from proxy._db import Database, RunRecord, utcnow
from proxy._hook import hook_source
from proxy.cli import version
from tests.proxy.inprocess import asgi_client, bare_app, session_cookie

pytestmark = pytest.mark.anyio

MASTER_KEY = "sk-in-process"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    async with bare_app(tmp_path, MASTER_KEY, PROXY_BASE_URL="https://hookjail.example.com") as application:
        yield application


def client(app: FastAPI, token: str | None = None) -> httpx.AsyncClient:
    return asgi_client(app, "https://hookjail.example.com", token=token)


async def signed_in(app: FastAPI, user_id: str = "alice") -> str:
    run = RunRecord(run_id="r1", started_at=utcnow(), outcome="ok", duration_ms=1, subject=user_id, provider="x")
    return await session_cookie(app, MASTER_KEY, run, user_id=user_id, session_id="sess-1", models=["gpt-4o"])


async def test_runner_is_on_app_state_and_health_says_no_hook(app: FastAPI) -> None:
    assert app.state.runner is None
    async with client(app) as http:
        response = await http.get("/health", headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": version(), "database": "ok", "hook": None}


async def test_public_health_is_only_the_status_and_version(app: FastAPI) -> None:
    async with client(app) as http:
        response = await http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": version()}


@pytest.mark.parametrize("authorization", ["Bearer sk-wrong", f"Basic {MASTER_KEY}", MASTER_KEY, "Bearer "])
async def test_health_details_with_a_wrong_key_are_a_401(app: FastAPI, authorization: str) -> None:
    async with client(app) as http:
        response = await http.get("/health", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert set(response.json()) == {"error"}


async def test_public_health_of_an_unreachable_database_is_a_bare_503(app: FastAPI) -> None:
    database: Database = app.state.database

    async def unreachable() -> bool:
        return False

    database.ping = unreachable  # type: ignore[method-assign]
    async with client(app) as http:
        public = await http.get("/health")
        details = await http.get("/health", headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert (public.status_code, public.json()) == (503, {"status": "unhealthy", "version": version()})
    assert (details.status_code, details.json()["database"]) == (503, "unreachable")


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


# --- the dashboard says which hook run decided the values; an admin's session reads that run ---------------


async def logged_in(
    app: FastAPI,
    user_id: str,
    *,
    role: str = "internal_user",
    run_id: str,
    duration_ms: float = 12.34,
    fallback: str | None = None,
    started_at: datetime | None = None,
) -> str:
    """A login as the proxy records it (user, run with HTTP 303, session); returns the session cookie."""
    run = RunRecord(
        run_id=run_id,
        started_at=started_at or utcnow(),
        outcome="raised" if fallback else "ok",
        error="boom" if fallback else None,
        duration_ms=duration_ms,
        subject=user_id,
        provider="generic",
        user_id=user_id,
        fallback=fallback,
        http_status=303,
    )
    return await session_cookie(app, MASTER_KEY, run, user_id=user_id, session_id=f"sess-{run_id}", role=role)


def shown(page: str, element_id: str) -> str | None:
    found = re.search(rf'<dd id="{element_id}"[^>]*>([^<]*)</dd>', page)
    return html.unescape(found.group(1)) if found else None


async def test_dashboard_shows_the_run_of_the_users_latest_login(app: FastAPI) -> None:
    earlier = utcnow() - timedelta(minutes=5)
    await logged_in(app, "alice", run_id="a-old", started_at=earlier, duration_ms=99)
    token = await logged_in(app, "alice", run_id="a-new", duration_ms=12.34)
    await logged_in(app, "bob", run_id="b-newest")  # someone else's later login is not alice's
    database: Database = app.state.database
    await database.record_run(  # a later failed run that named alice signed no one in
        RunRecord(
            run_id="a-failed",
            started_at=utcnow(),
            outcome="raised",
            duration_ms=1,
            subject="alice",
            provider="generic",
            user_id="alice",
            http_status=502,
        )
    )
    async with client(app, token) as http:
        page = (await http.get("/ui/", params={"run_id": "b-newest"})).text  # a query parameter changes nothing
    assert shown(page, "run-id") == "a-new"
    assert shown(page, "hook-duration-ms") == "12.3"
    assert 'id="hook-decided"' in page
    assert 'id="idp-defaults"' not in page
    assert 'id="run-link"' not in page  # not an admin
    assert shown(page, "user-id") == "alice"


async def test_dashboard_says_when_the_idp_defaults_were_used(app: FastAPI) -> None:
    token = await logged_in(app, "carol", run_id="c1", fallback="idp_defaults")
    async with client(app, token) as http:
        page = (await http.get("/ui/")).text
    assert 'id="idp-defaults"' in page
    assert "idp_defaults" in page
    assert "(raised)" in page
    assert shown(page, "run-id") == "c1"


@pytest.mark.parametrize("role", ["proxy_admin", "proxy_admin_viewer"])
async def test_an_admins_dashboard_links_the_run_and_the_session_reads_it(app: FastAPI, role: str) -> None:
    token = await logged_in(app, "root", role=role, run_id="r-admin")
    async with client(app, token) as http:
        page = (await http.get("/ui/")).text
        link = re.search(r'<a id="run-link" href="([^"]+)"', page)
        assert link, page
        assert link.group(1) == "/hook/runs/r-admin"
        run = await http.get(link.group(1))
        listed = await http.get("/hook/runs", params={"user_id": "root"})
    assert run.status_code == 200, run.text
    assert run.json()["run_id"] == "r-admin"
    assert run.json()["duration_ms"] == 12.34
    assert listed.status_code == 200
    assert [r["run_id"] for r in listed.json()["runs"]] == ["r-admin"]


async def test_a_non_admin_session_cannot_read_runs(app: FastAPI) -> None:
    token = await logged_in(app, "alice", run_id="a1")
    async with client(app, token) as http:
        one = await http.get("/hook/runs/a1")
        many = await http.get("/hook/runs")
        users = await http.get("/user/list")
    assert one.status_code == 401
    assert many.status_code == 401
    assert users.status_code == 401


async def test_an_admin_session_reads_runs_only(app: FastAPI) -> None:
    token = await logged_in(app, "root", role="proxy_admin", run_id="r1")
    async with client(app, token) as http:
        users = await http.get("/user/list")  # the rest of the management API wants the master key
        wrong_key = await http.get("/hook/runs/r1", headers={"Authorization": "Bearer sk-wrong"})
        right_key = await http.get("/hook/runs/r1", headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert users.status_code == 401
    assert wrong_key.status_code == 401  # a bearer is judged alone
    assert right_key.status_code == 200


async def test_a_logged_out_or_demoted_admin_session_cannot_read_runs(app: FastAPI) -> None:
    token = await logged_in(app, "root", role="proxy_admin", run_id="r1")
    database: Database = app.state.database
    async with database.transaction() as rows:
        user = await rows.user("root")
        assert user is not None
        user.role = "internal_user"
    async with client(app, token) as http:
        demoted = await http.get("/hook/runs/r1")
    assert demoted.status_code == 401
    token = await logged_in(app, "root2", role="proxy_admin", run_id="r2")
    async with client(app, token) as http:
        assert (await http.get("/hook/runs/r2")).status_code == 200
        await http.post("/ui/logout")
    async with client(app, token) as http:  # the copied cookie after logout
        assert (await http.get("/hook/runs/r2")).status_code == 401


async def test_without_a_hook_the_dashboard_says_so(app: FastAPI) -> None:
    token = await signed_in(app)  # its run named no user (as a login without a hook records none)
    async with client(app, token) as http:
        page = (await http.get("/ui/")).text
    assert 'id="no-hook"' in page
    assert 'id="hook-file"' not in page


def test_hook_source_hashes_a_file_and_a_package(tmp_path: Path) -> None:
    (tmp_path / "custom_sso.py").write_text("def handler(user): ...\n")
    single = hook_source(tmp_path / "custom_sso.py")
    assert single.file == "custom_sso.py"
    assert single.sha256 == hashlib.sha256(b"def handler(user): ...\n").hexdigest()
    assert single.short_sha256 == single.sha256[:12]
    package = tmp_path / "my_hook"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .rules import handler\n")
    (package / "rules.py").write_text("def handler(user): ...\n")
    (package / "sub" / "a.py").write_text("A = 1\n")
    (package / "notes.txt").write_text("not source\n")
    described = hook_source(package)
    assert described.file == "my_hook/"
    # __init__.py, rules.py, then sub/a.py (the template's order): each file's path, length and bytes
    expected = hashlib.sha256(b"hookjail package v1\0")
    for name, data in (
        ("__init__.py", b"from .rules import handler\n"),
        ("rules.py", b"def handler(user): ...\n"),
        ("sub/a.py", b"A = 1\n"),
    ):
        expected.update(b"%s\0%d\0%s" % (name.encode(), len(data), data))
    assert described.sha256 == expected.hexdigest()
