"""Refusing a login on purpose, with a reason the user reads: ``raise Deny("...")``."""

from __future__ import annotations

from runner import Denial

__all__ = ("Deny",)


class Deny(Denial):
    """Raise to refuse this login on purpose; the message is shown to the user (like Auth0's
    ``api.access.deny(reason)``).

    The login ends with HTTP 403 and no session and no change to the user; the error page shows ``reason``
    (HTML-escaped, cut to 300 characters) and the run id, and the run is recorded with the outcome ``denied``
    and the reason as its error. A denial is a decision, not a failure: ``on_failure: idp_defaults`` does not
    replace it with a fallback login.

    Write the reason for the person signing in: say what to do next, and leave secrets, internal hostnames and
    other users' data out of it. Any *other* exception is a failure of the hook (``raised``, HTTP 502): its
    text stays with the operator and the user sees a generic message.

    Example:
        >>> from sdk import Deny, OpenID, SSOUserDefinedValues
        >>> ALLOWED = {"ann@example.com"}
        >>> def custom_sso_handler(userIDPInfo: OpenID) -> SSOUserDefinedValues:
        ...     if userIDPInfo.email not in ALLOWED:
        ...         raise Deny("Your account is not on the allowlist — ask #it-help")
        ...     ...

    Args:
        reason: the text the user sees on the login error page.
    """
