"""The app's routes and their dependencies, read from the assembled app (no request made)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from proxy import create_app, load_config, serve_settings
from tests.proxy.inprocess import BARE_CONFIG, offline_environ


def _app_routes(tmp_path: Path) -> list[APIRoute]:
    config = tmp_path / "config.yaml"
    config.write_text(BARE_CONFIG)
    environ = offline_environ()
    app = create_app(serve_settings(load_config(config, environ), environ))
    return list(_api_routes(app.routes))


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    """The endpoints, through the included routers (which FastAPI keeps as routers of their own)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None) or getattr(route, "routes", None)
        if included is not None:
            yield from _api_routes(included.routes if hasattr(included, "routes") else included)


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def _is_coroutine(call: Any) -> bool:
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(type(call).__call__)


def test_no_route_or_dependency_runs_in_the_thread_pool(tmp_path: Path) -> None:
    """FastAPI runs a plain ``def`` endpoint or dependency in its thread pool: a thread hop per request, and
    under load a wait for a free thread, on the login's and ``/health``'s path."""
    routes = _app_routes(tmp_path)
    threaded = [
        f"{route.path}: {getattr(call, '__qualname__', call)!s}"
        for route in routes
        for call in (route.endpoint, *_calls(route.dependant))
        if not _is_coroutine(call)
    ]
    assert threaded == []


def test_every_part_of_the_app_is_routed(tmp_path: Path) -> None:
    paths = {route.path for route in _app_routes(tmp_path)}
    assert {
        "/sso/key/generate",
        "/sso/callback",
        "/ui/",
        "/ui/logout",
        "/ui/hook",
        "/ui/runs/{run_id}",
        "/ui/hook/try",
        "/ui/candidate",
        "/ui/versions/diff",
        "/user/new",
        "/team/info",
        "/hook/runs/{run_id}",
        "/health",
        "/metrics",
        "/docs",
        "/static/{name:path}",
    } <= paths
