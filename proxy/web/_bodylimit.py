"""A cap on every request body, applied before any of it is read into memory.

:class:`BodyLimit` is a plain ASGI middleware around the whole application (no route reads a body it has not
let through):

- a request whose ``Content-Length`` says more than the cap is answered ``413`` at once: the application is
  not called and not one byte of the body is read;
- a body without a length (``Transfer-Encoding: chunked``) or one longer than it said is counted as the
  application reads it; the read that passes the cap answers ``413`` itself and tells the application the
  client went away (``http.disconnect``), so whatever the application does next (FastAPI answers a body it
  could not read with a 400) is dropped. Nothing beyond the cap is ever buffered: the server (uvicorn) stops
  reading from the socket while the application does not ask for more.

The 413 closes the connection (``Connection: close``): what the client still sends is not read. The cap is
:data:`MAX_BODY_BYTES` (1 MiB; the largest legitimate body, a ``/team/new`` with 1000 models and 100
members, is far below it); :func:`proxy.create_app` installs it.
"""

from __future__ import annotations

import json
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ("MAX_BODY_BYTES", "BodyLimit")

#: The most bytes a request body may have.
MAX_BODY_BYTES: Final = 1024 * 1024


class BodyLimit:
    """Answer ``413`` to a request whose body is larger than ``max_bytes``, before reading it (see the module).

    Args:
        app: the application.
        max_bytes: the cap (:data:`MAX_BODY_BYTES` by default).
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._too_large(send)
            return

        received = 0
        started = False  # the application began its answer
        answered = False  # the 413 went out: the application's own answer is dropped

        async def limited_receive() -> Message:
            nonlocal received, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    answered = True
                    if not started:
                        await self._too_large(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _too_large(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": {
                    "message": f"Request body too large: at most {self.max_bytes} bytes",
                    "type": "request_too_large",
                    "param": None,
                    "code": "413",
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    """The declared body length; ``None`` when there is none or it is not a number (the server refuses those)."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
