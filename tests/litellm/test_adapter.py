"""The adapter loaded by LiteLLM's own config loader and awaited by LiteLLM's own SSO callback code.

One ``driver.py`` process (LiteLLM's interpreter, LiteLLM's ``ProxyConfig.load_config`` → ``get_instance_fn``
→ ``proxy.litellm``; each login through ``ui_sso._build_cli_sso_user_defined_values``, which awaits
``user_custom_sso`` exactly as the ``/sso/callback`` path does) serves every test here. Hostile handlers are
compared with ``hookjail check --config`` on the same handler and ``hook_settings``: same outcome, same values.

What does not run here: LiteLLM's ``/sso/callback`` HTTP route itself. LiteLLM 1.108.7 refuses it (and
``/sso/key/generate``) before any IdP round trip when it has no database, and its database layer is Prisma,
whose client is not installed by ``litellm[proxy]`` and whose query engine is downloaded at ``prisma generate``
from a host this machine cannot reach. For the same reason every host call reaches LiteLLM's function, which
fails for want of a database: the hook gets ``HostUnavailableError`` (asserted below, with LiteLLM's own error
recorded in the run log).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.litellm.conftest import REPO, Driver, litellm_env, run_log, write_config

HANDLER = """
import errno
import os
import socket
import time

from litellm.proxy._types import LitellmUserRoles, SSOUserDefinedValues
from litellm.proxy.management_endpoints.internal_user_endpoints import new_user, user_info
from sdk import Deny


def values(user_id, models, **changes):
    result = SSOUserDefinedValues(
        models=models,
        user_id=user_id,
        user_email=f"{user_id}@example.com",
        user_role=LitellmUserRoles.INTERNAL_USER.value,
        max_budget=10.0,
        budget_duration="30d",
    )
    result.update(changes)
    return result


def failure(exc):
    return f"{type(exc).__name__}:{getattr(exc, 'status_code', '')}:{getattr(exc, 'errno', '') or ''}"


async def custom_sso_handler(userIDPInfo):
    what = userIDPInfo.id
    if what == "reader":
        here = os.path.dirname(os.path.abspath(__file__))
        seen = []
        for name in ("config.yaml", "hookjail.yaml"):
            try:
                with open(os.path.join(here, name)) as file:
                    file.read()
                seen.append("read:" + name)
            except OSError as exc:
                seen.append(f"{errno.errorcode[exc.errno]}:{name}")
        return values(what, seen)
    if what == "socket":
        try:
            socket.create_connection(("127.0.0.1", 9), timeout=1).close()
            return values(what, ["connected"])
        except OSError as exc:
            return values(what, [errno.errorcode.get(exc.errno, str(exc.errno))])
    if what == "env":
        return values(what, sorted(os.environ))
    if what == "spin":
        while True:
            pass
    if what == "sleep":
        time.sleep(60)
    if what == "lookup":
        try:
            await user_info(user_id="nobody")
            return values(what, ["found"])
        except Exception as exc:
            return values(what, [failure(exc)])
    if what == "create":
        try:
            await new_user({"user_id": "made-by-hook"})
            return values(what, ["created"])
        except Exception as exc:
            return values(what, [failure(exc), str(exc)])
    if what == "flood":
        for _ in range(10):
            try:
                await user_info(user_id="nobody")
            except Exception:
                pass
        return values(what, ["flooded"])
    if what == "deny":
        raise Deny("not on the guest list")
    if what == "invalid":
        return values(what, [], user_role="root")
    if what == "greedy":
        return values(what, [], max_budget=1000.0)
    if what == "raise":
        raise RuntimeError("secret detail of the hook")
    print("hello from", what)
    return values(what, ["gpt-4o"])
