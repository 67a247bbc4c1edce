"""hookjail's proxy: the SSO login gateway whose custom SSO handler runs in the sandboxed runner.

Public face: :func:`load_config`, :func:`serve_settings`, :func:`create_app` and the errors.
"""

from __future__ import annotations

from ._app import ServeSettings as ServeSettings
from ._app import create_app as create_app
from ._app import serve_settings as serve_settings
from ._config import ProxyConfig as ProxyConfig
from ._config import load_config as load_config
from ._errors import ConfigError as ConfigError
from ._errors import ProxyError as ProxyError
from ._errors import StartupError as StartupError

__all__ = (
    "ConfigError",
    "ProxyConfig",
    "ProxyError",
    "ServeSettings",
    "StartupError",
    "create_app",
    "load_config",
    "serve_settings",
)
