"""examples/domain_roles: email domain -> role and models, with a budget per role."""

from __future__ import annotations

import pytest

from .conftest import check, run_example

pytestmark = pytest.mark.anyio


async def test_admin_domain_gets_proxy_admin_and_every_model() -> None:
    result = await run_example("domain_roles", {"id": "ada", "email": "ada@admin.example.com"})
    assert result.value == {
        "models": ["gpt-4o", "gpt-4o-mini", "claude-sonnet"],
        "user_id": "ada",
        "user_email": "ada@admin.example.com",
        "user_role": "proxy_admin",
        "max_budget": 100.0,
        "budget_duration": "30d",
    }


async def test_company_domain_gets_internal_user_budget() -> None:
    result = await run_example("domain_roles", {"id": "bo", "email": "bo@example.com"})
    assert (result.value["user_role"], result.value["max_budget"]) == ("internal_user", 20.0)


async def test_subdomain_counts_as_its_parent_domain() -> None:
    result = await run_example("domain_roles", {"id": "cy", "email": "cy@eng.example.com"})
    assert result.value["user_role"] == "internal_user"


async def test_unknown_domain_gets_view_only_role_without_models() -> None:
    result = await run_example("domain_roles", {"id": "di", "email": "di@elsewhere.org"})
    assert (result.value["user_role"], result.value["models"], result.value["max_budget"]) == (
        "internal_user_viewer",
        [],
        0.0,
    )


async def test_domain_match_ignores_case() -> None:
    result = await run_example("domain_roles", {"id": "ed", "email": "Ed@Admin.Example.COM"})
    assert result.value["user_role"] == "proxy_admin"


def test_hookjail_check_passes_validation_and_policy() -> None:
    report = check("domain_roles", {"id": "ada", "email": "ada@admin.example.com"})
    assert (report["outcome"], report["values"]["user_role"]) == ("ok", "proxy_admin")
