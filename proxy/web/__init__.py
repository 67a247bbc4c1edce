"""The web server: the FastAPI application and everything that speaks HTTP.

- ``_app``: :func:`create_app` (the lifespan and the routers put together); ``_settings``: :func:`serve_settings`;
- ``_web``: what every router shares (pages, cookies, the signed-in user and the admin as dependencies);
- the routers: ``_sso_routes`` (the login: ``/sso/key/generate``, ``/sso/callback``), ``_ui`` (the dashboard and
  logout), ``_health`` (``/health``, ``/metrics``), ``_management`` (LiteLLM's API), the admin console
  (``_console``, ``_try``, ``_console_rollout``, sharing ``_console_pages``) and ``_docs`` (``/docs``,
  ``/static``);
- the HTTP plumbing: ``_oauth_state`` (the login's state cookie), ``_headers`` (security headers),
  ``_bodylimit``, ``_pages`` (Jinja2 templates), ``_svg`` (charts).
"""

from __future__ import annotations

from ._app import create_app as create_app
from ._settings import ServeSettings as ServeSettings
from ._settings import serve_settings as serve_settings

__all__ = ("ServeSettings", "create_app", "serve_settings")
