"""Errors a hook can get from hookjail's host API, shaped like LiteLLM's so existing handlers catch them.

LiteLLM's management functions fail with a ``ProxyException`` carrying an HTTP-like ``code``; hookjail raises
the same shape, with a subclass per cause that is also the matching builtin (so ``except LookupError`` works)::

    ProxyException                 LiteLLM's error: message, type, param, code ("404"), status_code (404)
    ├── NotFoundError              the user or team does not exist (404); also a LookupError
    ├── InvalidRequestError        the arguments were refused (400, or 422 when checked in the hook); a ValueError
    ├── ConflictError              the user or membership already exists (409)
    └── HostUnavailableError       the proxy could not answer, e.g. its database is down (503); try again later

Any other error the host answers with is a plain ``ProxyException`` (500).

A call the operator did not grant raises the builtin :class:`PermissionError`, as does any host call made
outside a login run by hookjail's sandbox with no host attached.
"""

from __future__ import annotations

__all__ = ("ConflictError", "HostUnavailableError", "InvalidRequestError", "NotFoundError", "ProxyException")


class ProxyException(Exception):
    """Raised when a host call fails; LiteLLM's ``ProxyException`` shape.

    Attributes:
        message: what went wrong, e.g. ``"User alice not found"``.
        type: a short machine-readable category, e.g. ``"not_found"``.
        param: the argument at fault, when known.
        code: the HTTP-like status as a string, as LiteLLM stores it (``"404"``).
        status_code: the same status as an int (``404``).

    Example:
        >>> try:
        ...     raise NotFoundError("User alice not found", param="user_id")
        ... except ProxyException as exc:
        ...     (exc.status_code, exc.code, exc.message)
        (404, '404', 'User alice not found')
    """

    def __init__(
        self,
        message: str,
        type: str = "internal_server_error",  # LiteLLM's keyword
        param: str | None = None,
        code: int | str = 500,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.type = type
        self.param = param
        self.code = str(code)
        self.headers = dict(headers or {})

    @property
    def status_code(self) -> int:
        """The HTTP-like status as an int (``int(self.code)``)."""
        return int(self.code)

    def to_dict(self) -> dict[str, str | None]:
        """The error as LiteLLM's JSON error body (``message``, ``type``, ``param``, ``code``)."""
        return {"message": self.message, "type": self.type, "param": self.param, "code": self.code}

    def __str__(self) -> str:
        return self.message


class NotFoundError(ProxyException, LookupError):
    """Raised when the user or team a host call names does not exist (status 404)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message, type="not_found", param=param, code=404)


class InvalidRequestError(ProxyException, ValueError):
    """Raised when a host call's arguments are refused: 422 when the SDK finds them invalid before sending,
    400 when the host refuses them."""

    def __init__(self, message: str, *, param: str | None = None, code: int = 400) -> None:
        super().__init__(message, type="bad_request_error", param=param, code=code)


class ConflictError(ProxyException):
    """Raised when a host call would create a user or team membership that already exists (status 409)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message, type="conflict", param=param, code=409)


class HostUnavailableError(ProxyException):
    """Raised when the proxy cannot answer a host call for a reason of its own, such as its database (status
    503). The message does not say why (the proxy logs it); the same call may succeed on a later login."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message, type="service_unavailable", param=param, code=503)
