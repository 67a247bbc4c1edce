"""proxy._openid.parse_openid: an OpenID given by hand, every problem named in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi_sso.sso.base import OpenID
from pydantic import ConfigDict

from proxy._errors import ConfigError
from proxy._openid import OpenIDInvalid, parse_openid
from proxy.cli._check import load_openid
from proxy.cli._replay import ReplayError, load_openids


class _Strict(OpenID):
    model_config = ConfigDict(extra="forbid")


def test_a_valid_openid_is_plain_data() -> None:
    assert parse_openid({"id": "a", "email": "a@example.com"})["email"] == "a@example.com"


def test_every_problem_is_named_with_its_location() -> None:
    with pytest.raises(OpenIDInvalid) as caught:
        parse_openid({"id": 3, "provider": []})
    assert str(caught.value) == "id: Input should be a valid string; provider: Input should be a valid string"


def test_a_subclass_model_is_used() -> None:
    with pytest.raises(OpenIDInvalid, match=r"^tenant: Extra inputs are not permitted$"):
        parse_openid({"tenant": "x"}, _Strict)


def test_check_names_the_source() -> None:
    with pytest.raises(ConfigError, match=r"^--openid: not a valid OpenID: id: Input should be a valid string$"):
        load_openid('{"id": 3}')


def test_replay_names_the_line(tmp_path: Path) -> None:
    lines = tmp_path / "openids.jsonl"
    lines.write_text('{"id": "a"}\n{"id": 3}\n')
    with pytest.raises(ReplayError, match=r"line 2: not a valid OpenID: id: Input should be a valid string$"):
        load_openids(str(lines))
