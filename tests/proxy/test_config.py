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


# --- precise errors: "did you mean", near misses of the keys hookjail reads, roles ------------------------------


def test_unknown_hook_setting_suggests_the_close_key(tmp_path: Path) -> None:
    text = SEED_CONFIG + "hook_settings:\n  timout: 3\n  policy:\n    max_budgt: 1\n"
    message = config_error(write(tmp_path, text))
    assert "hook_settings.timout: unknown key; did you mean 'timeout'?" in message
    assert "hook_settings.policy.max_budgt: unknown key; did you mean 'max_budget'?" in message


def test_unknown_hook_setting_without_a_close_key_lists_the_keys_it_takes(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, SEED_CONFIG + "hook_settings:\n  policy:\n    xyzzy: 1\n"))
    assert "hook_settings.policy.xyzzy: unknown key; hook_settings.policy takes: allowed_roles, max_budget" in message


def test_a_setting_in_the_wrong_hook_block_names_where_it_belongs(tmp_path: Path) -> None:
    text = SEED_CONFIG + "hook_settings:\n  allowed_roles: [team]\n  policy:\n    timeout: 2\n"
    message = config_error(write(tmp_path, text))
    assert "hook_settings.allowed_roles: unknown key; did you mean 'policy.allowed_roles'?" in message
    assert "hook_settings.policy.timeout: unknown key; did you mean 'hook_settings.timeout'?" in message


def test_misspelled_top_level_hook_settings_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    # LiteLLM ignores unknown top-level keys: accepted silently, the policy below would not apply
    text = SEED_CONFIG + "hook_setings:\n  policy:\n    allowed_roles: [internal_user_viewer]\n"
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), {})
    assert "hook_setings: unknown key; did you mean 'hook_settings'?" in str(caught.value)
    assert caught.value.key == "hook_setings"


@pytest.mark.parametrize(
    ("text", "key", "meant"),
    [
        ("general_setting:\n  custom_sso: custom_sso.custom_sso_handler\n", "general_setting", "'general_settings'"),
        (SEED_CONFIG + "  custom_ssso: custom_sso.other\n", "general_settings.custom_ssso", "'custom_sso'"),
        (SEED_CONFIG + "  Master_Key: sk-1\n", "general_settings.Master_Key", "'master_key'"),
        (SEED_CONFIG + "  ui_acess_mode: admin_only\n", "general_settings.ui_acess_mode", "'ui_access_mode'"),
        (SEED_CONFIG + "Hook_Settings:\n  timeout: 1\n", "Hook_Settings", "'hook_settings'"),
        (SEED_CONFIG + "model_lists: []\n", "model_lists", "'model_list'"),
    ],
)
def test_near_miss_of_a_key_hookjail_reads_is_an_error_with_a_suggestion(
    tmp_path: Path, text: str, key: str, meant: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), {})
    assert f"{key}: unknown key; did you mean {meant}?" in str(caught.value)
    assert caught.value.key == key


def test_a_general_setting_at_the_top_level_names_where_it_belongs(tmp_path: Path) -> None:
    text = "custom_sso: custom_sso.custom_sso_handler\ngeneral_settings:\n  hook_settings: {timeout: 1}\n"
    message = config_error(write(tmp_path, text))
    assert "custom_sso: unknown key; did you mean 'general_settings.custom_sso'?" in message
    assert "general_settings.hook_settings: unknown key; did you mean a top-level 'hook_settings'?" in message


LITELLM_CONFIG = """
model_list:
  - model_name: gpt-4o
    litellm_params: {model: openai/gpt-4o, api_key: os.environ/OPENAI_API_KEY}
    model_info: {mode: chat}
litellm_settings: {drop_params: true, callbacks: [otel]}
router_settings: {routing_strategy: simple-shuffle}
environment_variables: {REDIS_HOST: localhost}
callback_settings: {otel: {message_logging: false}}
guardrails: []
credential_list: []
mcp_servers: {}
files_settings: []
finetune_settings: []
vector_store_registry: []
include: []
router_setings: {}
my_company_notes: anything
general_settings:
  custom_sso: custom_sso.custom_sso_handler
  master_key: os.environ/LITELLM_MASTER_KEY
  database_url: os.environ/DATABASE_URL
  ui_access_mode: admin_only
  custom_auth: auth.user_api_key_auth
  custom_key_generate: keys.generate
  custom_ui_sso_sign_in_handler: ui.handler
  alerting: [slack]
  alertin: [slack]
  proxy_batch_write_at: 60
  database_connection_pool_limit: 10
  database_connection_timeout: 60
  allowed_routes: [/chat/completions]
  enable_jwt_auth: true
  store_model_in_db: true
  disable_master_key_return: true
  litellm_key_header_name: X-Key
  pass_through_endpoints: []
"""


def test_litellm_keys_we_do_not_read_are_still_accepted(tmp_path: Path) -> None:
    # LiteLLM's own keys, however close to ours, and typos closer to a LiteLLM key than to ours (router_setings,
    # alertin) are LiteLLM's business: accepted and listed as ignored, their os.environ references unresolved
    config = load_config(write(tmp_path, LITELLM_CONFIG), {})
    assert config.general_settings.ui_access_mode == "admin_only"
    for key in (
        "router_settings",
        "callback_settings",
        "files_settings",
        "router_setings",
        "my_company_notes",
        "general_settings.custom_auth",
        "general_settings.custom_ui_sso_sign_in_handler",
        "general_settings.alertin",
        "general_settings.database_connection_pool_limit",
        "general_settings.litellm_key_header_name",
    ):
        assert key in config.ignored


def test_invalid_role_lists_the_valid_roles(tmp_path: Path) -> None:
    text = SEED_CONFIG + "hook_settings:\n  policy:\n    allowed_roles: [internal_user, admin]\n"
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), {})
    message = str(caught.value)
    assert "hook_settings.policy.allowed_roles[1]: 'admin' is not a role; the valid roles are " in message
    assert message.endswith(
        "proxy_admin, proxy_admin_viewer, org_admin, internal_user, internal_user_viewer, team, customer"
    )
    assert caught.value.key == "hook_settings.policy.allowed_roles[1]"


def test_roles_given_as_one_string_list_the_valid_roles(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, SEED_CONFIG + "hook_settings:\n  policy:\n    allowed_roles: team\n"))
    assert "hook_settings.policy.allowed_roles: expected a list of roles (got 'team'); the valid roles are" in message
    assert "internal_user_viewer" in message


def test_config_error_carries_every_key_path(tmp_path: Path) -> None:
    text = SEED_CONFIG + "hook_settings:\n  timeout: 0\n  env:\n    A: os.environ/UNSET\n"
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), {})
    assert caught.value.keys == ("hook_settings.env.A",)  # env references are checked before the values
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, SEED_CONFIG + "hook_settings:\n  timeout: 0\n  memory_mb: 0\n"), {})
    assert caught.value.key == "hook_settings.timeout"
    assert caught.value.keys == ("hook_settings.timeout", "hook_settings.memory_mb")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "- a list\n"), {})
    assert (caught.value.key, caught.value.keys) == (None, ())


def test_missing_model_name_points_at_a_misspelling(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, "model_list:\n  - model_nme: gpt-4o\n    model_info: {}\n", hook=False))
    assert "model_list[0].model_name: required key is missing; is 'model_nme' a misspelling of it?" in message
