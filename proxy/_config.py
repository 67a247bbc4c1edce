"""config.yaml: LiteLLM's format plus hookjail's ``hook_settings`` block, validated before anything listens.

Only the keys hookjail uses are validated (strictly: unknown keys, wrong types, impossible values and unset
``os.environ/NAME`` references are errors naming the key path). Every other LiteLLM key is accepted
untouched — its ``os.environ/`` references are not even resolved — and listed once in
:attr:`ProxyConfig.ignored`, so an operator's existing LiteLLM config starts unchanged.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from runner import DEFAULT_WORKER_UID
from sdk._types import RoleName

from ._errors import ConfigError

__all__ = (
    "ENV_PREFIX",
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


class HookSettings(_Strict):
    """hookjail's own block: how the hook runs (maps 1:1 onto the runner's ``Limits`` and ``Sandbox``)."""

    timeout: PositiveSeconds = 5.0
    memory_mb: Annotated[int, Field(gt=0)] = 256
    cpu_seconds: PositiveSeconds = 2.0
    max_concurrency: Annotated[int, Field(gt=0)] = 8
    network: Literal["none", "allow"] = "none"
    sandbox: Literal["strict", "permissive"] = "strict"
    worker_uid: Annotated[int, Field(gt=0, lt=2**32 - 1)] | None = DEFAULT_WORKER_UID
    env: dict[str, str] = Field(default_factory=dict)
    files: list[str] = Field(default_factory=list)
    permissions: list[HostCallName] = Field(default_factory=lambda: list[HostCallName](["user_info"]))
    max_host_calls: Annotated[int, Field(ge=0, le=10_000)] = 100
    max_host_reply_kb: Annotated[int, Field(gt=0, le=4096)] = 1024
    on_failure: Literal["deny", "idp_defaults"] = "deny"
    policy: HookPolicy = Field(default_factory=HookPolicy)

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
        if value is None:
            return None
        module, _, function = value.rpartition(".")
        if not module or not function.isidentifier() or not all(p.isidentifier() for p in module.split(".")):
            raise ValueError(f"expected 'module.function' (e.g. custom_sso.custom_sso_handler), got {value!r}")
        return value


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
            raise ConfigError(_format_errors(exc, prefix=("hook_settings",), source="command line")) from None
        return self.model_copy(update={"hook_settings": settings})


_USED_TOP_LEVEL = ("model_list", "general_settings", "hook_settings")


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> ProxyConfig:
    """Read, resolve and validate config.yaml.

    Args:
        path: the config file.
        environ: where ``os.environ/NAME`` references are looked up (default: ``os.environ``).

    Raises:
        ConfigError: naming every offending key path.
    """
    env = os.environ if environ is None else environ
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

    ignored = _ignored_keys(raw)
    problems: list[str] = []
    used: dict[str, Any] = {}
    for key in _USED_TOP_LEVEL:
        if key in raw and raw[key] is not None:
            used[key] = _resolve_env(raw[key], (key,), env, problems, only_used=key != "hook_settings")
    if problems:
        raise ConfigError(_join(config_path.name, problems))

    try:
        config = ProxyConfig.model_validate({"path": config_path, **used})
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source=config_path.name)) from None

    hook = _resolve_hook(config, problems)
    read_paths = _resolve_files(config, problems)
    if problems:
        raise ConfigError(_join(config_path.name, problems))
    return config.model_copy(
        update={
            "hook": hook,
            "read_paths": read_paths,
            "env": dict(config.hook_settings.env),
            "ignored": tuple(ignored),
        }
    )


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
    problems: list[str],
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
            problems.append(f"{_dotted(path)}: environment variable {name} is not set")
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
        raise ConfigError(f"{key}: environment variable {name} is not set")
    return environ[name]


#: Keys resolved only when serving (``hookjail check`` needs neither).
_SERVE_ONLY = ("master_key", "database_url")


def _is_used(path: Sequence[str | int]) -> bool:
    if path[0] == "general_settings":
        return len(path) == 1 or (path[1] in GeneralSettings.model_fields and path[1] not in _SERVE_ONLY)
    if path[0] == "model_list":
        return len(path) <= 2 or path[2] == "model_name"
    return True


def _resolve_hook(config: ProxyConfig, problems: list[str]) -> HookTarget | None:
    dotted = config.general_settings.custom_sso
    if dotted is None:
        return None
    module, _, function = dotted.rpartition(".")
    relative = Path(*module.split("."))
    candidates = (config.directory / relative.with_suffix(".py"), config.directory / relative)
    for candidate in candidates:
        if candidate.is_file() or (candidate / "__init__.py").is_file():
            return HookTarget(path=candidate, function=function, dotted=dotted)
    problems.append(
        f"general_settings.custom_sso: no file {relative.with_suffix('.py')} (or package {relative}/) "
        f"next to {config.path.name}; hookjail loads handlers from files beside the config"
    )
    return None


def _resolve_files(config: ProxyConfig, problems: list[str]) -> tuple[str, ...]:
    resolved: list[str] = []
    for index, name in enumerate(config.hook_settings.files):
        candidate = (config.directory / name).resolve()
        if not candidate.exists():
            problems.append(f"hook_settings.files[{index}]: {name} does not exist (relative to the config file)")
        resolved.append(str(candidate))
    return tuple(resolved)


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _join(source: str, problems: list[str]) -> str:
    if len(problems) == 1:
        return f"{source}: {problems[0]}"
    return f"{source}: {len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)


def _format_errors(exc: ValidationError, *, source: str, prefix: tuple[str, ...] = ()) -> str:
    problems = []
    for error in exc.errors():
        location = [part for part in (*prefix, *error["loc"]) if not _is_union_tag(part)]
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif "input" in error and error["type"] not in ("extra_forbidden",):
            given = error["input"]
            printable = isinstance(given, str | int | float | bool) or given is None
            if printable and not (isinstance(given, float) and math.isnan(given)):
                message = f"{message} (got {given!r})"
        problems.append(f"{_dotted(location) or '<top level>'}: {message}")
    return _join(source, problems)


def _is_union_tag(part: str | int) -> bool:
    # pydantic adds the branch of an Optional/Union to the location ("float", "list[...]", ...)
    return isinstance(part, str) and (part in ("float", "int", "str", "bool", "none") or "[" in part)
