"""End to end in a real browser (Debian chromium via playwright) against the real OpenID provider."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Response

from tests.proxy.harness import MASTER_KEY, REPO, Proxy, ProxyFactory

pytestmark = pytest.mark.e2e


RAISING_HOOK = """
def custom_sso_handler(userIDPInfo):
    raise PermissionError("not in the HR directory")
"""

SLEEPING_HOOK = """
import asyncio

async def custom_sso_handler(userIDPInfo):
    await asyncio.sleep(60)
"""

INVALID_HOOK = """
def custom_sso_handler(userIDPInfo):
    return {"models": "gpt-4o", "user_id": userIDPInfo.id, "user_email": None, "user_role": "internal_user",
            "max_budget": None, "budget_duration": None}
"""

VIEWER_HOOK = """
from sdk import LitellmUserRoles, OpenID, SSOUserDefinedValues

def custom_sso_handler(userIDPInfo: OpenID) -> SSOUserDefinedValues:
    return SSOUserDefinedValues(
        models=["claude-sonnet", "gpt-4o"], user_id=userIDPInfo.id, user_email=userIDPInfo.email,
        user_role=LitellmUserRoles.INTERNAL_USER_VIEW_ONLY.value, max_budget=2.5, budget_duration="1h",
    )
"""


def sign_in(page: Page, proxy: Proxy, user: str) -> Response | None:
    """Click "Log in with SSO", sign in and consent at the IdP; returns the proxy's /sso/callback response."""
    callbacks: list[Response] = []
    page.on("response", lambda r: callbacks.append(r) if "/sso/callback" in r.url else None)
    page.goto(f"{proxy.base_url}/ui/")
    page.click("#login")
    page.fill("input[name=login]", user)
    page.fill("input[name=password]", "any-password")
    page.click("button[type=submit]")
    page.click("button:has-text('Continue')")
    page.wait_for_url(f"{proxy.base_url}/**")
    page.wait_for_load_state()
    return callbacks[-1] if callbacks else None


def has_token(context: BrowserContext) -> bool:
    return any(cookie["name"] == "token" for cookie in context.cookies())


def test_sign_in_shows_the_hooks_values_then_logout(start: ProxyFactory, page: Page, context: BrowserContext) -> None:
    proxy = start()
    sign_in(page, proxy, "alice@admin.example.com")
    assert page.url.endswith("/ui/?login=success")
    assert page.inner_text("#user-id") == "alice"
    assert page.inner_text("#user-role") == "proxy_admin"
    assert page.inner_text("#user-models") == "gpt-4o, gpt-4o-mini"
    assert page.inner_text("#user-max-budget") == "50"
    cookie = next(c for c in context.cookies() if c["name"] == "token")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"

    page.click("#logout")
    page.wait_for_selector("#logged-out")
    assert page.is_visible("#login")
    assert not has_token(context)
    assert proxy.sessions("alice") == []
    page.goto(f"{proxy.base_url}/ui/")
    assert page.is_visible("#login")


def test_email_domain_decides_the_role(start: ProxyFactory, page: Page) -> None:
    proxy = start()
    sign_in(page, proxy, "bob@example.com")
    assert page.inner_text("#user-role") == "internal_user"
    assert page.inner_text("#user-models") == "gpt-4o-mini"


def test_changed_hook_shows_new_values_on_next_login(start: ProxyFactory, browser: Browser) -> None:
    proxy = start()
    first = browser.new_context()
    try:
        page = first.new_page()
        sign_in(page, proxy, "carol@example.com")
        assert page.inner_text("#user-role") == "internal_user"
    finally:
        first.close()
    proxy.write_hook(VIEWER_HOOK)
    second = browser.new_context()
    try:
        page = second.new_page()
        sign_in(page, proxy, "carol@example.com")
        assert page.inner_text("#user-role") == "internal_user_viewer"
        assert page.inner_text("#user-models") == "claude-sonnet, gpt-4o"
        assert page.inner_text("#user-budget-duration") == "1h"
    finally:
        second.close()


@pytest.mark.parametrize(
    ("source", "status", "outcome", "reason"),
    [
        (RAISING_HOOK, 502, "raised", "failed with an error"),
        (SLEEPING_HOOK, 504, "timeout", "took too long"),
        (INVALID_HOOK, 403, "invalid", "invalid values (models)"),
    ],
    ids=["raising", "timing-out", "invalid-values"],
)
def test_failing_hook_shows_error_page_and_changes_nothing(
    start: ProxyFactory, browser: Browser, source: str, status: int, outcome: str, reason: str
) -> None:
    proxy = start(hook_settings={"timeout": 1})
    good = browser.new_context()
    try:
        sign_in(good.new_page(), proxy, "dave@example.com")
    finally:
        good.close()
    before = proxy.user("dave")
    assert before is not None

    proxy.write_hook(source)
    context = browser.new_context()
    try:
        page = context.new_page()
        callback = sign_in(page, proxy, "dave@example.com")
        assert callback is not None
        assert callback.status == status
        assert reason in page.inner_text("#reason")
        run_id = page.inner_text("#run-id")
        assert not has_token(context)
    finally:
        context.close()
    assert proxy.user("dave") == before
    run = proxy.run(run_id)
    assert run is not None
    assert run["outcome"] == outcome
    assert run["http_status"] == status


def test_admin_only_refuses_a_non_admin(start: ProxyFactory, page: Page, context: BrowserContext) -> None:
    proxy = start(general_settings={"ui_access_mode": "admin_only"})
    callback = sign_in(page, proxy, "mallory@example.com")
    assert callback is not None
    assert callback.status == 403
    assert "limited to proxy admins" in page.inner_text("#reason")
    assert not has_token(context)
    assert proxy.user("mallory") is None


def test_tampered_cookie_is_rejected(start: ProxyFactory, page: Page, context: BrowserContext) -> None:
    proxy = start()
    sign_in(page, proxy, "trent@example.com")
    token = next(c for c in context.cookies() if c["name"] == "token")
    header, payload, signature = token["value"].split(".")
    context.clear_cookies()
    context.add_cookies([{"name": "token", "value": f"{header}.{payload}.x{signature[1:]}", "url": proxy.base_url}])
    page.goto(f"{proxy.base_url}/ui/")
    assert page.is_visible("#login")
    assert not page.is_visible("#user-id")


def test_revoked_session_is_rejected(start: ProxyFactory, page: Page) -> None:
    proxy = start()
    sign_in(page, proxy, "uma@example.com")
    proxy.query("DELETE FROM ui_sessions WHERE user_id = 'uma'")
    page.goto(f"{proxy.base_url}/ui/")
    assert page.is_visible("#login")


def test_litellm_seed_handler_signs_in_a_user_created_through_the_api(
    start: ProxyFactory, page: Page, context: BrowserContext, tmp_path: Path
) -> None:
    example = tmp_path / "litellm_compat"
    shutil.copytree(REPO / "examples" / "litellm_compat", example)
    proxy = start.serve(example / "config.yaml", work_dir=tmp_path)
    created = httpx.post(
        f"{proxy.base_url}/user/new",
        json={"user_id": "olivia", "user_email": "olivia@example.com", "user_alias": "Liv"},
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
    )
    assert created.status_code == 200, created.text

    callback = sign_in(page, proxy, "olivia@example.com")
    assert callback is not None
    assert callback.status == 303
    assert page.url.endswith("/ui/?login=success")
    assert page.inner_text("#user-id") == "olivia"
    assert page.inner_text("#user-role") == "internal_user"
    assert page.inner_text("#user-max-budget") == "0.01"
    assert has_token(context)
    (run,) = proxy.query("SELECT * FROM hook_runs WHERE user_id = 'olivia'")
    assert run["outcome"] == "ok"
    calls = json.loads(run["host_calls"])
    assert [(c["method"], c["args"], c["outcome"]) for c in calls] == [("user_info", {"user_id": "olivia"}, "ok")]
    # what user_info returned inside the sandbox, as the seed prints it
    assert "_user_info from litellm DB  user_id='olivia' user_info=UserRecord(user_id='olivia'" in run["stdout"]
    assert "user_alias='Liv'" in run["stdout"]
