"""Logging set-up for ``hookjail serve``: text (the default) or one JSON object per line (``--log-format json``).

A JSON line has ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, plus, for the login's own
lines, the structured fields the proxy attaches (:data:`EVENT_FIELDS`: ``event`` is ``login`` or
``hook_run``, then ``run_id``, ``outcome``, ``duration_ms``, ``subject``, ``provider``, ...), and
``exception`` with the traceback when there is one. Only those fields are copied from a record: whatever else a
library attaches to its records is not.

What never reaches a log line, in either format: tokens (the OAuth code and state, id and access tokens), the
client secret, cookies (the session's and the login's), the master key. The proxy does not log them, and the
access log's query strings are redacted (:class:`RedactQuery`): ``/sso/callback?code=…&state=…`` is logged as
``/sso/callback?code=[redacted]&state=[redacted]``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, Literal

__all__ = ("EVENT_FIELDS", "JsonFormatter", "LogFormat", "RedactQuery", "configure_logging")

LogFormat = Literal["text", "json"]

#: The structured fields a JSON line carries when the record has them (``logger.info(..., extra={...})``).
EVENT_FIELDS = (
    "event",
    "run_id",
    "outcome",
    "status",
    "duration_ms",
    "subject",
    "provider",
    "idp_ms",
    "hook_ms",
    "db_ms",
    "signal",
)

#: Query parameters whose values the access log never shows (OAuth and OIDC secrets, and anything named like
#: a token or key).
_SECRET_PARAM = re.compile(
    r"(?i)(^|&)((?:code|state|session_state|id_token|access_token|refresh_token|token|"
    r"client_secret|code_verifier|[a-z_]*(?:token|secret|key|password))=)[^&#\s\"]*"
)


def redact_query(target: str) -> str:
    """``target`` (a path with a query string) with the values of secret-bearing parameters replaced."""
    if "?" not in target:
        return target
    path, _, query = target.partition("?")
    return path + "?" + _SECRET_PARAM.sub(r"\1\2[redacted]", query)


class RedactQuery(logging.Filter):
    """For uvicorn's access log (``uvicorn.access``): redacts the request target's secret parameters."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module's docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in EVENT_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value if isinstance(value, (str, int, float, bool)) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        # ensure_ascii: control characters and line separators are escaped, one record is one line
        return json.dumps(entry, ensure_ascii=True, default=str)


#: The loggers uvicorn uses: with ``--log-format json`` they lose uvicorn's own handlers and go to the root's.
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def configure_logging(level: str, log_format: LogFormat = "text") -> dict[str, Any] | None:
    """Set up the root logger; returns the ``log_config`` to give uvicorn (None: uvicorn configures nothing and
    its loggers propagate to the root's JSON handler; for text, uvicorn's default)."""
    if log_format == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root = logging.getLogger()
        for existing in root.handlers[:]:
            root.removeHandler(existing)
        root.addHandler(handler)
        root.setLevel(level.upper())
        for name in _UVICORN_LOGGERS:
            logger = logging.getLogger(name)
            for existing in logger.handlers[:]:
                logger.removeHandler(existing)
            logger.propagate = True
        redact_access_log()
        return None
    logging.basicConfig(level=level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    redact_access_log()
    from uvicorn.config import LOGGING_CONFIG  # noqa: PLC0415

    return LOGGING_CONFIG


def redact_access_log() -> None:
    """Install :class:`RedactQuery` on uvicorn's access logger (once)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(existing, RedactQuery) for existing in access.filters):
        access.addFilter(RedactQuery())
