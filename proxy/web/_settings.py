"""What the server runs with: config.yaml, the flags and the environment, validated before anything listens."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from .._config import ProxyConfig, resolve_reference
from .._db import normalize_url
from .._errors import ConfigError
from .._sessions import DEFAULT_SESSION_DURATION, parse_duration
from .._sso import SSOSettings, sso_settings_from_env

__all__ = ("ServeSettings", "serve_settings")


@dataclass(frozen=True, kw_only=True)
class ServeSettings:
    """Everything the server needs, validated before anything listens."""

    config: ProxyConfig
    sso: SSOSettings
    master_key: str = field(repr=False)
    database_url: str
    session_duration: timedelta = DEFAULT_SESSION_DURATION
    allow_weak_sandbox: bool = False


def serve_settings(
    config: ProxyConfig,
    environ: Mapping[str, str],
    *,
    database_url: str | None = None,
    allow_weak_sandbox: bool = False,
) -> ServeSettings:
    """Combine config.yaml, flags and the environment (LiteLLM's variables) into :class:`ServeSettings`.

    Raises:
        ConfigError: naming the key, flag or variable at fault.
    """
    general = config.general_settings
    if general.master_key is not None:
        master_key = resolve_reference(general.master_key.get_secret_value(), "general_settings.master_key", environ)
        if not master_key:
            raise ConfigError("general_settings.master_key: must not be empty (it signs UI sessions)")
    elif environ.get("LITELLM_MASTER_KEY"):
        master_key = environ["LITELLM_MASTER_KEY"]
    else:
        raise ConfigError(
            "general_settings.master_key: required (it signs UI sessions); set it in config.yaml "
            "(e.g. os.environ/LITELLM_MASTER_KEY) or set LITELLM_MASTER_KEY"
        )
    raw_duration = environ.get("LITELLM_UI_SESSION_DURATION", "").strip()
    duration = (
        parse_duration(raw_duration, name="environment: LITELLM_UI_SESSION_DURATION")
        if raw_duration
        else DEFAULT_SESSION_DURATION
    )
    url = database_url or general.database_url or "sqlite:///hookjail.db"
    if database_url is None and general.database_url is not None:
        url = resolve_reference(general.database_url, "general_settings.database_url", environ)
    try:
        normalized = normalize_url(url, config.directory)
    except Exception as exc:
        source = "--database-url" if database_url else "general_settings.database_url"
        raise ConfigError(f"{source}: not a database URL ({exc})") from None
    return ServeSettings(
        config=config,
        sso=sso_settings_from_env(environ),
        master_key=master_key,
        database_url=normalized,
        session_duration=duration,
        allow_weak_sandbox=allow_weak_sandbox,
    )
