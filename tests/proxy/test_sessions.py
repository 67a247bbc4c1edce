"""Session tokens: signed with (a key derived from) the master key, expiring, tamper-evident."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from proxy import ConfigError
from proxy._sessions import SessionCodec, SessionInvalid, parse_duration

NOW = datetime.now(UTC)


def test_token_round_trips() -> None:
    codec = SessionCodec("sk-1234")
    token, expires = codec.issue(session_id="s1", user_id="alice", now=NOW)
    claims = codec.verify(token)
    assert (claims.session_id, claims.user_id) == ("s1", "alice")
    assert abs((claims.expires_at - expires).total_seconds()) < 1
    assert expires - NOW == timedelta(hours=24)


def test_cant_verify_with_another_master_key() -> None:
    token, _ = SessionCodec("sk-1234").issue(session_id="s1", user_id="alice", now=NOW)
    with pytest.raises(SessionInvalid):
        SessionCodec("sk-other").verify(token)


def test_cant_tamper_with_the_user() -> None:
    codec = SessionCodec("sk-1234")
    token, _ = codec.issue(session_id="s1", user_id="alice", now=NOW)
    header, _payload, signature = token.split(".")
    forged = jwt.encode(
        {**jwt.decode(token, options={"verify_signature": False}), "sub": "root"},
        "guess-guess-guess-guess-guess-guess",
    )
    with pytest.raises(SessionInvalid):
        codec.verify(".".join([header, forged.split(".")[1], signature]))


def test_cant_sign_with_the_raw_master_key() -> None:
    claims = {"iss": "hookjail", "sub": "root", "sid": "s", "iat": int(NOW.timestamp()), "exp": 2**31}
    with pytest.raises(SessionInvalid):
        SessionCodec("sk-1234567890-1234567890-1234567890").verify(
            jwt.encode(claims, "sk-1234567890-1234567890-1234567890", algorithm="HS256")
        )


def test_cant_use_alg_none() -> None:
    claims = {"iss": "hookjail", "sub": "root", "sid": "s", "iat": int(NOW.timestamp()), "exp": 2**31}
    with pytest.raises(SessionInvalid):
        SessionCodec("sk-1234").verify(jwt.encode(claims, "", algorithm="none"))


def test_expired_token_is_rejected() -> None:
    codec = SessionCodec("sk-1234", timedelta(seconds=1))
    token, _ = codec.issue(session_id="s1", user_id="alice", now=NOW - timedelta(seconds=30))
    with pytest.raises(SessionInvalid, match="expired"):
        codec.verify(token)


def test_codec_repr_hides_the_key() -> None:
    assert "sk-1234" not in repr(SessionCodec("sk-1234"))


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("30m", 1800), ("24h", 86400), ("7d", 604800), ("1mo", 2592000)]
)
def test_litellm_session_durations_parse(text: str, seconds: int) -> None:
    assert parse_duration(text, name="X").total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "24", "1y", "-1h", "h"])
def test_bad_durations_name_the_setting(text: str) -> None:
    with pytest.raises(ConfigError, match="LITELLM_UI_SESSION_DURATION"):
        parse_duration(text, name="LITELLM_UI_SESSION_DURATION")
