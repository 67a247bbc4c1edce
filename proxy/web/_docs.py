"""``/docs``: Swagger UI served from the proxy (PyPI ``swagger-ui-bundle``: ``/static/swagger-ui/``), so it works
without internet access; its one inline script is allowed by its hash in the page's own Content-Security-Policy
(no CDN, no ``'unsafe-inline'`` script). ``/static/…``: the console's stylesheet and Swagger UI's files."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import swagger_ui_bundle  # type: ignore[import-untyped]
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response

__all__ = ("router",)

STATIC = Path(__file__).with_name("static")
SWAGGER_UI = Path(swagger_ui_bundle.swagger_ui_path)

_STATIC_FILES: dict[str, tuple[Path, str]] = {
    "console.css": (STATIC / "console.css", "text/css; charset=utf-8"),
    "swagger-ui/swagger-ui-bundle.js": (SWAGGER_UI / "swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    "swagger-ui/swagger-ui.css": (SWAGGER_UI / "swagger-ui.css", "text/css; charset=utf-8"),
    "swagger-ui/favicon-32x32.png": (SWAGGER_UI / "favicon-32x32.png", "image/png"),
}
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def docs(request: Request) -> HTMLResponse:
    page = get_swagger_ui_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title=f"{request.app.title} - API docs",
        swagger_js_url="/static/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url="/static/swagger-ui/swagger-ui.css",
        swagger_favicon_url="/static/swagger-ui/favicon-32x32.png",
    )
    page.headers["Content-Security-Policy"] = _docs_policy(bytes(page.body).decode("utf-8"))
    return page


@router.get("/static/{name:path}")
async def static(name: str) -> Response:
    found = _STATIC_FILES.get(name)
    if found is None:
        return Response("Not Found", status_code=404, media_type="text/plain")
    path, media_type = found
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "public, max-age=3600"})


def _docs_policy(page: str) -> str:
    """The Content-Security-Policy of the Swagger UI page: its script and stylesheet from the proxy, its one
    inline script allowed by hash, the OpenAPI document fetched from the proxy, no framing."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(block.encode("utf-8")).digest()).decode("ascii") + "'"
        for block in _INLINE_SCRIPT.findall(page)
    )
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src 'self' {hashes}".strip(),
            "style-src 'self' 'unsafe-inline'",  # Swagger UI sets inline styles on its elements
            "img-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )
