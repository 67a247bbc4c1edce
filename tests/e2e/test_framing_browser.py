"""In a real browser (Debian chromium via playwright): a page of another origin cannot frame the signed-in admin
UI (``frame-ancestors 'none'``), and the strict Content-Security-Policy leaves the proxy's own pages working
(their ``<style>`` block is allowed by hash)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page

from tests.e2e.test_browser import sign_in
from tests.idp.provider import free_port
from tests.proxy.harness import Proxy, ProxyFactory

pytestmark = pytest.mark.e2e


class FramingSite:
    """A second loopback http server (another origin: another port) serving a page that frames a URL."""

    def __init__(self) -> None:
        self.target = ""
        self.port = free_port()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/inner.html":
                    body = "<!doctype html><p id='inner'>framed fine</p>"
                else:
                    body = (
                        "<!doctype html><title>framer</title>"
                        f"<iframe id='victim' src='{site.target}' width='600' height='400'></iframe>"
                        "<iframe id='control' src='/inner.html'></iframe>"
                    )
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


@pytest.fixture
def framing_site() -> Iterator[FramingSite]:
    site = FramingSite()
    site.thread.start()
    try:
        yield site
    finally:
        site.server.shutdown()
        site.server.server_close()
        site.thread.join(timeout=5)


def signed_in(page: Page, proxy: Proxy) -> None:
    callback = sign_in(page, proxy, "alice@admin.example.com")
    assert callback is not None
    assert callback.status == 303
    assert page.inner_text("#user-id") == "alice"


def test_another_origin_framing_the_signed_in_ui_gets_nothing(
    start: ProxyFactory, context: BrowserContext, framing_site: FramingSite
) -> None:
    proxy = start()
    page = context.new_page()
    signed_in(page, proxy)
    framing_site.target = f"{proxy.base_url}/ui/"

    framer = context.new_page()
    console: list[str] = []
    framer.on("console", lambda message: console.append(message.text))
    with framer.expect_response(lambda r: r.url == f"{proxy.base_url}/ui/") as framed:
        framer.goto(framing_site.url)
    framer.frame_locator("#control").locator("#inner").wait_for()  # framing itself works on this page
    framer.wait_for_load_state("load")
    # the browser fetched the UI for the frame with the session cookie (same site: another port) ...
    response = framed.value
    assert response.status == 200
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.frame != framer.main_frame
    # ... and rendered none of it
    victim = framer.frame_locator("#victim")
    assert victim.locator("#user-id").count() == 0
    assert victim.locator("text=Signed in").count() == 0
    victim_frame = next(f for f in framer.frames if f is not framer.main_frame and "inner.html" not in f.url)
    assert not victim_frame.url.startswith(proxy.base_url), victim_frame.url
    assert any("frame-ancestors" in text for text in console), console


def test_the_strict_policy_leaves_the_ui_styled_and_silent(start: ProxyFactory, context: BrowserContext) -> None:
    proxy = start()
    page = context.new_page()
    violations: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("console", on_console)
    signed_in(page, proxy)
    page.reload()
    page.inner_text("#user-id")
    # the <style> block of base.html applied: the logout button is the dark blue of the stylesheet
    background = page.eval_on_selector("#logout", "button => getComputedStyle(button).backgroundColor")
    assert background == "rgb(51, 51, 85)"
    assert violations == []
