"""proxy._text: the worker's text clipped, escaped to one line or for a terminal, and shown as JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from proxy._text import clip, jsonable, one_line, printable, storable

ATTACK = "\x1b[2J\x1b]52;c;ZXZpbA==\x07outcome: ok\r\nINFO: forged\u202egnp.exe\x9b\x00\u2028\x7f\t"


def test_clip_keeps_short_text_and_says_how_long_cut_text_was() -> None:
    assert clip("short", 10) == "short"
    cut = clip("x" * 5000, 2000)
    assert len(cut) == 2000
    assert cut.endswith("[cut: 5000 characters in all]")
    assert clip("x" * 50, 5) == "xxxxx"


def test_one_line_escapes_every_control_character() -> None:
    line = one_line(ATTACK)
    assert line.isprintable()
    assert "\n" not in line
    assert line == (
        "\\x1b[2J\\x1b]52;c;ZXZpbA==\\x07outcome: ok\\r\\nINFO: forged\\u202egnp.exe\\x9b\\x00\\u2028\\x7f\\t"
    )
    assert len(one_line("\n" * 10_000)) == 2000


@pytest.mark.parametrize("char", [*map(chr, range(0x20)), "\x7f", *map(chr, range(0x80, 0xA0))])
def test_printable_keeps_only_newline_and_tab(char: str) -> None:
    shown = printable(f"a{char}b")
    assert shown == f"a{char}b" if char in "\n\t" else char not in shown


@pytest.mark.parametrize("code", [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029])
def test_printable_escapes_bidi_controls_and_separators(code: int) -> None:
    assert printable(f"a{chr(code)}b") == f"a\\u{code:04x}b"


def test_printable_keeps_ordinary_unicode() -> None:
    assert printable("Zoë → 東京 ✓") == "Zoë → 東京 ✓"


def test_storable_escapes_nul_and_clips() -> None:
    assert storable("a\x00b", 10) == "a\\x00b"
    assert len(storable("\x00" * 100, 50)) == 50


def test_jsonable_shows_what_is_not_plain_data_as_strings() -> None:
    value: Any = {
        "bytes": b"\x1b[2J",
        "set": {1},
        "when": datetime(2030, 1, 1, tzinfo=UTC),
        "nan": float("nan"),
        "inf": float("-inf"),
        b"key": [(1, 2), None, True, 1.5],
        7: "int key",
    }
    shown = jsonable(value)
    text = json.dumps(shown, allow_nan=False)
    assert json.loads(text) == shown
    assert shown["bytes"] == "<bytes: b'\\x1b[2J'>"
    assert shown["set"] == "<set: {1}>"
    assert shown["nan"] == "<float: nan>"
    assert shown["<bytes: b'key'>"] == [[1, 2], None, True, 1.5]
    assert shown["<int: 7>"] == "int key"


def test_jsonable_stops_at_a_depth() -> None:
    deep: Any = []
    for _ in range(10_000):
        deep = [deep]
    json.dumps(jsonable(deep))
