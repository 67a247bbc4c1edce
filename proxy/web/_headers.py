"""Security headers on every response of the proxy: pages, JSON, redirects, errors (a pure ASGI middleware).

- ``Content-Security-Policy``: no script at all, styles only from the proxy or the pages' own ``<style>``
  blocks (allowed by hash, computed from the templates at import), no plugins, forms posting only to the
  proxy, and ``frame-ancestors 'none'`` so that no other site can frame the admin UI (clickjacking).
  FastAPI's ``/docs`` (Swagger UI: its script and CSS from a CDN and an inline script) gets a relaxed policy
  that still forbids framing.
- ``X-Frame-Options: DENY`` (frame-ancestors for older browsers), ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: no-referrer``.
- ``Strict-Transport-Security`` only on a request made over https: the request's scheme as uvicorn sees it,
  which takes ``X-Forwarded-Proto`` into account from trusted proxies only (``--forwarded-allow-ips``,
  loopback by default).

A header the application set itself is kept. :func:`install_security_headers` wraps the whole middleware stack,
so that the 500 page of an unhandled error gets the headers too.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ("DOCS_CSP", "HSTS", "STRICT_CSP", "SecurityHeaders", "install_security_headers")

TEMPLATES = Path(__file__).with_name("templates")
_STYLE = re.compile(r"<style>(.*?)</style>", re.S)


def _style_hashes(templates: Iterable[Path]) -> list[str]:
    """CSP sources allowing the exact ``<style>`` blocks of the templates (they contain no template code)."""
    hashes: list[str] = []
    for path in sorted(templates):
        for block in _STYLE.findall(path.read_text(encoding="utf-8")):
            digest = base64.b64encode(hashlib.sha256(block.encode("utf-8")).digest()).decode("ascii")
            source = f"'sha256-{digest}'"
            if source not in hashes:
                hashes.append(source)
    return hashes


STRICT_CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        " ".join(("style-src 'self'", *_style_hashes(TEMPLATES.glob("*.html")))),
        "img-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

#: Swagger UI at /docs loads its script and CSS from jsDelivr and starts with an inline script.
DOCS_CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' https://cdn.jsdelivr.net 'unsafe-inline'",
        "style-src 'self' https://cdn.jsdelivr.net 'unsafe-inline'",
        "img-src 'self' data: https://fastapi.tiangolo.com",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)

HSTS = "max-age=31536000"
_DOCS_PREFIXES = ("/docs", "/redoc")


class SecurityHeaders:
    """Adds the security headers to every HTTP response of ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        docs = any(path == prefix or path.startswith(prefix + "/") for prefix in _DOCS_PREFIXES)
        added: list[tuple[bytes, bytes]] = [
            (b"content-security-policy", (DOCS_CSP if docs else STRICT_CSP).encode("ascii")),
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        ]
        if scope.get("scheme") == "https":
            added.append((b"strict-transport-security", HSTS.encode("ascii")))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend((name, value) for name, value in added if name not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_security_headers(app: Starlette) -> None:
    """Put :class:`SecurityHeaders` around ``app``'s whole middleware stack (a Starlette or FastAPI app).

    Outside Starlette's ``ServerErrorMiddleware``, so that its 500 responses get the headers too (a
    middleware added with ``add_middleware`` sits inside it).
    """
    build = app.build_middleware_stack

    def build_with_headers() -> ASGIApp:
        return SecurityHeaders(build())

    app.build_middleware_stack = build_with_headers  # type: ignore[method-assign]
