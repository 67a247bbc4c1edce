"""examples/allowlist: allow/deny from access.csv beside the hook, granted through hook_settings.files."""

from __future__ import annotations

import pytest

from proxy import load_config
from runner import HookRaised, Sandbox
from sdk.testing import run_hook

from .conftest import EXAMPLES, check, run_example

pytestmark = pytest.mark.anyio


async def test_allowed_domain_gets_its_role_and_models() -> None:
    result = await run_example("allowlist", {"id": "ann", "email": "ann@example.com"})
    assert (result.value["user_role"], result.value["models"], result.value["max_budget"]) == (
        "internal_user",
        ["gpt-4o-mini"],
        10.0,
    )


async def test_address_rule_wins_over_its_domain() -> None:
    result = await run_example("allowlist", {"id": "ops", "email": "ops@example.com"})
    assert (result.value["user_role"], result.value["models"]) == ("proxy_admin", ["gpt-4o", "gpt-4o-mini"])


async def test_denied_address_gets_a_clear_refusal() -> None:
    with pytest.raises(HookRaised, match=r"AccessDenied: mallory@example\.com is not allowed to use this proxy"):
        await run_example("allowlist", {"id": "mal", "email": "mallory@example.com"})


async def test_denied_subdomain_wins_over_allowed_parent() -> None:
    with pytest.raises(HookRaised, match="not allowed to use this proxy"):
        await run_example("allowlist", {"id": "cat", "email": "cat@contractors.example.com"})


async def test_unlisted_user_is_refused() -> None:
    with pytest.raises(HookRaised, match=r"AccessDenied: zed@elsewhere\.org is not on this proxy's access list"):
        await run_example("allowlist", {"id": "zed", "email": "zed@elsewhere.org"})


async def test_user_without_email_is_refused() -> None:
    with pytest.raises(HookRaised, match="needs an email address"):
        await run_example("allowlist", {"id": "noemail"})


async def test_list_is_unreadable_without_the_files_grant() -> None:
    config = load_config(EXAMPLES / "allowlist" / "config.yaml", environ={})
    assert config.hook is not None
    with pytest.raises(HookRaised, match="PermissionError"):
        await run_hook(
            f"{config.hook.path}:custom_sso_handler", {"id": "ann", "email": "ann@example.com"}, sandbox=Sandbox()
        )


def test_hookjail_check_allows_listed_user() -> None:
    report = check("allowlist", {"id": "ann", "email": "ann@example.com"})
    assert (report["outcome"], report["values"]["user_role"]) == ("ok", "internal_user")


def test_hookjail_check_shows_the_refusal() -> None:
    report = check("allowlist", {"id": "mal", "email": "mallory@example.com"})
    assert report["outcome"] == "raised"
    assert "mallory@example.com is not allowed" in report["error"]
