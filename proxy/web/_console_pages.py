"""What every page of the admin console shares: rendering for the signed-in admin, and how values are shown.

Pages carry no script at all (the strict Content-Security-Policy of :mod:`proxy.web._headers` applies); their
stylesheet is ``/static/console.css``. Who may see them is the :data:`~proxy.web._web.Admin` dependency's call.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from sdk.contract import plain_text

from .._db import User, as_utc
from .._text import jsonable, printable
from ._web import web_of

__all__ = ("budget", "hook_text", "is_plain", "message", "pretty", "render", "when")


def render(request: Request, name: str, user: User, *, status: int = 200, **context: Any) -> Response:
    """The console template ``name`` for ``user``, with the formatters every page uses."""
    pages = web_of(request).pages
    return pages.render(
        f"console/{name}", status=status, me=user, when=when, budget=budget, hook_text=hook_text, **context
    )


def message(request: Request, user: User | None, status: int, title: str, text: str) -> Response:
    """A page that only says something (403, 404, 422, ...)."""
    return web_of(request).console_message(user, status, title, text)


def when(moment: datetime | None) -> str:
    """A stored time as the console shows it: UTC, to the second."""
    if moment is None:
        return "—"
    return as_utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC")


def hook_text(text: str | None) -> str:
    """Hook-derived text for a page: escaped by the template, and here every control character but newline and
    tab shown as an escape, so bidirectional-text controls cannot reorder what the admin reads."""
    return printable(text or "")


def pretty(value: Any) -> str:
    """Plain data as indented JSON (values that are not plain data named by type)."""
    return json.dumps(jsonable(value), indent=2, ensure_ascii=False)


def budget(value: float | None) -> str:
    return "unlimited" if value is None else f"{value:g}"


def is_plain(text: str) -> bool:
    """No control characters or bidirectional-text controls (what the management API refuses too)."""
    try:
        plain_text(text)
    except ValueError:
        return False
    return True
