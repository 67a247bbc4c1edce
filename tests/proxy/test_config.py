"""config.yaml validation: key paths in errors, os.environ references, ignored LiteLLM keys, CLI overrides."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from proxy import ConfigError, load_config, serve_settings
from proxy._hook import runner_options

SEED_CONFIG = """
model_list:
  - model_name: "openai-model"
    litellm_params:
      model: "gpt-3.5-turbo"

litellm_settings:
  drop_params: True
  set_verbose: True

general_settings:
  custom_sso: custom_sso.custom_sso_handler
"""

GENERIC_ENV = {
    "GENERIC_CLIENT_ID": "client",
    "GENERIC_CLIENT_SECRET": "secret",
    "GENERIC_DISCOVERY_URL": "http://127.0.0.1:1/.well-known/openid-configuration",
    "LITELLM_MASTER_KEY": "sk-1234",
}


def write(tmp_path: Path, text: str, *, hook: bool = True) -> Path:
    if hook:
        (tmp_path / "custom_sso.py").write_text("def custom_sso_handler(user):\n    return {}\n")
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def config_error(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ or {})
    return str(caught.value)


def test_seed_config_loads_unchanged(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SEED_CONFIG), {})
    assert config.hook is not None
    assert config.hook.path == tmp_path / "custom_sso.py"
    assert config.hook.function == "custom_sso_handler"
    assert config.model_names == {"openai-model"}


def test_ignored_litellm_keys_are_listed_once(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SEED_CONFIG + "  alerting: [slack]\nrouter_settings: {a: 1}\n"), {})
    assert config.ignored == (
        "model_list[].litellm_params",
        "litellm_settings.drop_params",
        "litellm_settings.set_verbose",
        "general_settings.alerting",
        "router_settings",
    )


def test_env_references_in_ignored_keys_are_not_resolved(tmp_path: Path) -> None:
    text = SEED_CONFIG.replace('model: "gpt-3.5-turbo"', "api_key: os.environ/NOT_SET_ANYWHERE")
    load_config(write(tmp_path, text), {})


def test_unknown_hook_settings_key_names_its_path(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, SEED_CONFIG + "hook_settings:\n  timout: 3\n"))
    assert "hook_settings.timout: unknown key" in message


def test_wrong_type_names_its_path(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, SEED_CONFIG + "hook_settings:\n  memory_mb: lots\n"))
    assert "hook_settings.memory_mb" in message
    assert "'lots'" in message


def test_impossible_values_are_errors(tmp_path: Path) -> None:
    text = SEED_CONFIG + "hook_settings:\n  timeout: 0\n  policy:\n    max_budget: -1\n    allowed_roles: [boss]\n"
    message = config_error(write(tmp_path, text))
    assert "hook_settings.timeout: Input should be greater than 0" in message
    assert "hook_settings.policy.max_budget" in message
    assert "hook_settings.policy.allowed_roles[0]" in message


def test_host_call_settings_are_checked(tmp_path: Path) -> None:
    text = SEED_CONFIG + "hook_settings:\n  permissions: [user_info, drop_database]\n  max_host_reply_kb: 0\n"
    message = config_error(write(tmp_path, text))
    assert "hook_settings.permissions[1]" in message
    assert "'drop_database'" in message
    assert "hook_settings.max_host_reply_kb: Input should be greater than 0" in message


def test_host_calls_default_to_user_info_only(tmp_path: Path) -> None:
    settings = load_config(write(tmp_path, SEED_CONFIG), {}).hook_settings
    assert (settings.permissions, settings.max_host_calls, settings.max_host_reply_kb) == (["user_info"], 100, 1024)


def test_bool_is_not_a_number(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, SEED_CONFIG + "hook_settings:\n  max_concurrency: true\n"))
    assert "hook_settings.max_concurrency" in message


def test_missing_env_var_names_key_and_variable(tmp_path: Path) -> None:
    text = SEED_CONFIG + "hook_settings:\n  env:\n    HR_TOKEN: os.environ/HR_TOKEN\n"
    message = config_error(write(tmp_path, text))
    assert "hook_settings.env.HR_TOKEN: environment variable HR_TOKEN is not set" in message


def test_env_reference_is_resolved(tmp_path: Path) -> None:
    text = SEED_CONFIG + "hook_settings:\n  env:\n    HR_TOKEN: os.environ/HR_TOKEN\n    PLAIN: x\n"
    config = load_config(write(tmp_path, text), {"HR_TOKEN": "t0ken"})
    assert config.env == {"HR_TOKEN": "t0ken", "PLAIN": "x"}


def test_missing_hook_file_is_an_error(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, SEED_CONFIG, hook=False))
    assert "general_settings.custom_sso: no file custom_sso.py" in message


def test_custom_sso_must_be_module_dot_function(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, "general_settings:\n  custom_sso: custom_sso\n"))
    assert "general_settings.custom_sso" in message


def test_ui_access_mode_is_checked(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, SEED_CONFIG + "  ui_access_mode: admins\n"))
    assert "general_settings.ui_access_mode" in message


def test_files_are_resolved_relative_to_config(tmp_path: Path) -> None:
    (tmp_path / "allow.csv").write_text("a@example.com\n")
    config = load_config(write(tmp_path, SEED_CONFIG + "hook_settings:\n  files: [allow.csv]\n"), {})
    assert config.read_paths == (str(tmp_path / "allow.csv"),)


def test_missing_data_file_names_its_index(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, SEED_CONFIG + "hook_settings:\n  files: [nope.csv]\n"))
    assert "hook_settings.files[0]: nope.csv does not exist" in message


def test_hook_settings_map_onto_runner_options(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("x\n")
    settings = {
        "timeout": 3,
        "memory_mb": 128,
        "cpu_seconds": 1.5,
        "max_concurrency": 2,
        "network": "allow",
        "sandbox": "permissive",
        "env": {"A": "b"},
        "files": ["data.csv"],
        "max_host_calls": 20,
        "max_host_reply_kb": 64,
    }
    config = load_config(write(tmp_path, SEED_CONFIG + yaml.safe_dump({"hook_settings": settings})), {})
    spec, limits, sandbox = runner_options(config)
    assert (limits.max_host_calls, limits.max_host_reply_bytes) == (20, 64 * 1024)
    assert spec.function == "custom_sso_handler"
    assert spec.adapter == "sdk._worker:openid_from_dict"
    assert (limits.timeout, limits.memory_mb, limits.cpu_seconds, limits.max_concurrency) == (3, 128, 1.5, 2)
    assert sandbox.network is True
    assert sandbox.strict is False
    assert dict(sandbox.env) == {"A": "b"}
    assert sandbox.read_paths == (str(tmp_path / "data.csv"),)


def test_allow_weak_sandbox_flag_relaxes_strict(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SEED_CONFIG), {})
    assert runner_options(config)[2].strict is True
    assert runner_options(config, allow_weak_sandbox=True)[2].strict is False


def test_cli_overrides_win_and_are_validated(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SEED_CONFIG + "hook_settings:\n  timeout: 5\n"), {})
    assert config.with_hook_settings(timeout=1.5).hook_settings.timeout == 1.5
    with pytest.raises(ConfigError, match=r"hook_settings\.memory_mb"):
        config.with_hook_settings(memory_mb=-1)


def test_master_key_is_required_to_serve(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SEED_CONFIG), {})
    env = {k: v for k, v in GENERIC_ENV.items() if k != "LITELLM_MASTER_KEY"}
    with pytest.raises(ConfigError, match=r"general_settings\.master_key: required"):
        serve_settings(config, env)


def test_master_key_env_reference_must_be_set_to_serve(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SEED_CONFIG + "  master_key: os.environ/MY_KEY\n"), {})
    with pytest.raises(ConfigError, match=r"general_settings\.master_key: environment variable MY_KEY"):
        serve_settings(config, GENERIC_ENV)
    assert serve_settings(config, GENERIC_ENV | {"MY_KEY": "k"}).master_key == "k"


def test_default_database_is_sqlite_beside_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SEED_CONFIG), {})
    assert serve_settings(config, GENERIC_ENV).database_url == f"sqlite+aiosqlite:///{tmp_path}/hookjail.db"


def test_postgres_url_gets_the_async_driver(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SEED_CONFIG), {})
    settings = serve_settings(config, GENERIC_ENV, database_url="postgresql://u:p@db:5432/hj")
    assert settings.database_url == "postgresql+asyncpg://u:p@db:5432/hj"


def test_no_sso_provider_is_an_error(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SEED_CONFIG), {})
    with pytest.raises(ConfigError, match="no SSO provider configured"):
        serve_settings(config, {"LITELLM_MASTER_KEY": "k"})


def test_generic_provider_needs_endpoints_or_discovery(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SEED_CONFIG), {})
    env = {"LITELLM_MASTER_KEY": "k", "GENERIC_CLIENT_ID": "c", "GENERIC_CLIENT_SECRET": "s"}
    with pytest.raises(ConfigError, match="GENERIC_AUTHORIZATION_ENDPOINT is not set"):
        serve_settings(config, env)


def test_bad_session_duration_is_an_error(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SEED_CONFIG), {})
    with pytest.raises(ConfigError, match="LITELLM_UI_SESSION_DURATION"):
        serve_settings(config, GENERIC_ENV | {"LITELLM_UI_SESSION_DURATION": "forever"})


def test_cli_config_error_exits_2_before_listening(tmp_path: Path) -> None:
    path = write(tmp_path, SEED_CONFIG + "hook_settings:\n  timeout: -3\n")
    result = subprocess.run(  # noqa: PLW1510 (the exit code is the subject)
        [sys.executable, "-m", "proxy", "--config", str(path), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "hook_settings.timeout" in result.stderr


def test_cli_help_documents_every_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    for flag in (
        "--config",
        "--host",
        "--port",
        "--hook-timeout",
        "--hook-memory-mb",
        "--hook-cpu-seconds",
        "--hook-concurrency",
        "--allow-weak-sandbox",
        "--database-url",
    ):
        assert flag in result.stdout
    assert "default: 4000" in result.stdout
