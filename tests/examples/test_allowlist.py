"""examples/allowlist: allow/deny from access.csv beside the hook, granted through hook_settings.files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from proxy import load_config
from runner import Sandbox
from sdk.testing import HookDenied, run_hook

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
    with pytest.raises(HookDenied) as denied:
        await run_example("allowlist", {"id": "mal", "email": "mallory@example.com"})
    assert denied.value.outcome == "denied"
    assert denied.value.reason == "mallory@example.com is not allowed to use this proxy (rule mallory@example.com)."


async def test_denied_subdomain_wins_over_allowed_parent() -> None:
    with pytest.raises(HookDenied) as denied:
        await run_example("allowlist", {"id": "cat", "email": "cat@contractors.example.com"})
    assert denied.value.reason.endswith("not allowed to use this proxy (rule @contractors.example.com).")


async def test_unlisted_user_is_refused() -> None:
    with pytest.raises(HookDenied) as denied:
        await run_example("allowlist", {"id": "zed", "email": "zed@elsewhere.org"})
    assert denied.value.reason.startswith("zed@elsewhere.org is not on this proxy's access list")


async def test_user_without_email_is_refused() -> None:
    with pytest.raises(HookDenied, match="needs an email address"):
        await run_example("allowlist", {"id": "noemail"})


async def test_list_is_unreadable_without_the_files_grant_so_everyone_is_refused() -> None:
    # fail closed: a clear reason for the user, the detail (PermissionError, the path) only on stderr
    config = load_config(EXAMPLES / "allowlist" / "config.yaml", environ={})
    assert config.hook is not None
    with pytest.raises(HookDenied) as denied:
        await run_hook(
            f"{config.hook.path}:custom_sso_handler", {"id": "ann", "email": "ann@example.com"}, sandbox=Sandbox()
        )
    assert denied.value.reason == "This proxy's access list cannot be read right now; ask your administrator."
    assert "PermissionError" in denied.value.stderr
    assert "access.csv" in denied.value.stderr


async def test_a_malformed_list_refuses_everyone(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "allowlist" / "custom_sso.py", tmp_path / "custom_sso.py")
    access = tmp_path / "access.csv"
    access.write_text("pattern,decision,role,models,max_budget\n@example.com,maybe,internal_user,,1\n")
    with pytest.raises(HookDenied) as denied:
        await run_hook(
            f"{tmp_path / 'custom_sso.py'}:custom_sso_handler",
            {"id": "ann", "email": "ann@example.com"},
            sandbox=Sandbox(read_paths=(str(access),)),
        )
    assert denied.value.reason == "This proxy's access list cannot be read right now; ask your administrator."
    assert "bad rule" in denied.value.stderr
    assert "maybe" not in denied.value.reason


def test_hookjail_check_allows_listed_user() -> None:
    report = check("allowlist", {"id": "ann", "email": "ann@example.com"})
    assert (report["outcome"], report["values"]["user_role"]) == ("ok", "internal_user")


def test_hookjail_check_shows_the_refusal() -> None:
    report = check("allowlist", {"id": "mal", "email": "mallory@example.com"})
    assert report["outcome"] == "denied"
    assert report["error"] == "mallory@example.com is not allowed to use this proxy (rule mallory@example.com)."
    assert report["values"] is None
