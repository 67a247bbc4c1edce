"""The OAuth ``state`` of one login: signed, short-lived, single-use, bound to the browser and to PKCE.

``/sso/key/generate`` makes a random nonce and keeps ``<issued_at>.<nonce>`` in a cookie (``__Host-hookjail_oauth``
on https, ``hookjail_oauth`` on plain http; HttpOnly, SameSite=Lax, Path=/, Max-Age 600). From that cookie and a
key derived from the master key (as UI sessions are, so every replica with the master key agrees) come:

- the ``state`` sent to the identity provider: HMAC-SHA256(key, "state" | cookie);
- the PKCE ``code_verifier``: HMAC-SHA256(key, "pkce" | cookie), 43 base64url characters (RFC 7636); only its
  S256 challenge goes into the authorization URL, the verifier itself only to the token endpoint.

``/sso/callback`` accepts a state only if the browser sends the cookie it was issued with, the cookie has not
expired, the state is the HMAC of that cookie (compared in constant time), and this replica has not seen the state
before; it then remembers the state until it expires and the response deletes the cookie. All of that happens
before any request to the identity provider.

A state minted for another browser (its cookie), a tampered state or cookie, an expired one or a replay is
refused. Single use is per replica (an in-memory set): a replay sent to another replica within the 10 minutes
passes this check, but then needs the authorization code again, which the provider redeems only once (and only
with this cookie's PKCE verifier); the browser itself never replays, since the cookie is deleted on use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .._errors import ProxyError

__all__ = ("COOKIE_LIFETIME", "LoginTransaction", "OAuthStates", "StateInvalid", "cookie_name", "provider_error_text")

#: How long a login may take between /sso/key/generate and /sso/callback, in seconds (the cookie's Max-Age).
COOKIE_LIFETIME = 600
#: Tolerated clock difference between replicas, in seconds (a cookie "issued" later than that is refused).
_CLOCK_SKEW = 60
_COOKIE = re.compile(r"^([0-9]{1,12})\.([A-Za-z0-9_-]{43})$")
_STATE = re.compile(r"^[A-Za-z0-9_-]{43}$")


_REQUEST_REJECTED = "The identity provider rejected this proxy's sign-in request; tell your administrator."
_TRY_AGAIN = "The identity provider could not sign you in right now; try again later."
_SIGN_IN_AGAIN = "The identity provider needs you to sign in again."
#: The error codes of RFC 6749 (4.1.2.1), OpenID Connect Core (3.1.2.6) and RFC 9126 / 9101, each to fixed text.
_PROVIDER_ERRORS = {
    "access_denied": "The sign-in was cancelled or refused at the identity provider.",
    "invalid_request": _REQUEST_REJECTED,
    "unauthorized_client": _REQUEST_REJECTED,
    "unsupported_response_type": _REQUEST_REJECTED,
    "invalid_scope": _REQUEST_REJECTED,
    "invalid_client": _REQUEST_REJECTED,
    "invalid_request_uri": _REQUEST_REJECTED,
    "invalid_request_object": _REQUEST_REJECTED,
    "request_not_supported": _REQUEST_REJECTED,
    "request_uri_not_supported": _REQUEST_REJECTED,
    "registration_not_supported": _REQUEST_REJECTED,
    "server_error": _TRY_AGAIN,
    "temporarily_unavailable": _TRY_AGAIN,
    "login_required": _SIGN_IN_AGAIN,
    "consent_required": "The identity provider needs your consent before you can sign in.",
    "interaction_required": _SIGN_IN_AGAIN,
    "account_selection_required": "The identity provider needs you to choose an account.",
}


def provider_error_text(code: str) -> str:
    """What the login page says for the provider's ``?error=``: fixed text for a known code (naming it), one
    generic text for anything else; the provider's (or an attacker's) own words never reach the page."""
    known = _PROVIDER_ERRORS.get(code)
    if known is None:
        return "The identity provider did not sign you in."
    return f"{known} ({code})"


def cookie_name(secure: bool) -> str:
    """The login cookie's name: with the ``__Host-`` prefix on https, so no sibling domain can set it."""
    return "__Host-hookjail_oauth" if secure else "hookjail_oauth"


class StateInvalid(ProxyError):
    """Raised when a callback's state is missing, forged, expired, from another browser or already used."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LoginTransaction:
    """What /sso/key/generate needs: the cookie to set, the state and the PKCE challenge to send."""

    cookie: str = field(repr=False)
    state: str
    code_challenge: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class OAuthStates:
    """Issues login transactions and checks callbacks against them.

    Args:
        master_key: the master key (a key for this purpose is derived from it).
        lifetime: seconds a transaction stays valid.
        max_remembered: how many used states to remember at most (expired ones are forgotten first).
        clock: seconds since the epoch (for tests).
    """

    def __init__(
        self,
        master_key: str,
        *,
        lifetime: int = COOKIE_LIFETIME,
        max_remembered: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = hmac.new(master_key.encode(), b"hookjail oauth state v1", hashlib.sha256).digest()
        self.lifetime = lifetime
        self._max = max_remembered
        self._clock = clock
        # state -> when it expires; dicts keep insertion order, so the oldest entries come first
        self._used: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"OAuthStates(key=<hidden>, lifetime={self.lifetime}, remembered={len(self._used)})"

    def _mac(self, purpose: bytes, cookie: str) -> str:
        return _b64(hmac.new(self._key, purpose + b"\x00" + cookie.encode("ascii"), hashlib.sha256).digest())

    def begin(self) -> LoginTransaction:
        """A new login: a fresh cookie, its state and its PKCE challenge."""
        cookie = f"{int(self._clock())}.{secrets.token_urlsafe(32)}"
        verifier = self._mac(b"pkce", cookie)
        challenge = _b64(hashlib.sha256(verifier.encode("ascii")).digest())
        return LoginTransaction(cookie=cookie, state=self._mac(b"state", cookie), code_challenge=challenge)

    def finish(self, cookie: str | None, state: str | None) -> str:
        """Check a callback's state against the browser's cookie and use it up; returns the PKCE verifier.

        Raises:
            StateInvalid: naming why (for the log, not for the page).
        """
        if not state:
            raise StateInvalid("the callback has no state")
        if not cookie:
            raise StateInvalid("the browser sent no login cookie (another browser, or it expired)")
        match = _COOKIE.fullmatch(cookie)
        if match is None or _STATE.fullmatch(state) is None:
            raise StateInvalid("malformed state or login cookie")
        if not hmac.compare_digest(self._mac(b"state", cookie), state):
            raise StateInvalid("the state does not belong to this browser's login cookie (forged or tampered)")
        now = self._clock()
        issued = int(match.group(1))
        if issued > now + _CLOCK_SKEW:
            raise StateInvalid("the login cookie was issued in the future")
        expires = issued + self.lifetime
        if expires <= now:
            raise StateInvalid("the login took too long (the state expired)")
        if state in self._used:
            raise StateInvalid("the state was already used (a replay)")
        self._remember(state, expires, now)
        return self._mac(b"pkce", cookie)

    def _remember(self, state: str, expires: float, now: float) -> None:
        # Forget from the oldest end while it has expired (states are used roughly in the order they were
        # issued), or while the set is full: amortized O(1) per callback, bounded memory.
        while self._used:
            oldest = next(iter(self._used))
            if self._used[oldest] > now and len(self._used) < self._max:
                break
            del self._used[oldest]
        self._used[state] = expires
