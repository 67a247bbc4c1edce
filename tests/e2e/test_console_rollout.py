"""Safe rollout in the admin console, in a real browser (Debian chromium via playwright) against the real OpenID
provider: a candidate that grants more than the live hook runs in the shadow of a login; the user gets the live
values, and an admin sees the login listed as differing on ``user_role``, follows it to the run's candidate
block, then to the versions page and the diff of the two versions. No page breaks the Content-Security-Policy."""

from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import BrowserContext, Locator, Page

from tests.browser import Console
from tests.e2e.test_browser import sign_in
from tests.proxy.harness import DOMAIN_HOOK, Proxy, ProxyFactory, write_config, write_hook

pytestmark = pytest.mark.e2e

#: The live hook (DOMAIN_HOOK) with every user a proxy_admin.
GENEROUS_CANDIDATE = DOMAIN_HOOK.replace(
    "user_role=role.value,", 'user_role="proxy_admin",  # everyone an admin: the change being tried out'
)


@pytest.fixture
def page(context: BrowserContext, console: Console) -> Page:
    """A page whose console messages and errors ``console`` keeps."""
    return console.watch(context.new_page())


def test_a_generous_candidate_is_shown_differing_and_grants_nothing(
    start: ProxyFactory, page: Page, console: Console
) -> None:
    assert GENEROUS_CANDIDATE != DOMAIN_HOOK
    directory = start.base / "proxy"
    config = write_config(directory, hook_settings={"candidate": "candidate_sso.custom_sso_handler"})
    write_hook(directory / "candidate_sso.py", GENEROUS_CANDIDATE)
    proxy = start.serve(config)

    run_id = _bob_signs_in_with_the_live_values(page, proxy)
    _admin_opens_the_candidate_page(page, proxy)
    _wait_for_both_shadow_runs(page)
    differing = _assert_bob_listed_as_differing(page, run_id)
    _assert_run_page_shows_the_candidate(page, proxy, differing, run_id)
    _assert_versions_and_their_diff(page, proxy)

    user = proxy.user("bob")
    assert user is not None and user["role"] == "internal_user"
    assert console.csp_violations() == [], console.messages


def _bob_signs_in_with_the_live_values(page: Page, proxy: Proxy) -> str:
    """bob signs in: the live hook makes him an internal_user, and so he is (the candidate granted nothing).
    Returns the id of his run."""
    sign_in(page, proxy, "bob@example.com")
    assert page.inner_text("#user-role") == "internal_user"
    user = proxy.user("bob")
    assert user is not None and user["role"] == "internal_user"
    (bob_run,) = proxy.query("SELECT run_id, decided_values FROM hook_runs WHERE user_id = 'bob'")
    assert json.loads(bob_run["decided_values"])["user_role"] == "internal_user"
    run_id: str = bob_run["run_id"]
    return run_id


def _admin_opens_the_candidate_page(page: Page, proxy: Proxy) -> None:
    """boss (an admin) signs in, follows the console link, then the console's Candidate page."""
    page.context.clear_cookies()
    sign_in(page, proxy, "boss@admin.example.com")
    assert page.inner_text("#user-role") == "proxy_admin"
    page.click("#console-link")
    page.wait_for_url(f"{proxy.base_url}/ui/hook")
    page.click("#console-nav >> text=Candidate")
    page.wait_for_url(f"{proxy.base_url}/ui/candidate")
    assert page.inner_text("#candidate-handler") == "candidate_sso.custom_sso_handler"


def _wait_for_both_shadow_runs(page: Page) -> None:
    """The shadow runs are in the background: reload until both logins' are in (bob differs, boss agrees)."""
    deadline = time.monotonic() + 10
    while page.locator("#candidate-runs").count() == 0 or page.inner_text("#candidate-runs") != "2":
        assert time.monotonic() < deadline, page.inner_text("main")
        page.wait_for_timeout(100)
        page.reload()


def _assert_bob_listed_as_differing(page: Page, run_id: str) -> Locator:
    """The candidate page lists bob's login (only) as differing on ``user_role``; returns the differing rows."""
    assert page.inner_text("#candidate-rate") == "50.0 %"
    rows = page.locator("#candidate-differing tr.differing")
    assert rows.count() == 1
    assert rows.first.locator("a.run-link").inner_text() == run_id
    assert rows.first.locator(".differing-subject").inner_text() == "bob"
    assert rows.first.locator(".differing-fields").inner_text() == 'user_role: "internal_user" → "proxy_admin"'
    assert page.locator("#candidate-fields tr.candidate-field").all_inner_texts() == ["user_role\t1\t50.0 %"]
    return rows


def _assert_run_page_shows_the_candidate(page: Page, proxy: Proxy, differing: Locator, run_id: str) -> None:
    """The run's page: the live version, and the candidate's block with its per-field diff."""
    differing.first.locator("a.run-link").click()
    page.wait_for_url(f"{proxy.base_url}/ui/runs/{run_id}")
    assert page.inner_text("#run-user-id") == "bob"
    assert page.inner_text("#run-user-role") == "internal_user"
    assert page.is_visible("#run-candidate")
    assert page.inner_text("#candidate-outcome") == "ok"
    assert page.inner_text("#candidate-verdict") == "differs on user_role"
    assert page.locator("#candidate-diff tr.candidate-diff-row").all_inner_texts() == [
        'user_role\t"internal_user"\t"proxy_admin"'
    ]
    assert '"user_role": "proxy_admin"' in page.inner_text("#candidate-values")


def _assert_versions_and_their_diff(page: Page, proxy: Proxy) -> None:
    """The versions page marks both; the diff between them shows the one changed line."""
    page.click("#run-version a")
    page.wait_for_url(f"{proxy.base_url}/ui/versions#version-*")
    assert page.locator("#versions tr.version").count() == 2
    assert page.locator("#versions .version-live").count() == 1
    assert page.locator("#versions .version-candidate").count() == 1
    page.goto(f"{proxy.base_url}/ui/candidate")
    page.click("#candidate-diff-link")
    page.wait_for_url(f"{proxy.base_url}/ui/versions/diff?**")
    assert page.locator("#diff .diff-del").all_inner_texts() == ["-        user_role=role.value,"]
    assert page.locator("#diff .diff-add").all_inner_texts() == [
        '+        user_role="proxy_admin",  # everyone an admin: the change being tried out'
    ]
