"""config.yaml: LiteLLM's format plus hookjail's ``hook_settings`` block, validated before anything listens.

Only the keys hookjail uses are validated (strictly: unknown keys, wrong types, impossible values and unset
``os.environ/NAME`` references are errors naming the key path, with a "did you mean" for a misspelt key). Every
other LiteLLM key is accepted untouched — its ``os.environ/`` references are not even resolved — and listed once
in :attr:`ProxyConfig.ignored`, so an operator's existing LiteLLM config starts unchanged.

The one exception is a near miss: a top-level or ``general_settings`` key that neither hookjail nor LiteLLM
reads but that is spelt almost like a key hookjail reads (``hook_setings``, ``general_setting``,
``general_settings.custom_ssso``), or that is a key hookjail reads put in the wrong block (a top-level
``custom_sso``). LiteLLM would ignore it too, so the operator's settings would silently not apply: it is an
error naming the key and the key meant. See :data:`LITELLM_TOP_LEVEL_KEYS` and
:data:`LITELLM_GENERAL_SETTINGS_KEYS` for the LiteLLM keys never taken for a misspelling.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from runner import DEFAULT_WORKER_UID, Limits
from sdk.contract import RoleName, error_location

from ._errors import ConfigError

__all__ = (
    "ENV_PREFIX",
    "LITELLM_GENERAL_SETTINGS_KEYS",
    "LITELLM_TOP_LEVEL_KEYS",
    "GeneralSettings",
    "HookPolicy",
    "HookSettings",
    "HookTarget",
    "ModelEntry",
    "ProxyConfig",
    "load_config",
    "resolve_reference",
)

ENV_PREFIX = "os.environ/"


HostCallName = Literal["user_info", "new_user", "add_new_member", "team_info"]
PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]


#: The runner's own defaults: ``hook_settings`` left out of config.yaml are these (one place for each number).
RUNNER_DEFAULTS = Limits()


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class HookPolicy(_Strict):
    """The operator's policy applied to the hook's validated values (a violation refuses the login).

    Attributes:
        allowed_roles: the roles a hook may hand out (``None``: any role).
        max_budget: the largest ``max_budget`` a hook may set; ``None`` (unlimited) is then refused too.
        models_must_exist: every model the hook grants must be a ``model_name`` in ``model_list``.
    """

    allowed_roles: list[RoleName] | None = None
    max_budget: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    models_must_exist: bool = False


def check_dotted(value: str) -> str:
    """``value`` if it is ``module.function`` (dotted module path, then an identifier), else ``ValueError``."""
    module, _, function = value.rpartition(".")
    if not module or not function.isidentifier() or not all(p.isidentifier() for p in module.split(".")):
        raise ValueError(f"expected 'module.function' (e.g. custom_sso.custom_sso_handler), got {value!r}")
    return value


class CandidateSettings(_Strict):
    """``hook_settings.candidate_settings``: the candidate's own limits and permissions. A key left out is the
    live hook's; the sandbox (network, env, files, worker uid) is always the live hook's."""

    timeout: PositiveSeconds | None = None
    memory_mb: Annotated[int, Field(gt=0)] | None = None
    cpu_seconds: PositiveSeconds | None = None
    max_concurrency: Annotated[int, Field(gt=0)] | None = None
    permissions: list[HostCallName] | None = None
    max_host_calls: Annotated[int, Field(ge=0, le=10_000)] | None = None
    max_host_reply_kb: Annotated[int, Field(gt=0, le=4096)] | None = None


class HookSettings(_Strict):
    """hookjail's own block: how the hook runs (maps 1:1 onto the runner's ``Limits`` and ``Sandbox``), and how
    a new version is tried out (``candidate``, ``record_inputs``)."""

    timeout: PositiveSeconds = RUNNER_DEFAULTS.timeout
    memory_mb: Annotated[int, Field(gt=0)] = RUNNER_DEFAULTS.memory_mb
    cpu_seconds: PositiveSeconds = RUNNER_DEFAULTS.cpu_seconds
    max_concurrency: Annotated[int, Field(gt=0)] = RUNNER_DEFAULTS.max_concurrency
    network: Literal["none", "allow"] = "none"
    sandbox: Literal["strict", "permissive"] = "strict"
    worker_uid: Annotated[int, Field(gt=0, lt=2**32 - 1)] | None = DEFAULT_WORKER_UID
    env: dict[str, str] = Field(default_factory=dict)
    files: list[str] = Field(default_factory=list)
    permissions: list[HostCallName] = Field(default_factory=lambda: list[HostCallName](["user_info"]))
    max_host_calls: Annotated[int, Field(ge=0, le=10_000)] = RUNNER_DEFAULTS.max_host_calls
    max_host_reply_kb: Annotated[int, Field(gt=0, le=4096)] = RUNNER_DEFAULTS.max_host_reply_bytes // 1024
    on_failure: Literal["deny", "idp_defaults"] = "deny"
    policy: HookPolicy = Field(default_factory=HookPolicy)
    #: a new version of the handler (``module.function`` beside config.yaml) run in the shadow of every login
    candidate: str | None = None
    candidate_settings: CandidateSettings = Field(default_factory=CandidateSettings)
    #: keep the OpenID each login's hook saw (personal data), for ``hookjail replay``; deleted after the retention
    record_inputs: bool = False
    record_retention_days: Annotated[int, Field(gt=0, le=3650)] = 7

    @field_validator("candidate")
    @classmethod
    def _candidate_dotted(cls, value: str | None) -> str | None:
        return None if value is None else check_dotted(value)

    def for_candidate(self) -> HookSettings:
        """These settings with ``candidate_settings`` applied: how the candidate runs."""
        overrides = {key: value for key, value in self.candidate_settings.model_dump().items() if value is not None}
        return self.model_copy(update=overrides)

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not name or "=" in name or "\0" in name:
                raise ValueError(f"{name!r} is not a valid environment variable name")
        return value


class GeneralSettings(BaseModel):
    """The keys of LiteLLM's ``general_settings`` that hookjail uses; the others are kept and ignored."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)

    custom_sso: str | None = None
    master_key: SecretStr | None = None
    database_url: str | None = None
    ui_access_mode: Literal["all", "admin_only"] = "all"

    @field_validator("custom_sso")
    @classmethod
    def _dotted(cls, value: str | None) -> str | None:
        return None if value is None else check_dotted(value)


