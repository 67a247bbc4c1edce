"""In a real browser (Debian chromium via playwright): a page on another origin that auto-submits a form to
``/ui/logout`` gets 403 and the victim stays signed in; the proxy's own logout button still works.

The attacker's page is served by a second local HTTP server: from ``http://localhost:<port>`` it is cross-site
(another host than the proxy's ``127.0.0.1``: the browser sends no SameSite=Lax cookie, but would accept the
response's Set-Cookie that cleared it); from ``http://127.0.0.1:<other port>`` it is same-site but cross-origin
(ports do not separate sites: the session cookie *is* sent, and the session row would be deleted).
"""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest
from playwright.sync_api import BrowserContext, Page

from tests.e2e.test_browser import has_token, sign_in
from tests.local_server import LocalServer
from tests.proxy.harness import ProxyFactory

pytestmark = pytest.mark.e2e

ATTACK = """<!doctype html>
<html><body onload="document.forms[0].submit()">
<p>You won a prize!</p>
<form method="post" action="{target}/ui/logout"><input type="hidden" name="x" value="1"></form>
</body></html>
"""


class AttackerSite(LocalServer):
    """Serves the auto-submitting page on 127.0.0.1 (reachable as ``localhost`` and ``127.0.0.1``)."""

    def __init__(self) -> None:
        self.target = ""
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = ATTACK.format(target=site.target).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(Handler)


@pytest.fixture
def attacker() -> Iterator[AttackerSite]:
    site = AttackerSite()
    try:
        yield site
    finally:
        site.close()


@pytest.mark.parametrize("attacker_host", ["localhost", "127.0.0.1"], ids=["cross-site", "same-site-other-port"])
def test_another_sites_auto_submitted_logout_is_refused(
    start: ProxyFactory, page: Page, context: BrowserContext, attacker: AttackerSite, attacker_host: str
) -> None:
    proxy = start(hook_source=None)
    attacker.target = proxy.base_url
    sign_in(page, proxy, "alice@example.com")
    assert page.inner_text("#user-id") == "alice"

    with page.expect_response(lambda r: r.url.endswith("/ui/logout") and r.request.method == "POST") as posted:
        page.goto(f"http://{attacker_host}:{attacker.port}/prize")
    response = posted.value
    assert response.status == 403
    sent = response.request.all_headers()
    assert sent["origin"] == f"http://{attacker_host}:{attacker.port}"
    if attacker_host == "127.0.0.1":
        assert "token=" in sent.get("cookie", "")  # same-site: the session cookie went along
    else:
        assert "token=" not in sent.get("cookie", "")  # cross-site: SameSite=Lax kept it back
    page.wait_for_selector("#logout-refused")
    assert has_token(context)
    assert len(proxy.sessions("alice")) == 1
    page.goto(f"{proxy.base_url}/ui/")
    assert page.inner_text("#user-id") == "alice"
    fetch_site = "same-site" if attacker_host == "127.0.0.1" else "cross-site"
    assert (
        f"refused a cross-site logout (Origin http://{attacker_host}:{attacker.port}, Sec-Fetch-Site {fetch_site})"
        in (proxy.log())
    )

    # the proxy's own logout (same origin) still works, and revokes the session
    page.goto(f"{proxy.base_url}/ui/logout")
    page.click("#logout")
    page.wait_for_selector("#logged-out")
    assert not has_token(context)
    assert proxy.sessions("alice") == []
