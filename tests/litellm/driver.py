"""Run by LiteLLM's own interpreter (the LiteLLM venv), never by pytest: LiteLLM's proxy state with the adapter.

``python driver.py CONFIG`` loads CONFIG through LiteLLM's own ``ProxyConfig.load_config`` (which loads
``general_settings.custom_sso`` with ``get_instance_fn``, as ``litellm --config`` does at start), on uvloop as
LiteLLM's CLI runs, prints ``{"ready": ...}`` and then answers one JSON request per stdin line (each answer
on a line of its own, after ``@@driver@@ ``):

- ``{"op": "login", "openid": {...}}``: awaits the loaded ``custom_sso`` through LiteLLM's own
  ``_build_cli_sso_user_defined_values`` (its SSO callback code: ``iscoroutinefunction``, then ``await
  user_custom_sso(result)``) with fastapi-sso's ``OpenID``; answers ``{"values": ..., "type": ...}`` or
  ``{"error": {"class", "module", "code", "message"}}``;
- ``{"op": "map_error", "status": 404, "message": "..."}``: the hook-side error the adapter makes of LiteLLM's
  ``ProxyException`` and FastAPI's ``HTTPException`` with that status;
- ``{"op": "stop"}``: stops the adapter's runner and exits.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
import time
from typing import Any

#: Starts each answer line (LiteLLM prints on stdout too).
MARK = "@@driver@@ "


def _answer(payload: dict[str, Any]) -> None:
    sys.stdout.write(MARK + json.dumps(payload, default=str) + "\n")
    sys.stdout.flush()


async def _login(openid: dict[str, Any]) -> dict[str, Any]:
    from fastapi_sso.sso.base import OpenID
    from litellm.proxy.management_endpoints.ui_sso import _build_cli_sso_user_defined_values

    started = time.perf_counter()
    try:
        values = await _build_cli_sso_user_defined_values(
            result=OpenID(**openid), parsed_openid_result={"user_id": openid.get("id")}
        )
    except Exception as exc:
        return {
            "error": {
                "class": type(exc).__name__,
                "module": type(exc).__module__,
                "code": getattr(exc, "code", None),
                "message": str(exc),
            },
            "ms": (time.perf_counter() - started) * 1000,
        }
    return {"values": values, "type": type(values).__name__, "ms": (time.perf_counter() - started) * 1000}


def _map_error(status: int, message: str) -> dict[str, Any]:
    from fastapi import HTTPException
    from litellm.proxy._types import ProxyException

    import proxy.litellm as adapter

    out: dict[str, Any] = {}
    for name, exc in (
        ("ProxyException", ProxyException(message=message, type="x", param=None, code=status)),
        ("HTTPException", HTTPException(status_code=status, detail={"error": message})),
    ):
        mapped = adapter.litellm_error(exc)
        out[name] = {"class": type(mapped).__name__, "message": str(mapped)}
    return out


async def main(config: str) -> None:
    started = time.perf_counter()
    from litellm.proxy import proxy_server

    await proxy_server.proxy_config.load_config(router=None, config_file_path=config)
    handler = proxy_server.user_custom_sso
    _answer(
        {
            "ready": True,
            "handler": f"{handler.__module__}.{handler.__qualname__}",
            "coroutine": inspect.iscoroutinefunction(handler),
            "load_s": time.perf_counter() - started,
        }
    )
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        request = json.loads(line)
        if request["op"] == "login":
            _answer(await _login(request["openid"]))
        elif request["op"] == "map_error":
            _answer(_map_error(request["status"], request["message"]))
        elif request["op"] == "stop":
            break
    import proxy.litellm as adapter

    if adapter._Booted.adapter is not None:
        await adapter._Booted.adapter.aclose()
    _answer({"stopped": True})


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(sys.argv[1]))
