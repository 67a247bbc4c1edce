"""The minimal sdk hooks import: LiteLLM's exact names and values, and nothing of the proxy."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import proxy
import sdk
from sdk import LitellmUserRoles, OpenID, SSOUserDefinedValues
from sdk._worker import openid_from_dict
from tests.proxy.harness import REPO


def test_public_names_match_all() -> None:
    for package in (sdk, proxy):
        assert sorted(package.__all__) == sorted(
            name
            for name, value in vars(package).items()
            # submodules (sdk.testing, sdk.pytest_plugin) become attributes once imported: not re-exports
            if not name.startswith("_") and name != "annotations" and not isinstance(value, types.ModuleType)
        )


def test_roles_have_litellms_exact_values() -> None:
    assert {role.name: role.value for role in LitellmUserRoles} == {
        "PROXY_ADMIN": "proxy_admin",
        "PROXY_ADMIN_VIEW_ONLY": "proxy_admin_viewer",
        "ORG_ADMIN": "org_admin",
        "INTERNAL_USER": "internal_user",
        "INTERNAL_USER_VIEW_ONLY": "internal_user_viewer",
        "TEAM": "team",
        "CUSTOMER": "customer",
    }
    assert str.__eq__(LitellmUserRoles.PROXY_ADMIN, "proxy_admin")


def test_values_keys_are_litellms() -> None:
    assert set(SSOUserDefinedValues.__required_keys__) == {
        "models",
        "user_id",
        "user_email",
        "user_role",
        "max_budget",
        "budget_duration",
    }


def test_adapter_gives_hooks_an_openid_object() -> None:
    user = openid_from_dict({"id": "alice", "email": "alice@example.com", "added_later": 1})
    assert isinstance(user, OpenID)
    assert (user.id, user.email, user.provider) == ("alice", "alice@example.com", None)
    assert user.model_dump()["email"] == "alice@example.com"


def test_sdk_imports_nothing_of_the_proxy() -> None:
    code = "import json, sys, sdk, sdk._worker; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60, cwd=REPO
    )
    modules = json.loads(result.stdout)
    for forbidden in ("fastapi", "fastapi_sso", "sqlalchemy", "starlette", "proxy"):
        assert forbidden not in modules
