"""examples/hr_directory: an HTTP lookup with network: allow and a secret passed through hook_settings.env."""

from __future__ import annotations

import json

import pytest

from runner import HookRaised

from .conftest import Directory, check, check_process, run_example

pytestmark = pytest.mark.anyio


def settings(directory: Directory) -> dict[str, str]:
    return {"HR_DIRECTORY_URL": directory.url, "HR_API_TOKEN": directory.token}


async def test_department_decides_models_and_budget(hr_directory: Directory) -> None:
    result = await run_example(
        "hr_directory", {"id": "ann", "email": "ann@example.com"}, environ=settings(hr_directory)
    )
    assert (result.value["models"], result.value["max_budget"]) == (["gpt-4o", "gpt-4o-mini"], 50.0)


async def test_secret_from_hook_settings_env_reaches_the_directory(hr_directory: Directory) -> None:
    await run_example("hr_directory", {"id": "rita", "email": "rita@example.com"}, environ=settings(hr_directory))
    assert hr_directory.tokens_seen == [f"Bearer {hr_directory.token}"]


async def test_wrong_secret_fails_the_login(hr_directory: Directory) -> None:
    environ = {**settings(hr_directory), "HR_API_TOKEN": "stale"}
    with pytest.raises(HookRaised, match="HTTP Error 401"):
        await run_example("hr_directory", {"id": "ann", "email": "ann@example.com"}, environ=environ)


async def test_person_unknown_to_the_directory_is_refused(hr_directory: Directory) -> None:
    with pytest.raises(HookRaised, match=r"DirectoryRefused: eve@example\.com is not in the HR directory"):
        await run_example("hr_directory", {"id": "eve", "email": "eve@example.com"}, environ=settings(hr_directory))


async def test_inactive_employee_is_refused(hr_directory: Directory) -> None:
    with pytest.raises(HookRaised, match="not an active employee"):
        await run_example("hr_directory", {"id": "old", "email": "old@example.com"}, environ=settings(hr_directory))


def test_hookjail_check_passes_with_the_secret_in_the_environment(hr_directory: Directory) -> None:
    report = check("hr_directory", env=settings(hr_directory))
    assert (report["outcome"], report["values"]["max_budget"]) == ("ok", 50.0)


def test_hookjail_check_refuses_to_start_without_the_secret() -> None:
    result = check_process("hr_directory")  # --json: the config error is a JSON object on stdout
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["outcome"] == "config_error"
    assert "hook_settings.env.HR_API_TOKEN: environment variable HR_API_TOKEN is not set" in report["error"]
    assert "hook_settings.env.HR_API_TOKEN" in report["keys"]
