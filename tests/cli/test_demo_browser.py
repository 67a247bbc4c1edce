"""``hookjail demo`` in a real browser (Debian chromium via playwright): what a newcomer does, click by click."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

from tests.browser import browser_context, chromium
from tests.cli.demo import Demo, run_demo

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with run_demo(tmp_path_factory.mktemp("demo")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def _loopback_only(route: Route) -> None:
    # The provider's pages link a stylesheet on a CDN: keep the test off the internet.
    if re.match(r"https?://(127\.0\.0\.1|localhost)[:/]", route.request.url):
        route.continue_()
    else:
        route.abort()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    with browser_context(browser, timeout_ms=20_000, viewport={"width": 1000, "height": 700}) as context:
        context.route("**/*", _loopback_only)
        yield context


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def test_newcomer_logs_in_by_typing_an_email(demo: Demo, page: Page, tmp_path: Path) -> None:
    page.goto(demo.url)
    page.get_by_role("link", name="Log in with SSO").click()
    page.locator('input[name="sub"]').fill("dana@admin.example.com")
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(re.compile(r"/ui/\?login=success$"))
    expect(page.locator("#login-success")).to_be_visible()
    expect(page.locator("#user-id")).to_have_text("dana@admin.example.com")
    expect(page.locator("#user-role")).to_have_text("proxy_admin")
    expect(page.locator("#user-models")).to_have_text("gpt-4o, gpt-4o-mini, claude-sonnet")
    expect(page.locator("#user-max-budget")).to_have_text("100")
    expect(page.locator("#hook-file")).to_have_text("custom_sso.py")
    expect(page.locator("#hook-sha256")).to_have_text(re.compile(r"^[0-9a-f]{12}$"))
    run_id = page.locator("#run-id").inner_text()
    screenshot = tmp_path / "dashboard.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 0
    # an admin: the run's record is one click away, opened with the session alone
    page.locator("#run-link").click()
    page.wait_for_url(re.compile(rf"/hook/runs/{run_id}$"))
    record = json.loads(page.locator("body").inner_text())
    assert record["run_id"] == run_id
    assert record["user_id"] == "dana@admin.example.com"


def test_newcomer_logs_in_with_a_suggested_user(demo: Demo, page: Page) -> None:
    page.goto(demo.url)
    page.get_by_role("link", name="Log in with SSO").click()
    page.get_by_role("button", name="alice@example.com").click()
    page.wait_for_url(re.compile(r"/ui/\?login=success$"))
    expect(page.locator("#user-role")).to_have_text("internal_user")
    expect(page.locator("#user-models")).to_have_text("gpt-4o-mini")
    expect(page.locator("#hook-decided")).to_be_visible()
    expect(page.locator("#run-link")).to_have_count(0)  # not an admin
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("link", name="Log in with SSO")).to_be_visible()
