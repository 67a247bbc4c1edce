"""``/health`` (for a load balancer; the details for the operator) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import importlib.metadata
from functools import cache
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from .._metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ._management import check_master_key
from ._web import DatabaseDep, HookDep, WebDep

__all__ = ("router",)

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    responses={
        401: {"description": "An Authorization header with another key than the master key"},
        503: {"description": "Unhealthy: the database is unreachable or the hook's runner is not usable"},
    },
)
async def health(request: Request, web: WebDep, database: DatabaseDep, hook: HookDep) -> JSONResponse:
    """``{"status": "ok" | "unhealthy", "version"}`` with 200 or 503, for anyone (a load balancer). With
    ``Authorization: Bearer <master_key>`` also the details: ``database`` and ``hook`` (handler, sandbox
    layers, reloads, restarts, last reload error)."""
    authorization = request.headers.get("authorization")
    if authorization is not None:
        check_master_key(authorization, web.master_key)  # a wrong key is a 401, not the short answer
    database_ok = await database.recently_pinged()
    if not database_ok:
        web.metrics.database_error("ping")
    hook_info: dict[str, Any] | None = hook.health() if hook is not None else None
    healthy = database_ok and (hook_info is None or bool(hook_info["healthy"]))
    body: dict[str, Any] = {"status": "ok" if healthy else "unhealthy", "version": version()}
    if authorization is not None:  # the details (the hook's own words among them) are the operator's only
        body |= {"database": "ok" if database_ok else "unreachable", "hook": hook_info}
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {METRICS_CONTENT_TYPE: {}}, "description": "Prometheus text format"},
        401: {"description": "No Authorization: Bearer <master_key> header, or another key"},
    },
)
async def metrics(request: Request, web: WebDep) -> Response:
    """The proxy's metrics in Prometheus' text format, with ``Authorization: Bearer <master_key>``: hook call
    durations by outcome, logins by outcome, hook calls in flight and waiting, template restarts and
    reloads, host calls by method and outcome, database errors."""
    check_master_key(request.headers.get("authorization"), web.master_key)
    return Response(web.metrics.render(), media_type=METRICS_CONTENT_TYPE, headers={"Cache-Control": "no-store"})


@cache
def version() -> str:
    """hookjail's version, as ``/health`` reports it."""
    try:
        return importlib.metadata.version("hookjail")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
