"""The adapter's reading of LiteLLM's config.yaml: hookjail's rules for ``hook_settings``, plus ``handler`` and
``run_log``; LiteLLM's own keys left to LiteLLM. (No LiteLLM needed: this is hookjail's side only.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from proxy._errors import ConfigError
from proxy.litellm import ENV_CONFIG, find_config, load_settings
from tests.litellm.conftest import write_config


def settings_dir(tmp_path: Path, hook_settings: dict[str, Any], **top: Any) -> Path:
    (tmp_path / "custom_sso.py").write_text("async def custom_sso_handler(userIDPInfo):\n    return {}\n")
    return write_config(tmp_path, hook_settings, **top)


def problems(config: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ or {})
    return str(caught.value)


def test_a_valid_block_names_the_handler_and_the_run_log(tmp_path: Path) -> None:
    config = settings_dir(
        tmp_path,
        {
            "handler": "custom_sso.custom_sso_handler",
            "timeout": 3,
            "permissions": ["user_info", "new_user"],
            "run_log": "runs.jsonl",
            "env": {"HR_TOKEN": "os.environ/HR_TOKEN"},
        },
        # LiteLLM's own keys, in forms hookjail's proxy would not take, are LiteLLM's business here
        general_settings={
            "custom_sso": "proxy.litellm.custom_sso_handler",
            "ui_access_mode": {"type": "restricted_sso_group", "restricted_sso_group": "g"},
            "master_key": "os.environ/NOT_SET_ANYWHERE",
        },
        litellm_settings={"drop_params": True},
    )
    settings = load_settings(config, {"HR_TOKEN": "t0k"})
    assert settings.config.hook is not None
    assert settings.config.hook.path == tmp_path / "custom_sso.py"
    assert settings.config.hook.function == "custom_sso_handler"
    assert settings.config.hook_settings.timeout == 3
    assert settings.config.hook_settings.permissions == ["user_info", "new_user"]
    assert settings.config.env == {"HR_TOKEN": "t0k"}
    assert settings.config.model_names == {"gpt-4o"}
    assert settings.run_log == tmp_path / "runs.jsonl"


def test_the_handler_is_required(tmp_path: Path) -> None:
    text = problems(settings_dir(tmp_path, {"timeout": 3}))
    assert "hook_settings.handler: required key is missing" in text


def test_the_handler_must_exist_beside_the_config(tmp_path: Path) -> None:
    text = problems(settings_dir(tmp_path, {"handler": "elsewhere.custom_sso_handler"}))
    assert text.startswith("config.yaml: hook_settings.handler: no file elsewhere.py")


def test_the_handler_is_not_the_adapter(tmp_path: Path) -> None:
    text = problems(settings_dir(tmp_path, {"handler": "proxy.litellm.custom_sso_handler"}))
    assert "hook_settings.handler: names hookjail's adapter itself" in text


def test_every_problem_is_named_with_its_key_path(tmp_path: Path) -> None:
    text = problems(
        settings_dir(
            tmp_path,
            {
                "handler": "custom_sso.custom_sso_handler",
                "timeout": 0,
                "run_lg": "x.jsonl",
                "permissions": ["user_info", "drop_database"],
                "env": {"TOKEN": "os.environ/UNSET_VARIABLE"},
            },
        )
    )
    assert text.startswith("config.yaml: 4 problems:")
    assert "hook_settings.env.TOKEN: environment variable UNSET_VARIABLE is not set" in text
    assert "hook_settings.timeout: Input should be greater than 0 (got 0)" in text
    assert "hook_settings.run_lg: unknown key; did you mean 'run_log'?" in text
    assert "hook_settings.permissions[1]:" in text


def test_the_run_logs_directory_must_exist(tmp_path: Path) -> None:
    text = problems(settings_dir(tmp_path, {"handler": "custom_sso.custom_sso_handler", "run_log": "no/runs.jsonl"}))
    assert "hook_settings.run_log: the directory of no/runs.jsonl does not exist" in text


def test_a_misspelt_hook_settings_block_is_an_error(tmp_path: Path) -> None:
    config = settings_dir(tmp_path, {"handler": "custom_sso.custom_sso_handler"})
    config.write_text(config.read_text().replace("hook_settings:", "hook_setings:"))
    text = problems(config)
    assert "hook_setings: unknown key; did you mean 'hook_settings'?" in text


def test_the_config_file_is_found_from_the_override_or_litellms_variables(tmp_path: Path) -> None:
    config = settings_dir(tmp_path, {"handler": "custom_sso.custom_sso_handler"})
    assert find_config({ENV_CONFIG: str(config)}) == config
    assert find_config({"CONFIG_FILE_PATH": str(config)}) == config
    assert find_config({"WORKER_CONFIG": str(config)}) == config
    with pytest.raises(ConfigError, match=ENV_CONFIG):
        find_config({"WORKER_CONFIG": '{"model_list": []}'})