"""

SETTINGS: dict[str, Any] = {
    "timeout": 2,
    "cpu_seconds": 1,
    "max_host_calls": 3,
    "permissions": ["user_info", "team_info"],
    "policy": {"max_budget": 100},
}


@pytest.fixture(scope="module")
def setup(config_dir: Path) -> Iterator[tuple[Driver, Path]]:
    (config_dir / "hostile.py").write_text(HANDLER)
    (config_dir / "hostile.py").chmod(0o644)
    config = write_config(config_dir, {**SETTINGS, "handler": "hostile.custom_sso_handler", "run_log": "runs.jsonl"})
    # the same handler and hook_settings as a hookjail config, for `hookjail check`
    hookjail = {
        "model_list": [{"model_name": "gpt-4o"}],
        "general_settings": {"custom_sso": "hostile.custom_sso_handler"},
        "hook_settings": SETTINGS,
    }
    (config_dir / "hookjail.yaml").write_text(yaml.safe_dump(hookjail))
    driver = Driver(config, litellm_env())
    try:
        yield driver, config_dir / "runs.jsonl"
    finally:
        driver.close()


@pytest.fixture(scope="module")
def driver(setup: tuple[Driver, Path]) -> Driver:
    return setup[0]


@pytest.fixture(scope="module")
def runs(setup: tuple[Driver, Path]) -> Path:
    return setup[1]


def login(driver: Driver, user: str) -> dict[str, Any]:
    return driver.login({"id": user, "email": f"{user}@example.com", "provider": "generic"})


def last_run(runs: Path, user: str) -> dict[str, Any]:
    return [record for record in run_log(runs) if record["subject"] == user][-1]


def hookjail_check(config_dir: Path, user: str) -> dict[str, Any]:
    result = subprocess.run(  # noqa: PLW1510 (the exit code is not the subject)
        [
            sys.executable,
            "-m",
            "proxy",
            "check",
            "--config",
            str(config_dir / "hookjail.yaml"),
            "--openid",
            json.dumps({"id": user, "email": f"{user}@example.com", "provider": "generic"}),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_litellm_loads_the_adapter_with_its_own_loader(driver: Driver) -> None:
    assert driver.ready["handler"] == "proxy.litellm.custom_sso_handler"
    assert driver.ready["coroutine"] is True  # LiteLLM refuses a custom_sso that is not a coroutine function
    assert "hookjail: custom_sso handler hostile.custom_sso_handler runs sandboxed" in driver.stderr()


def test_a_login_returns_litellms_type_with_the_handlers_values(driver: Driver, runs: Path) -> None:
    answer = login(driver, "alice")
    assert answer["type"] == "dict"  # LiteLLM's SSOUserDefinedValues is a TypedDict
    assert answer["values"] == {
        "models": ["gpt-4o"],
        "user_id": "alice",
        "user_email": "alice@example.com",
        "user_role": "internal_user",
        "max_budget": 10.0,
        "budget_duration": "30d",
    }
    record = last_run(runs, "alice")
    assert record["outcome"] == "ok"
    assert record["stdout"] == "hello from alice\n"
    assert record["handler"] == "hostile.custom_sso_handler"
    assert len(record["sha256"]) == 12
    assert record["duration_ms"] > 0


@pytest.mark.parametrize(
    ("user", "outcome", "models"),
    [
        ("reader", "ok", ["EACCES:config.yaml", "EACCES:hookjail.yaml"]),
        ("socket", "ok", ["EACCES"]),  # Landlock refuses the connect before the empty netns could
        ("spin", "limit", None),
        ("sleep", "timeout", None),
    ],
)
def test_a_hostile_handler_is_stopped_as_hookjail_check_stops_it(
    driver: Driver, runs: Path, config_dir: Path, user: str, outcome: str, models: list[str] | None
) -> None:
    answer = login(driver, user)
    record = last_run(runs, user)
    report = hookjail_check(config_dir, user)
    assert record["outcome"] == report["outcome"] == outcome
    if models is not None:
        assert answer["values"]["models"] == report["values"]["models"] == models
    else:
        error = answer["error"]
        assert error["module"] == "litellm.proxy._types"
        assert error["class"] == "ProxyException"
        assert error["code"] == {"limit": "502", "timeout": "504"}[outcome]
        assert f"hookjail run id {record['run_id']}" in error["message"]
        assert record["error"] == report["error"]
        assert f"hookjail: hook run {record['run_id']} {outcome}" in driver.stderr()  # LiteLLM's logger


def test_the_handler_sees_no_secret_of_litellm(driver: Driver, config_dir: Path) -> None:
    seen = login(driver, "env")["values"]["models"]
    assert "LITELLM_MASTER_KEY" not in seen
    assert seen == hookjail_check(config_dir, "env")["values"]["models"]


def test_a_raising_handler_fails_the_login_without_its_message(driver: Driver, runs: Path) -> None:
    error = login(driver, "raise")["error"]
    record = last_run(runs, "raise")
    assert (error["class"], error["code"]) == ("ProxyException", "502")
    assert "secret detail" not in error["message"]
    assert error["message"] == f"The login hook failed with an error. (hookjail run id {record['run_id']})"
    assert record["outcome"] == "raised"
    assert record["error"] == "RuntimeError: secret detail of the hook"


@pytest.mark.parametrize(
    ("user", "code", "text", "outcome"),
    [
        ("deny", "403", "not on the guest list", "denied"),
        ("invalid", "403", "The login hook returned invalid values (user_role).", "invalid"),
        ("greedy", "403", "The login hook's values break the operator's policy (max_budget).", "refused"),
    ],
)
def test_values_are_validated_strictly_and_the_policy_applies(
    driver: Driver, runs: Path, user: str, code: str, text: str, outcome: str
) -> None:
    error = login(driver, user)["error"]
    record = last_run(runs, user)
    assert error["code"] == code
    assert error["message"].startswith(text)
    assert record["outcome"] == outcome
    assert record["values"] is None


def test_a_host_call_reaches_litellms_function(driver: Driver, runs: Path) -> None:
    # LiteLLM's user_info runs (as the proxy admin) and fails for want of a database (none can run here):
    # the hook gets HostUnavailableError (503); LiteLLM's own error is in the run record, not in the hook.
    answer = login(driver, "lookup")
    assert answer["values"]["models"] == ["HostUnavailableError:503:"]
    (call,) = last_run(runs, "lookup")["host_calls"]
    assert call["method"] == "user_info"
    assert call["outcome"] == "HostUnavailable"
    assert call["litellm_error"].startswith("500: ")
    assert "Database not connected" in driver.stderr()  # LiteLLM's user_info said so, in LiteLLM's log


def test_host_calls_are_gated_by_permissions(driver: Driver, runs: Path) -> None:
    models = login(driver, "create")["values"]["models"]
    assert models[0] == "PermissionError::"
    assert "must add new_user to hook_settings.permissions" in models[1]
    (call,) = last_run(runs, "create")["host_calls"]
    assert "litellm_error" not in call  # refused before LiteLLM was called


def test_host_calls_are_capped_by_max_host_calls(driver: Driver, runs: Path) -> None:
    error = login(driver, "flood")["error"]
    record = last_run(runs, "flood")
    assert error["code"] == "502"
    assert record["outcome"] == "limit"
    assert record["error"] == "the hook made more than 3 host calls"
    assert len(record["host_calls"]) == 3


@pytest.mark.parametrize(
    ("status", "kind"),
    [(404, "NotFound"), (409, "Conflict"), (400, "Invalid"), (422, "Invalid"), (403, "PermissionError")],
)
def test_litellms_error_shapes_reach_the_hook(driver: Driver, status: int, kind: str) -> None:
    mapped = driver.request(op="map_error", status=status, message="User u9 not found")
    assert mapped["ProxyException"] == mapped["HTTPException"] == {"class": kind, "message": "User u9 not found"}


def test_litellms_own_failures_do_not_reach_the_hook(driver: Driver) -> None:
    mapped = driver.request(op="map_error", status=500, message="prisma said: password=hunter2")
    assert mapped["ProxyException"]["class"] == "HostUnavailable"
    assert "hunter2" not in json.dumps(mapped)
