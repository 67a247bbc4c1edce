"""LiteLLM's and fastapi-sso's module names resolve to the sdk inside the worker, and only there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runner import HookImportError
from sdk.testing import run_hook

from .conftest import hook

pytestmark = pytest.mark.anyio

USER = {"id": "alice", "email": "alice@example.com", "provider": "generic"}
REPO = Path(__file__).resolve().parents[2]


async def _seen() -> dict[str, object]:
    result = await run_hook(hook("compat", "custom_sso_handler"), USER)
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


async def test_litellm_functions_are_the_sdks_host_calls() -> None:
    assert (await _seen())["same_functions"] == [True, True, True, True]


async def test_litellm_types_are_the_sdks() -> None:
    assert (await _seen())["same_types"] == [True, True, True]


async def test_handler_receives_an_openid_object() -> None:
    seen = await _seen()
    assert (seen["argument_type"], seen["argument_is_openid"], seen["email_attribute"]) == (
        "OpenID",
        True,
        "alice@example.com",
    )


async def test_openid_model_dump_has_fastapi_ssos_fields() -> None:
    assert (await _seen())["dumped"] == {
        "id": "alice",
        "email": "alice@example.com",
        "first_name": None,
        "last_name": None,
        "display_name": None,
        "picture": None,
        "provider": "generic",
        "email_verified": None,  # hookjail's addition (the IdP's claim), optional for LiteLLM handlers
    }


async def test_real_fastapi_sso_is_not_imported_in_the_worker() -> None:
    assert (await _seen())["modules"] == [
        "fastapi_sso",
        "fastapi_sso.sso",
        "fastapi_sso.sso.base",
        "litellm",
        "litellm.proxy",
        "litellm.proxy._types",
        "litellm.proxy.management_endpoints",
        "litellm.proxy.management_endpoints.internal_user_endpoints",
        "litellm.proxy.management_endpoints.team_endpoints",
    ]


async def test_unprovided_litellm_module_fails_import_with_a_clear_message() -> None:
    with pytest.raises(HookImportError, match=r"litellm\.proxy\.proxy_server.*inside hookjail's sandbox"):
        await run_hook(hook("unknown_litellm", "custom_sso_handler"), USER)


def test_importing_the_adapter_outside_the_worker_changes_no_import() -> None:
    code = (
        "import sys, sdk._worker, fastapi_sso.sso.base as base; "
        "print(base.__file__ is not None and 'site-packages' in base.__file__, hasattr(base, 'SSOBase'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60, cwd=REPO
    )
    assert result.stdout.split() == ["True", "True"]
