from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.browser import Console, browser_context, chromium
from tests.idp.provider import idp, proxy_ports
from tests.proxy.harness import start

__all__ = ("browser", "context", "idp", "page", "proxy_ports", "start")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Debian chromium per test module (see tests/browser.py)."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile per test: its own cookies."""
    with browser_context(browser, timeout_ms=15_000) as context:
        yield context


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def console() -> Console:
    """The browser console of the pages a test watches (see :class:`tests.browser.Console`)."""
    return Console()
