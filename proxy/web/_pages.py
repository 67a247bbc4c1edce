"""Server-rendered pages (Jinja2, autoescaped): the admin UI, logout and the login error page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

__all__ = ("Pages",)

TEMPLATES = Path(__file__).with_name("templates")


class Pages:
    """Renders the proxy's HTML pages."""

    def __init__(self) -> None:
        self._env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(("html",), default=True),
            auto_reload=False,
        )

    def render(self, name: str, *, status: int = 200, **context: Any) -> HTMLResponse:
        """A response with the template ``name`` rendered with ``context``."""
        body = self._env.get_template(name).render(**context)
        return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    def error(self, reason: str, *, status: int, run_id: str | None = None, run_link: bool = False) -> HTMLResponse:
        """The page for a failed login: a short reason and the run id the operator can look up (with
        ``run_link``, for a signed-in admin, a link to the run's page in the admin console)."""
        return self.render("error.html", status=status, reason=reason, run_id=run_id, run_link=run_link)
