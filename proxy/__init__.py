"""hookjail's proxy: the SSO login gateway whose custom SSO handler runs in the sandboxed runner.

Public face: :func:`load_config`, :func:`serve_settings`, :func:`create_app` and the errors.

Its parts (proxy → sdk → runner: nothing here is imported by the floors below):

- the web server: ``_app`` (the app, lifespan, SSO routes) and what it is made of: ``_sso`` and
  ``_oauth_state`` (the identity provider), ``_login`` (one login: hook → values → policy → one transaction),
  ``_values``, ``_host`` (host calls), ``_sessions``, ``_management`` (LiteLLM's API), ``_console`` and
  ``_console_rollout`` (the admin console), ``_metrics``, ``_logging``, ``_lifecycle``, ``_headers``,
  ``_bodylimit``, ``_ratelimit``, ``_pages``;
- the configuration: ``_config``, ``_outcomes`` (every way a login can end), ``_errors``, ``_text``;
- the store: ``_db/`` (models, migrations, queries); ``_directory`` (users and teams);
- the hook: ``_hook`` (the runner of the configured hook and its reloads);
- safe rollout: ``rollout/`` (shadow runs of a candidate, judged runs, recorded inputs);
- the command line: ``cli/`` (``hookjail`` and its commands: check, bench, demo, replay);
- LiteLLM's own proxy: ``litellm`` (hookjail as LiteLLM's ``custom_sso``).
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