class ModelEntry(BaseModel):
    """One ``model_list`` entry: hookjail only reads its ``model_name``."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)

    model_name: str


class HookTarget(BaseModel):
    """Where the handler lives, resolved from ``general_settings.custom_sso`` relative to config.yaml."""

    model_config = ConfigDict(frozen=True)

    path: Path
    function: str
    dotted: str


class ProxyConfig(BaseModel):
    """A validated config.yaml.

    Attributes:
        path: the config file (absolute); relative paths in it are relative to its directory.
        hook: the handler to run, or ``None`` when ``custom_sso`` is not set (logins get LiteLLM's defaults).
        candidate: ``hook_settings.candidate`` resolved like ``hook``, or ``None``.
        read_paths: ``hook_settings.files`` resolved to absolute paths.
        env: ``hook_settings.env`` with ``os.environ/`` references resolved.
        ignored: key paths of LiteLLM settings hookjail accepts but does not use.
    """

    model_config = ConfigDict(frozen=True)

    path: Path
    model_list: list[ModelEntry] = Field(default_factory=list)
    general_settings: GeneralSettings = Field(default_factory=GeneralSettings)
    hook_settings: HookSettings = Field(default_factory=HookSettings)
    hook: HookTarget | None = None
    candidate: HookTarget | None = None
    read_paths: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    ignored: tuple[str, ...] = ()

    @property
    def directory(self) -> Path:
        """The directory of config.yaml."""
        return self.path.parent

    @property
    def model_names(self) -> frozenset[str]:
        """The ``model_name`` of every ``model_list`` entry."""
        return frozenset(entry.model_name for entry in self.model_list)

    def with_hook_settings(self, **changes: Any) -> ProxyConfig:
        """Return a copy with some ``hook_settings`` replaced (CLI flags win over the file), re-validated."""
        if not changes:
            return self
        merged = {**self.hook_settings.model_dump(), **changes}
        try:
            settings = HookSettings.model_validate(merged)
        except ValidationError as exc:
            raise _error("command line", _validation_problems(exc, prefix=("hook_settings",))) from None
        return self.model_copy(update={"hook_settings": settings})


_USED_TOP_LEVEL = ("model_list", "general_settings", "hook_settings")

#: Top-level keys LiteLLM's proxy reads (litellm 1.x ``ProxyConfig.load_config``): never taken for a misspelling
#: of a key hookjail reads, however close.
LITELLM_TOP_LEVEL_KEYS = frozenset(
    {
        "model_list",
        "litellm_settings",
        "general_settings",
        "router_settings",
        "environment_variables",
        "callback_settings",
        "guardrails",
        "credential_list",
        "mcp_servers",
        "mcp_tools",
        "files_settings",
        "finetune_settings",
        "assistant_settings",
        "search_tools",
        "default_vertex_config",
        "vector_store_registry",
        "prompts",
        "policies",
        "policy_attachments",
        "agent_list",
        "include",
    }
)

#: ``general_settings`` keys LiteLLM reads (its config_settings reference and proxy_server.py): likewise.
LITELLM_GENERAL_SETTINGS_KEYS = frozenset(
    {
        "master_key",
        "database_url",
        "custom_sso",
        "ui_access_mode",
        "admin_only_routes",
        "alert_to_webhook_url",
        "alert_types",
        "alerting",
        "alerting_args",
        "alerting_threshold",
        "allow_client_side_credentials",
        "allow_requests_on_db_unavailable",
        "allow_user_auth",
        "allowed_ips",
        "allowed_routes",
        "background_health_checks",
        "completion_model",
        "custom_auth",
        "custom_key_generate",
        "custom_ui_sso_sign_in_handler",
        "database_connection_pool_limit",
        "database_connection_timeout",
        "default_team_disabled",
        "disable_adding_master_key_hash_to_db",
        "disable_master_key_return",
        "disable_prisma_schema_update",
        "disable_reset_budget",
        "disable_responses_id_security",
        "disable_retry_on_max_parallel_request_limit_error",
        "disable_spend_logs",
        "disable_spend_updates",
        "embedding_model",
        "enable_jwt_auth",
        "enable_oauth2_auth",
        "enable_oauth2_proxy_auth",
        "enforce_user_param",
        "enforced_params",
        "forward_client_headers_to_llm_api",
        "forward_openai_org_id",
        "global_max_parallel_requests",
        "health_check_details",
        "health_check_interval",
        "image_generation_model",
        "infer_model_from_keys",
        "key_management_settings",
        "key_management_system",
        "litellm_jwtauth",
        "litellm_key_header_name",
        "litellm_license",
        "max_parallel_requests",
        "max_request_size_mb",
        "max_response_size_mb",
        "maximum_spend_logs_retention_interval",
        "maximum_spend_logs_retention_period",
        "moderation_model",
        "oauth2_config_mappings",
        "pass_through_endpoints",
        "proxy_batch_polling_interval",
        "proxy_batch_write_at",
        "proxy_budget_rescheduler_max_time",
        "proxy_budget_rescheduler_min_time",
        "public_routes",
        "reject_clientside_metadata_tags",
        "role_permissions",
        "search_tools",
        "service_account_settings",
        "spend_report_frequency",
        "store_model_in_db",
        "store_prompts_in_spend_logs",
        "supported_db_objects",
        "use_azure_key_vault",
        "use_client_credentials_pass_through_routes",
        "use_google_kms",
        "use_shared_health_check",
        "use_x_forwarded_for",
        "user_api_key_cache_ttl",
        "user_header_name",
        "user_mcp_management_mode",
    }
)

#: An unknown top-level or ``general_settings`` key at least this close (:func:`difflib.get_close_matches`) to a
#: key hookjail reads, and closer to it than to any LiteLLM key, is an error.
NEAR_MISS_CUTOFF = 0.8
#: In hookjail's own blocks every unknown key is an error; a suggestion is offered down to this closeness.
_HINT_CUTOFF = 0.6

#: The roles a policy may name, in LiteLLM's order.
ROLES: tuple[str, ...] = get_args(RoleName)
#: Keys whose values are roles (their errors list the valid roles).
_ROLE_KEYS = frozenset({"allowed_roles"})

#: For each block hookjail validates, the keys it reads there and how a suggestion names them; a key that belongs
#: to another block is suggested by its full path.
_BLOCKS: dict[tuple[str, ...], dict[str, str]] = {
    (): {
        **{key: repr(key) for key in _USED_TOP_LEVEL},
        **{key: repr(f"general_settings.{key}") for key in GeneralSettings.model_fields},
    },
    ("general_settings",): {
        **{key: repr(key) for key in GeneralSettings.model_fields},
        "hook_settings": "a top-level 'hook_settings'",
    },
    ("hook_settings",): {
        **{key: repr(key) for key in HookSettings.model_fields},
        **{key: repr(f"policy.{key}") for key in HookPolicy.model_fields},
    },
    ("hook_settings", "candidate_settings"): {
        **{key: repr(key) for key in CandidateSettings.model_fields},
        **{key: repr(f"hook_settings.{key}") for key in HookSettings.model_fields if key != "candidate_settings"},
    },
    ("hook_settings", "policy"): {
        **{key: repr(key) for key in HookPolicy.model_fields},
        **{key: repr(f"hook_settings.{key}") for key in HookSettings.model_fields if key != "policy"},
    },
}

#: One problem: the key path at fault (``None``: the file as a whole) and what is wrong with it.
_Problem = tuple[str | None, str]


def read_config_file(path: str | os.PathLike[str]) -> tuple[Path, dict[Any, Any]]:
    """The config file's absolute path and its YAML mapping (an empty file is an empty mapping).

    Raises:
        ConfigError: the file cannot be read, is not YAML, or its top level is not a mapping.
    """
    config_path = Path(path).resolve()
    try:
        raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {config_path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_path.name}: not valid YAML: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{config_path.name}: the top level must be a mapping, got {type(raw).__name__}")
    return config_path, raw


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> ProxyConfig:
    """Read, resolve and validate config.yaml.

    Args:
        path: the config file.
        environ: where ``os.environ/NAME`` references are looked up (default: ``os.environ``).

    Raises:
        ConfigError: naming every offending key path.
    """
    env = os.environ if environ is None else environ
    config_path, raw = read_config_file(path)
    ignored = _ignored_keys(raw)
    problems = _near_misses(raw)
    used: dict[str, Any] = {}
    for key in _USED_TOP_LEVEL:
        if key in raw and raw[key] is not None:
            used[key] = _resolve_env(raw[key], (key,), env, problems, only_used=key != "hook_settings")
    if problems:
        raise _error(config_path.name, problems)

    try:
        config = ProxyConfig.model_validate({"path": config_path, **used})
    except ValidationError as exc:
        raise _error(config_path.name, _validation_problems(exc)) from None

    hook = _resolve_hook(config, problems)
    candidate = _resolve_target(config.hook_settings.candidate, "hook_settings.candidate", config, problems)
    if candidate is not None and hook is None and not problems:
        problems.append(("hook_settings.candidate", "a candidate needs a live hook: set general_settings.custom_sso"))
    read_paths = _resolve_files(config, problems)
    if problems:
        raise _error(config_path.name, problems)
    return config.model_copy(
        update={
            "hook": hook,
            "candidate": candidate,
            "read_paths": read_paths,
            "env": dict(config.hook_settings.env),
            "ignored": tuple(ignored),
        }
    )


def _near_misses(raw: Mapping[Any, Any]) -> list[_Problem]:
    """Top-level and ``general_settings`` keys nobody reads that were surely meant as a key hookjail reads."""
    problems = _near_misses_in(raw, (), LITELLM_TOP_LEVEL_KEYS)
    general = raw.get("general_settings")
    if isinstance(general, dict):
        problems += _near_misses_in(general, ("general_settings",), LITELLM_GENERAL_SETTINGS_KEYS)
    return problems


def _near_misses_in(block: Mapping[Any, Any], path: tuple[str, ...], litellm: frozenset[str]) -> list[_Problem]:
    ours = _BLOCKS[path]
    problems: list[_Problem] = []
    for key in block:
        name = str(key)
        if name in litellm or (name in ours and repr(name) == ours[name]):
            continue  # LiteLLM's, or ours in its own block
        match = difflib.get_close_matches(name.lower(), [*ours, *litellm], n=1, cutoff=NEAR_MISS_CUTOFF)
        if match and match[0] in ours:
            problems.append(
                (_dotted((*path, name)), f"unknown key; did you mean {ours[match[0]]}? (as written it is ignored)")
            )
    return problems


def _suggestion(block: tuple[str | int, ...], key: str) -> str:
    """``; did you mean 'timeout'?`` for an unknown key in one of hookjail's own blocks, else the keys it takes."""
    ours = _BLOCKS.get(tuple(str(part) for part in block))
    if not ours:
        return ""
    match = difflib.get_close_matches(key.lower(), list(ours), n=1, cutoff=_HINT_CUTOFF)
    if match:
        return f"; did you mean {ours[match[0]]}?"
    own = [name for name, shown in ours.items() if shown == repr(name)]
    return f"; {_dotted(block)} takes: {', '.join(own)}"


def _ignored_keys(raw: Mapping[str, Any]) -> list[str]:
    ignored: list[str] = []
    for key, value in raw.items():
        if key == "general_settings" and isinstance(value, dict):
            known = set(GeneralSettings.model_fields)
            ignored += [f"general_settings.{k}" for k in value if k not in known]
        elif key == "model_list" and isinstance(value, list):
            extra = sorted({k for entry in value if isinstance(entry, dict) for k in entry if k != "model_name"})
            ignored += [f"model_list[].{k}" for k in extra]
        elif key == "litellm_settings" and isinstance(value, dict):
            ignored += [f"litellm_settings.{k}" for k in value]
        elif key not in _USED_TOP_LEVEL:
            ignored.append(str(key))
    return ignored


def _resolve_env(
    value: Any,
    path: tuple[str | int, ...],
    environ: Mapping[str, str],
    problems: list[_Problem],
    *,
    only_used: bool,
) -> Any:
    """Replace ``os.environ/NAME`` strings, only in keys hookjail uses (LiteLLM's keys stay as written)."""
    if only_used and not _is_used(path):
        return value
    if isinstance(value, dict):
        return {k: _resolve_env(v, (*path, k), environ, problems, only_used=only_used) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, (*path, i), environ, problems, only_used=only_used) for i, v in enumerate(value)]
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        name = value[len(ENV_PREFIX) :]
        if name not in environ:
            problems.append((_dotted(path), f"environment variable {name} is not set"))
            return value
        return environ[name]
    return value


