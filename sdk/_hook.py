"""The optional ``@hook`` decorator: a handler's shape checked when its module is imported, not at a login."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ("hook",)

F = TypeVar("F", bound=Callable[..., Any])

# Return annotations that say "SSOUserDefinedValues" (as objects, or as strings under postponed evaluation).
_RETURNS = ("SSOUserDefinedValues", "dict", "Mapping", "dict[str, Any]", "Any")


def hook(function: F) -> F:
    """Mark ``function`` as a custom SSO handler and check its shape at import time.

    The checks are the runner's, done earlier and with a clearer message: exactly one positional parameter
    (the user's ``OpenID``) with no default, no other required parameter, and, if the return type is
    annotated, ``SSOUserDefinedValues``. Sync and ``async`` handlers are both accepted. The function is
    returned unchanged.

    Args:
        function: the handler.

    Returns:
        ``function`` itself.

    Raises:
        TypeError: the handler cannot be called with one ``OpenID`` argument, or declares another return type.

    Example:
        >>> from sdk import OpenID, SSOUserDefinedValues
        >>> @hook
        ... async def custom_sso_handler(userIDPInfo: OpenID) -> SSOUserDefinedValues:
        ...     ...
        >>> @hook
        ... async def broken(userIDPInfo: OpenID, request: object) -> SSOUserDefinedValues:
        ...     ...
        Traceback (most recent call last):
        ...
        TypeError: broken must take exactly one positional parameter (the user's OpenID), it takes 2
    """
    if not callable(function):
        raise TypeError(f"@hook decorates a function, got {type(function).__name__}")
    name = getattr(function, "__name__", repr(function))
    signature = inspect.signature(function)
    parameters = list(signature.parameters.values())
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required_positional = [p for p in positional if p.default is p.empty]
    if len(required_positional) != 1 or positional[0].default is not positional[0].empty:
        raise TypeError(
            f"{name} must take exactly one positional parameter (the user's OpenID), "
            f"it takes {len(required_positional)}"
        )
    keyword_only = [p.name for p in parameters if p.kind == p.KEYWORD_ONLY and p.default is p.empty]
    if keyword_only:
        raise TypeError(f"{name} must not require keyword-only parameters, it requires {', '.join(keyword_only)}")
    returns = signature.return_annotation
    if returns is not signature.empty:
        shown = returns if isinstance(returns, str) else getattr(returns, "__name__", repr(returns))
        if shown not in _RETURNS:
            raise TypeError(f"{name} must return SSOUserDefinedValues, it is annotated to return {shown}")
    function.__hookjail_hook__ = True  # type: ignore[attr-defined]
    return function
