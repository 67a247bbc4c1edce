"""Text from the hook's worker, made safe to log, store and print.

Everything a worker sends — error messages, tracebacks, captured stdout/stderr, host-call arguments, values
— is the hook's word. Before it reaches a log, the database or a terminal it passes through here:

- :func:`clip` bounds its length (the runner bounds it too, but the proxy does not rely on that);
- :func:`one_line` escapes every control character, newlines included, so a hook cannot forge log lines;
- :func:`printable` escapes every control character but newline and tab, so printed output cannot move the
  cursor, clear the screen, set the clipboard (OSC 52) or reorder text (bidi overrides) — multi-line output
  stays multi-line and the caller indents it;
- :func:`storable` bounds it and escapes NUL, which PostgreSQL's ``text`` cannot hold.

Escapes look like Python's: ``\\n``, ``\\r``, ``\\t``, ``\\x1b``, ``\\u202e``.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = (
    "ERROR_LIMIT",
    "STREAM_LIMIT",
    "TRACEBACK_LIMIT",
    "clip",
    "jsonable",
    "jsonable_key",
    "one_line",
    "printable",
    "storable",
)

#: The most characters kept of an error message (with its traceback excerpt).
ERROR_LIMIT = 2000
#: The most characters kept of a traceback excerpt.
TRACEBACK_LIMIT = 8000
#: The most characters kept of what the hook printed on stdout or stderr.
STREAM_LIMIT = 64 * 1024

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0, DEL, C1, the Unicode line/paragraph separators, and the bidi embeddings, overrides and isolates
_CONTROL = [
    *range(0x00, 0x20),
    0x7F,
    *range(0x80, 0xA0),
    0x2028,
    0x2029,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
]


def _escape(code: int) -> str:
    char = chr(code)
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_ONE_LINE = {code: _escape(code) for code in _CONTROL}
_PRINTABLE = {code: escaped for code, escaped in _ONE_LINE.items() if chr(code) not in "\n\t"}


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, saying how long it was when cut.

    Example:
        >>> clip("abcdefghij" * 10, 40)
        'abcdefghij… [cut: 100 characters in all]'
    """
    if len(text) <= limit:
        return text
    note = f"… [cut: {len(text)} characters in all]"
    if limit <= len(note):
        return text[:limit]
    return text[: limit - len(note)] + note


def one_line(text: str, limit: int = ERROR_LIMIT) -> str:
    """``text`` as one log line: every control character escaped (newlines too), then clipped to ``limit``.

    Example:
        >>> one_line("failed\\nINFO: forged line\\x1b[2J")
        'failed\\\\nINFO: forged line\\\\x1b[2J'
    """
    return clip(text.translate(_ONE_LINE), limit)


def printable(text: str) -> str:
    """``text`` for a terminal: every control character but newline and tab escaped (``\\r``, ESC, bidi
    overrides, ...), so it cannot move the cursor, clear the screen, set the clipboard or reorder what follows.

    Example:
        >>> printable("\\x1b[2J\\x1b]52;c;ZXZpbA==\\x07ok\\r\\n")
        '\\\\x1b[2J\\\\x1b]52;c;ZXZpbA==\\\\x07ok\\\\r\\n'
    """
    return text.translate(_PRINTABLE)


def storable(text: str, limit: int) -> str:
    """``text`` for a database column: NUL escaped (PostgreSQL's ``text`` cannot hold it), clipped to
    ``limit``."""
    return clip(text.replace("\x00", "\\x00"), limit)


#: How deep :func:`jsonable` follows nested lists and dicts before it gives up on the rest.
_MAX_DEPTH = 32


def jsonable(value: Any, *, _depth: int = 0) -> Any:
    """``value`` as plain JSON data, for showing what a hook returned even when it is not plain data.

    Strings, booleans, integers, finite floats, ``None``, lists and dicts with string keys pass unchanged (a
    tuple becomes a list); anything else — bytes, sets, datetimes, ``NaN``, non-string keys — becomes a
    string naming its type, e.g. ``"<bytes: b'admin'>"``, so that ``json.dumps(..., allow_nan=False)`` always
    works.
    """
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else f"<float: {value!r}>"
    if _depth >= _MAX_DEPTH:
        return f"<{type(value).__name__}: nested too deep>"
    if isinstance(value, list | tuple):
        return [jsonable(item, _depth=_depth + 1) for item in value]
    if isinstance(value, dict):
        return {
            key if isinstance(key, str) else jsonable_key(key): jsonable(item, _depth=_depth + 1)
            for key, item in value.items()
        }
    return f"<{type(value).__name__}: {clip(repr(value), 200)}>"


def jsonable_key(key: Any) -> str:
    """A dict key that is not a string, as the string :func:`jsonable` shows it under."""
    return f"<{type(key).__name__}: {clip(repr(key), 80)}>"
