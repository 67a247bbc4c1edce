"""Debian's chromium driven by playwright, as TESTING.md says: never a downloaded browser."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Debian chromium for one test module.

    Use it from a module-scoped fixture, not a session-scoped one: playwright's sync API keeps an asyncio loop
    running in the main thread while it is open, and anyio tests in later modules cannot start their own loop
    until it is closed.
    """
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def browser_context(browser: Browser, *, timeout_ms: float, **options: Any) -> Iterator[BrowserContext]:
    """A fresh browser profile (its own cookies; ``options`` as for ``Browser.new_context``) whose waits time out
    after ``timeout_ms``; closed when the block ends."""
    context = browser.new_context(**options)
    context.set_default_timeout(timeout_ms)
    try:
        yield context
    finally:
        context.close()


class Console:
    """What the browser said on its console and the page errors: a CSP violation is reported there."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def watch(self, page: Page) -> Page:
        def on_console(message: ConsoleMessage) -> None:
            if message.type in ("error", "warning"):
                self.messages.append(f"{page.url}: {message.type}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.messages.append(f"{page.url}: page error: {error}"))
        return page

    def csp_violations(self) -> list[str]:
        return [m for m in self.messages if "Content Security Policy" in m or "Refused to" in m]
