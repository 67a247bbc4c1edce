"""sdk.testing: hooks run through the real sandbox and their values are validated as the proxy does."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runner import Denial, HookImportError, HookRaised, HookTimeout, Limits, Sandbox
from sdk import Deny, ValuesInvalid
from sdk.pytest_plugin import HookTester
from sdk.testing import FakeHost, HookDenied, hook_spec, run_hook, run_hook_sync

from .conftest import HOOKS, hook
from .hooks.values import returns_good_values

pytestmark = pytest.mark.anyio

USER = {"id": "alice", "email": "alice@example.com"}

READER = """
from pathlib import Path
from sdk import SSOUserDefinedValues

def handler(user):
    role = Path(__file__).with_name("role.txt").read_text().strip()
    return SSOUserDefinedValues(
        models=[], user_id=user.id, user_email=None, user_role=role, max_budget=None, budget_duration=None
    )
"""


async def test_value_holds_the_validated_values() -> None:
    result = await run_hook(hook("values", "returns_good_values"), USER)
    assert result.value == {
        "models": ["gpt-4o-mini"],
        "user_id": "alice",
        "user_email": "alice@example.com",
        "user_role": "internal_user",
        "max_budget": 10.0,
        "budget_duration": "30d",
    }


async def test_raw_holds_what_the_hook_returned() -> None:
    result = await run_hook(hook("values", "returns_good_values"), USER)
    assert result.raw["max_budget"] == 10
    assert isinstance(result.raw["max_budget"], int)


async def test_stdout_is_captured() -> None:
    result = await run_hook(hook("values", "returns_good_values"), USER)
    assert result.stdout == "hello alice\n"


async def test_a_function_runs_from_its_module_file_in_the_sandbox() -> None:
    result = await run_hook(returns_good_values, USER)
    assert result.value["user_id"] == "alice"


async def test_hooks_run_with_every_production_layer() -> None:
    result = await run_hook(hook("values", "returns_good_values"), USER)
    assert {"landlock", "seccomp", "network_namespace", "user_namespace"} <= set(result.layers)
    assert all(result.layers[name] for name in ("landlock", "seccomp", "network_namespace"))


async def test_unknown_role_is_refused_naming_the_field() -> None:
    with pytest.raises(ValuesInvalid, match=r"user_role: must be one of the LitellmUserRoles values \(got 'root'\)"):
        await run_hook(hook("values", "returns_unknown_role"), USER)


async def test_extra_key_is_refused() -> None:
    with pytest.raises(ValuesInvalid, match="is_admin: unknown key"):
        await run_hook(hook("values", "returns_extra_key"), USER)


async def test_bad_budget_duration_is_refused() -> None:
    with pytest.raises(ValuesInvalid) as caught:
        await run_hook(hook("values", "returns_bad_duration"), USER)
    assert caught.value.field == "budget_duration"


async def test_exception_in_hook_raises_hook_raised() -> None:
    with pytest.raises(HookRaised, match="RuntimeError: no entry for alice"):
        await run_hook(hook("values", "raises"), USER)


async def test_limits_apply(tmp_path: Path) -> None:
    slow = tmp_path / "slow.py"
    slow.write_text("import time\n\ndef handler(user):\n    time.sleep(5)\n")
    with pytest.raises(HookTimeout):
        await run_hook(f"{slow}:handler", USER, limits=Limits(timeout=0.5))


async def test_hook_cant_read_a_file_beside_it_unless_granted(tmp_path: Path) -> None:
    (tmp_path / "hook.py").write_text(textwrap.dedent(READER))
    (tmp_path / "role.txt").write_text("proxy_admin\n")
    with pytest.raises(HookRaised, match="PermissionError"):
        await run_hook(f"{tmp_path / 'hook.py'}:handler", USER)


async def test_granted_file_is_readable(tmp_path: Path) -> None:
    (tmp_path / "hook.py").write_text(textwrap.dedent(READER))
    (tmp_path / "role.txt").write_text("proxy_admin\n")
    sandbox = Sandbox(read_paths=(str(tmp_path / "role.txt"),))
    result = await run_hook(f"{tmp_path / 'hook.py'}:handler", USER, sandbox=sandbox)
    assert result.value["user_role"] == "proxy_admin"


async def test_missing_function_is_an_import_error() -> None:
    with pytest.raises(HookImportError, match="no function 'nope'"):
        await run_hook(hook("values", "nope"), USER)


def test_target_without_function_is_refused() -> None:
    with pytest.raises(ValueError, match=r"path/to/custom_sso\.py:function_name"):
        hook_spec(HOOKS / "values.py")


def test_nested_function_is_refused() -> None:
    def handler(user: object) -> None: ...

    with pytest.raises(ValueError, match="top level"):
        hook_spec(handler)


def test_sync_wrapper_runs_the_hook() -> None:
    host = FakeHost()
    result = run_hook_sync(hook("values", "returns_good_values"), USER, host=host)
    assert result.value["user_id"] == "alice"


DENIER = """
from sdk import Deny

