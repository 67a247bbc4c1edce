"""UI sessions: an HS256 JWT in the ``token`` cookie, signed with the master key, naming a revocable row.

The signing key is HMAC-SHA256(master key, "hookjail ui session v1"): derived, so a session token never
doubles as a proof of the master key, and every replica with the same master key verifies every cookie.

A cookie is accepted only if its signature verifies, it has not expired, and its session row still exists
(logout deletes the row, so a copied cookie stops working too).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from ._errors import ConfigError, ProxyError

__all__ = (
    "COOKIE_NAME",
    "DEFAULT_SESSION_DURATION",
    "SessionClaims",
    "SessionCodec",
    "SessionInvalid",
    "parse_duration",
)

COOKIE_NAME = "token"
DEFAULT_SESSION_DURATION = timedelta(hours=24)
_ALGORITHM = "HS256"
_ISSUER = "hookjail"
_DURATION = re.compile(r"^([1-9][0-9]{0,6})(s|m|h|d|mo)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "mo": 30 * 86400}


class SessionInvalid(ProxyError):
    """Raised when a session cookie is malformed, tampered with, expired or revoked."""


def parse_duration(value: str, *, name: str) -> timedelta:
    """Parse LiteLLM's durations (``30s``, ``30m``, ``24h``, ``1d``, ``1mo``).

    Raises:
        ConfigError: naming ``name`` when the value does not parse.
    """
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        raise ConfigError(f"{name}: expected a duration like 30m, 24h, 7d or 1mo, got {value!r}")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


@dataclass(frozen=True)
class SessionClaims:
    """What a verified cookie says: the session row's id, the user and when it expires."""

    session_id: str
    user_id: str
    expires_at: datetime


class SessionCodec:
    """Issues and verifies session tokens.

    Args:
        secret: the master key.
        duration: how long a session lasts.
    """

    def __init__(self, secret: str, duration: timedelta = DEFAULT_SESSION_DURATION) -> None:
        if not secret:
            raise ConfigError("general_settings.master_key: must not be empty (it signs UI sessions)")
        # A key derived from the master key: the master key is also an API credential, and this keeps the
        # HMAC key at SHA-256's full length however short the operator's key is.
        self._secret = hmac.new(secret.encode(), b"hookjail ui session v1", hashlib.sha256).digest()
        self.duration = duration

    def __repr__(self) -> str:
        return f"SessionCodec(secret=<hidden>, duration={self.duration!r})"

    @staticmethod
    def new_session_id() -> str:
        """A fresh, unguessable session id."""
        return secrets.token_urlsafe(24)

    def issue(self, *, session_id: str, user_id: str, now: datetime) -> tuple[str, datetime]:
        """Sign a token for this session; returns it with its expiry."""
        expires_at = now + self.duration
        claims = {
            "iss": _ISSUER,
            "sub": user_id,
            "sid": session_id,
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
        }
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM), expires_at

    def verify(self, token: str) -> SessionClaims:
        """Check the signature and expiry of a token (not revocation: that needs the database).

        Raises:
            SessionInvalid: the token is malformed, signed with another key, or expired.
        """
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                issuer=_ISSUER,
                options={"require": ["exp", "iat", "sub", "sid", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise SessionInvalid("session expired") from None
        except jwt.PyJWTError:
            raise SessionInvalid("invalid session token") from None
        session_id, user_id = claims["sid"], claims["sub"]
        if not isinstance(session_id, str) or not isinstance(user_id, str):
            raise SessionInvalid("invalid session token")
        return SessionClaims(
            session_id=session_id,
            user_id=user_id,
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )
