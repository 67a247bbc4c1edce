"""The admin console in a real browser (Debian chromium via playwright) against the real OpenID provider: an
admin signs in, opens the run list, follows a run to its page; a failed login's run id links an admin to the
run; the dry-run form posts from the page; ``/docs`` renders Swagger UI with every request kept on the proxy.
No page of the console may break the Content-Security-Policy (the browser reports it on the console)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route

from tests.browser import Console
from tests.e2e.test_browser import sign_in
from tests.proxy.harness import Proxy, ProxyFactory

pytestmark = pytest.mark.e2e

RAISING_HOOK = """
def custom_sso_handler(userIDPInfo):
    print("looking up", userIDPInfo.email)
    raise LookupError("no such employee: " + str(userIDPInfo.email))
"""


@pytest.fixture
def page(context: BrowserContext, console: Console) -> Page:
    """A page whose console messages and errors ``console`` keeps."""
    return console.watch(context.new_page())


def sign_in_again(page: Page, proxy: Proxy, user: str) -> None:
    """Start another login from a browser that may already be signed in at the IdP and at the proxy."""
    page.goto(f"{proxy.base_url}/sso/key/generate")
    for _ in range(6):
        page.wait_for_load_state()
        if page.url.startswith(proxy.base_url):
            return
        if page.locator("input[name=login]").count():
            page.fill("input[name=login]", user)
            page.fill("input[name=password]", "any-password")
            page.click("button[type=submit]")
        elif page.locator("button:has-text('Continue')").count():
            page.click("button:has-text('Continue')")
        else:
            page.wait_for_timeout(200)
    page.wait_for_url(f"{proxy.base_url}/**")


def test_admin_follows_a_run_from_the_list_to_its_page(start: ProxyFactory, page: Page, console: Console) -> None:
    proxy = start()
    sign_in(page, proxy, "bob@example.com")  # another user's run first, then the admin's own
    page.context.clear_cookies()
    sign_in(page, proxy, "boss@admin.example.com")
    assert page.inner_text("#user-role") == "proxy_admin"

    page.click("#console-link")
    page.wait_for_url(f"{proxy.base_url}/ui/hook")
    assert page.inner_text("#hook-file") == "custom_sso.py"
    assert page.inner_text("#hook-import-mode").startswith("per call")

    page.click("#console-nav >> text=Runs")
    page.wait_for_url(f"{proxy.base_url}/ui/runs")
    links = page.locator("#runs a.run-link")
    assert links.count() == 2
    assert page.is_visible("#latency-chart")
    assert page.is_visible("#latency-histogram")
    newest = links.first.inner_text()
    (boss_run,) = proxy.query("SELECT run_id FROM hook_runs WHERE user_id = 'boss'")
    assert newest == boss_run["run_id"]

    links.first.click()
    page.wait_for_url(f"{proxy.base_url}/ui/runs/{newest}")
    assert page.inner_text("#run-id") == newest
    assert page.inner_text("#run-outcome") == "ok"
    assert page.inner_text("#run-user-id") == "boss"
    assert page.inner_text("#run-email") == "boss@admin.example.com"
    assert page.inner_text("#run-stdout").strip() == "hook saw boss@admin.example.com"

    # the list filtered by outcome and user, from the form
    page.goto(f"{proxy.base_url}/ui/runs")
    page.fill("#filter-user", "bob")
    page.click("#run-filters button[type=submit]")
    page.wait_for_url(re.compile(r".*/ui/runs\?.*user=bob.*"))
    assert page.locator("#runs a.run-link").count() == 1
    page.goto(f"{proxy.base_url}/ui/runs?since=yesterday")
    assert "since: not a time" in page.inner_text("#filter-errors")

    page.goto(f"{proxy.base_url}/ui/users")
    assert page.locator("#users tr.user").count() == 2
    assert console.csp_violations() == [], console.messages


def test_a_failed_logins_run_id_links_an_admin_to_the_run(
    start: ProxyFactory, browser: Browser, page: Page, console: Console
) -> None:
    proxy = start()
    sign_in(page, proxy, "boss@admin.example.com")
    proxy.write_hook(RAISING_HOOK)

    sign_in_again(page, proxy, "boss@admin.example.com")
    assert "failed with an error" in page.inner_text("#reason")
    run_id = page.inner_text("#run-id")
    page.click("#run-link")
    page.wait_for_url(f"{proxy.base_url}/ui/runs/{run_id}")
    assert page.inner_text("#run-outcome") == "raised"
    assert page.inner_text("#run-error") == "LookupError: no such employee: boss@admin.example.com"
    assert page.inner_text("#run-stdout").strip() == "looking up boss@admin.example.com"
    assert page.inner_text("#run-http-status") == "502"

    # someone who is not signed in as an admin reads the run id as plain text
    other = browser.new_context()
    try:
        stranger = console.watch(other.new_page())
        sign_in(stranger, proxy, "carol@example.com")
        assert stranger.inner_text("#run-id")
        assert stranger.locator("#run-link").count() == 0
        stranger.goto(f"{proxy.base_url}/ui/runs/{run_id}")
        assert stranger.url == f"{proxy.base_url}/ui/"  # signed out: sent to the login page
    finally:
        other.close()
    assert console.csp_violations() == [], console.messages


def test_try_the_hook_from_the_page_writes_nothing(start: ProxyFactory, page: Page, console: Console) -> None:
    proxy = start()
    sign_in(page, proxy, "boss@admin.example.com")
    tables = ("users", "hook_runs", "ui_sessions", "team_members")
    before = {table: proxy.query(f"SELECT count(*) AS n FROM {table}")[0]["n"] for table in tables}

    page.goto(f"{proxy.base_url}/ui/hook/try")
    page.fill("#openid", '{"id": "zed", "email": "zed@admin.example.com", "provider": "generic"}')
    with page.expect_response(lambda r: r.url.endswith("/ui/hook/try") and r.request.method == "POST") as posted:
        page.click("#try-run")
    assert posted.value.status == 200
    assert posted.value.request.all_headers().get("sec-fetch-site") == "same-origin"
    assert page.inner_text("#try-outcome") == "ok"
    assert '"user_role": "proxy_admin"' in page.inner_text("#try-values")
    assert page.inner_text("#try-stdout").strip() == "hook saw zed@admin.example.com"

    after = {table: proxy.query(f"SELECT count(*) AS n FROM {table}")[0]["n"] for table in tables}
    assert after == before
    assert proxy.user("zed") is None
    assert console.csp_violations() == [], console.messages


def test_docs_render_swagger_ui_without_the_network(start: ProxyFactory, page: Page, console: Console) -> None:
    proxy = start(hook_source=None)
    requested: list[str] = []

    def only_the_proxy(route: Route) -> None:
        requested.append(route.request.url)
        if route.request.url.startswith(proxy.base_url + "/"):
            route.continue_()
        else:
            route.abort()

    page.route("**/*", only_the_proxy)
    page.goto(f"{proxy.base_url}/docs")
    page.wait_for_selector("#swagger-ui .information-container .title")
    assert "hookjail" in page.inner_text("#swagger-ui .information-container .title")
    page.wait_for_selector('#swagger-ui .opblock-summary-path[data-path="/user/new"]')
    assert page.locator("#swagger-ui .opblock").count() >= 8
    outside = [url for url in requested if not url.startswith(proxy.base_url + "/")]
    assert outside == []
    assert f"{proxy.base_url}/static/swagger-ui/swagger-ui-bundle.js" in requested
    assert console.csp_violations() == [], console.messages