def resolve_reference(value: str, key: str, environ: Mapping[str, str]) -> str:
    """Resolve one ``os.environ/NAME`` value (kept unresolved by :func:`load_config` for serve-only secrets).

    Raises:
        ConfigError: the variable is not set.
    """
    if not value.startswith(ENV_PREFIX):
        return value
    name = value[len(ENV_PREFIX) :]
    if name not in environ:
        raise ConfigError(f"{key}: environment variable {name} is not set", key=key)
    return environ[name]


#: Keys resolved only when serving (``hookjail check`` needs neither).
_SERVE_ONLY = ("master_key", "database_url")


def _is_used(path: Sequence[str | int]) -> bool:
    if path[0] == "general_settings":
        return len(path) == 1 or (path[1] in GeneralSettings.model_fields and path[1] not in _SERVE_ONLY)
    if path[0] == "model_list":
        return len(path) <= 2 or path[2] == "model_name"
    return True


def _resolve_hook(config: ProxyConfig, problems: list[_Problem]) -> HookTarget | None:
    """Where ``general_settings.custom_sso`` lives."""
    return _resolve_target(config.general_settings.custom_sso, "general_settings.custom_sso", config, problems)


def _resolve_target(dotted: str | None, key: str, config: ProxyConfig, problems: list[_Problem]) -> HookTarget | None:
    """Where the handler named ``dotted`` (the value of ``key``) lives, beside config.yaml."""
    if dotted is None:
        return None
    module, _, function = dotted.rpartition(".")
    relative = Path(*module.split("."))
    candidates = (config.directory / relative.with_suffix(".py"), config.directory / relative)
    for candidate in candidates:
        if candidate.is_file() or (candidate / "__init__.py").is_file():
            return HookTarget(path=candidate, function=function, dotted=dotted)
    problems.append(
        (
            key,
            f"no file {relative.with_suffix('.py')} (or package {relative}/) next to {config.path.name}; "
            "hookjail loads handlers from files beside the config",
        )
    )
    return None