class NotListed(Deny):
    pass

def handler(user):
    print("checking", user.email)
    if user.id == "sub":
        raise NotListed(f"{user.email} is not listed")
    raise Deny(f"{user.email} is not on the allowlist — ask #it-help")
"""


def test_deny_is_the_runners_denial() -> None:
    assert issubclass(Deny, Denial)
    assert Deny("ask #it-help").reason == "ask #it-help"
    assert Deny.__doc__ is not None
    assert "403" in Deny.__doc__


async def test_a_denial_raises_hook_denied_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "hook.py").write_text(textwrap.dedent(DENIER))
    with pytest.raises(HookDenied) as denied:
        await run_hook(f"{tmp_path / 'hook.py'}:handler", USER)
    assert not isinstance(denied.value, HookRaised)
    assert denied.value.outcome == "denied"
    assert denied.value.reason == "alice@example.com is not on the allowlist — ask #it-help"
    assert denied.value.stdout == "checking alice@example.com\n"
    assert denied.value.run_id


def test_a_subclass_of_deny_denies_too_in_the_sync_wrapper(tmp_path: Path) -> None:
    (tmp_path / "hook.py").write_text(textwrap.dedent(DENIER))
    with pytest.raises(HookDenied) as denied:
        run_hook_sync(f"{tmp_path / 'hook.py'}:handler", {"id": "sub", "email": "sub@example.com"})
    assert denied.value.reason == "sub@example.com is not listed"


# --- relative paths: relative to the calling test file, not to the current directory ------------------------


async def test_a_relative_path_is_relative_to_the_test_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no hooks/ here
    result = await run_hook("hooks/values.py:returns_good_values", USER)
    assert result.value["user_id"] == "alice"


def test_a_relative_path_is_relative_to_the_test_file_in_the_sync_wrapper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_hook_sync("hooks/values.py:returns_good_values", USER).value["user_id"] == "alice"


def test_a_relative_path_through_the_hook_runner_fixture(
    hook_runner: HookTester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert hook_runner.run_sync("hooks/values.py:returns_good_values", USER).value["user_id"] == "alice"


def test_a_relative_path_is_not_the_current_directorys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a hooks/values.py in the working directory that would deny: the test file's directory wins
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks" / "values.py").write_text(
        textwrap.dedent(DENIER).replace("def handler", "def returns_good_values")
    )
    monkeypatch.chdir(tmp_path)
    assert run_hook_sync("hooks/values.py:returns_good_values", USER).value["user_id"] == "alice"


def test_a_relative_path_from_a_hook_test_run_from_another_directory(tmp_path: Path) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / "hook.py").write_text(textwrap.dedent(DENIER))
    (project / "test_hook.py").write_text(
        textwrap.dedent("""
        import pytest
        from sdk.testing import HookDenied, run_hook_sync

        def test_denies():
            with pytest.raises(HookDenied, match="ask #it-help"):
                run_hook_sync("hook.py:handler", {"id": "zed", "email": "zed@example.com"})
        """)
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(  # noqa: PLW1510 (asserted with the output)
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project / "test_hook.py")],
        cwd=elsewhere,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


async def test_an_absolute_path_is_used_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = await run_hook(f"{HOOKS / 'values.py'}:returns_good_values", USER)
    assert result.value["user_id"] == "alice"


def test_code_without_a_file_keeps_the_current_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(HOOKS)
    namespace: dict[str, object] = {"run_hook_sync": run_hook_sync, "USER": USER}
    exec(compile("result = run_hook_sync('values.py:returns_good_values', USER)", "<string>", "exec"), namespace)
    assert namespace["result"].value["user_id"] == "alice"  # type: ignore[attr-defined]
