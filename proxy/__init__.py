"""hookjail's proxy: the SSO login gateway whose custom SSO handler runs in the sandboxed runner.

Public face: :func:`load_config`, :func:`serve_settings`, :func:`create_app` and the errors.

Its parts (proxy → sdk → runner: nothing here is imported by the floors below):

- the web server: ``web/`` (the app and its routers: the login's routes, the user's pages, the admin console,
  LiteLLM's management API, health and metrics; security headers, body limits, templates);
- one login: ``_login`` (hook → values → policy → one transaction), ``_sso`` (the identity provider),
  ``_sessions``, ``_values``, ``_host`` (host calls), ``_openid``, ``_ratelimit``, ``_metrics``, ``_logging``,
  ``_lifecycle``;
- the configuration: ``_config``, ``_outcomes`` (every way a login can end), ``_errors``, ``_text``;
- the store: ``_db/`` (models, migrations, queries); ``_directory`` (users and teams);
- the hook: ``_hook`` (the runner of the configured hook and its reloads);
- safe rollout: ``rollout/`` (shadow runs of a candidate, judged runs, recorded inputs);
- the command line: ``cli/`` (``hookjail`` and its commands: check, bench, demo, replay);
- LiteLLM's own proxy: ``litellm`` (hookjail as LiteLLM's ``custom_sso``).
"""

from __future__ import annotations

from ._config import ProxyConfig as ProxyConfig
from ._config import load_config as load_config
from ._errors import ConfigError as ConfigError
from ._errors import ProxyError as ProxyError
from ._errors import StartupError as StartupError
from .web import ServeSettings as ServeSettings
from .web import create_app as create_app
from .web import serve_settings as serve_settings

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