def _resolve_files(config: ProxyConfig, problems: list[_Problem]) -> tuple[str, ...]:
    resolved: list[str] = []
    for index, name in enumerate(config.hook_settings.files):
        candidate = (config.directory / name).resolve()
        if not candidate.exists():
            problems.append((f"hook_settings.files[{index}]", f"{name} does not exist (relative to the config file)"))
        resolved.append(str(candidate))
    return tuple(resolved)


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _error(source: str, problems: Sequence[_Problem]) -> ConfigError:
    lines = [f"{key or '<top level>'}: {message}" for key, message in problems]
    if len(lines) == 1:
        text = f"{source}: {lines[0]}"
    else:
        text = f"{source}: {len(lines)} problems:\n" + "\n".join(f"  - {line}" for line in lines)
    return ConfigError(text, keys=[key for key, _ in problems if key is not None])


def _validation_problems(exc: ValidationError, *, prefix: tuple[str, ...] = ()) -> list[_Problem]:
    problems: list[_Problem] = []
    for error in exc.errors():
        location = error_location((*prefix, *error["loc"]))
        message = error["msg"]
        given = error.get("input")
        if error["type"] == "extra_forbidden":
            message = "unknown key" + _suggestion(tuple(location[:-1]), str(location[-1]))
        elif error["type"] == "missing":
            message = "required key is missing" + _misspelt_as(str(location[-1]), given)
        elif error["type"] == "literal_error" and any(part in _ROLE_KEYS for part in location):
            message = f"{given!r} is not a role; the valid roles are {', '.join(ROLES)}"
        elif error["type"] == "list_type" and location and location[-1] in _ROLE_KEYS:
            message = f"expected a list of roles (got {given!r}); the valid roles are {', '.join(ROLES)}"
        elif "input" in error:
            printable = isinstance(given, str | int | float | bool) or given is None
            if printable and not (isinstance(given, float) and math.isnan(given)):
                message = f"{message} (got {given!r})"
        problems.append((_dotted(location) or None, message))
    return problems


def _misspelt_as(missing: str, given: Any) -> str:
    """``; is 'model_nme' a misspelling of it?`` when the mapping has a key close to the missing one."""
    if not isinstance(given, dict):
        return ""
    match = difflib.get_close_matches(missing, [str(key) for key in given], n=1, cutoff=NEAR_MISS_CUTOFF)
    return f"; is {match[0]!r} a misspelling of it?" if match else ""
