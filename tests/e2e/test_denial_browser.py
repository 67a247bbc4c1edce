"""In a real browser (Debian chromium via playwright): a hook's ``Deny`` reason is shown as text on the 403 page,
and an ordinary exception's text never reaches the page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import BrowserContext, Dialog, Page

from tests.e2e.test_browser import has_token, sign_in
from tests.proxy.harness import ProxyFactory

pytestmark = pytest.mark.e2e

REASON = "<script>alert(1)</script> Your account is not on the allowlist — ask #it-help <img src=x onerror=alert(2)>"

DENYING_HOOK = f"""
from sdk import Deny

def custom_sso_handler(userIDPInfo):
    raise Deny({REASON!r})
"""

SECRET_HOOK = """
def custom_sso_handler(userIDPInfo):
    raise RuntimeError("db password=hunter2")
"""


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    page = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    yield page
    assert dialogs == [], f"the page ran script: {dialogs}"


def test_a_denial_shows_the_hooks_reason_as_text_with_the_run_id(
    start: ProxyFactory, page: Page, context: BrowserContext
) -> None:
    proxy = start(hook_source=DENYING_HOOK, hook_settings={"on_failure": "idp_defaults"})
    callback = sign_in(page, proxy, "mallory@example.com")
    assert callback is not None
    assert callback.status == 403
    assert page.inner_text("h1") == "Login failed"
    assert page.inner_text("#reason") == REASON  # the markup is text ...
    assert page.locator("script").count() == 0  # ... not elements
    assert page.locator("img").count() == 0
    assert page.locator("#reason *").count() == 0
    run_id = page.inner_text("#run-id")
    assert run_id
    assert not has_token(context)
    run = proxy.run(run_id)
    assert run is not None
    # a denial is a decision: on_failure: idp_defaults does not log the user in anyway
    assert (run["outcome"], run["http_status"], run["error"], run["fallback"]) == ("denied", 403, REASON, None)
    assert proxy.user("mallory") is None


def test_an_ordinary_exception_shows_a_generic_502(start: ProxyFactory, page: Page, context: BrowserContext) -> None:
    proxy = start(hook_source=SECRET_HOOK)
    callback = sign_in(page, proxy, "grace@example.com")
    assert callback is not None
    assert callback.status == 502
    assert page.inner_text("#reason") == "The login hook failed with an error."
    content = page.content()
    assert "hunter2" not in content
    assert "RuntimeError" not in content
    run_id = page.inner_text("#run-id")
    assert not has_token(context)
    run = proxy.run(run_id)
    assert run is not None
    assert run["outcome"] == "raised"
    assert "hunter2" in run["error"]  # the operator's to read
