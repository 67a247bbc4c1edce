"""Errors raised by the proxy itself (runner errors are translated in :mod:`proxy._login`)::

ProxyError                base: the proxy cannot do what was asked
├── ConfigError           config.yaml, a flag or an environment variable is wrong (names the key path)
├── StartupError          a resource could not be started (hook import, sandbox, database)
├── CandidateUnusable     hook_settings.candidate does not import (proxy.rollout)
├── LoginFailed           a login is refused: status, short reason, run id (proxy._login)
├── ValuesRefused         the hook's values break an identity rule or the policy (proxy._values)
├── IdentityMismatch      the user is bound to another identity-provider account (proxy._db)
├── SessionInvalid        a UI session cookie is missing, forged or expired (proxy._sessions)
├── StateInvalid          an OAuth state or its cookie is missing, forged, expired or used (proxy.web._oauth_state)
├── ProviderUnavailable   the identity provider's discovery document cannot be fetched (proxy._sso)
└── ApiError              a management API error in LiteLLM's shape (proxy.web._management)
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ("ConfigError", "ProxyError", "StartupError")


class ProxyError(Exception):
    """Raised when the proxy cannot do what was asked; the base of the proxy's own errors."""


class ConfigError(ProxyError):
    """Raised when the configuration is invalid; the message names each offending key path.

    Attributes:
        key: the key path at fault (``hook_settings.timeout``, ``general_settings.custom_sso``), the first one
            when there are several; ``None`` when the error is about the file as a whole (unreadable, not YAML)
            or the raiser did not name one.
        keys: every key path at fault, in the order the message lists them.
    """

    def __init__(self, message: str, *, key: str | None = None, keys: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.keys: tuple[str, ...] = tuple(keys) if keys else ((key,) if key is not None else ())
        self.key: str | None = key if key is not None else (self.keys[0] if self.keys else None)


class StartupError(ProxyError):
    """Raised when the proxy cannot start: the hook does not import, or the sandbox or database fails."""
