"""Errors raised by the proxy itself (runner errors are translated in :mod:`proxy._login`)::

ProxyError                base: the proxy cannot do what was asked
├── ConfigError           config.yaml, a flag or an environment variable is wrong (names the key path)
└── StartupError          a resource could not be started (hook import, sandbox, database)
"""

from __future__ import annotations

__all__ = ("ConfigError", "ProxyError", "StartupError")


class ProxyError(Exception):
    """Raised when the proxy cannot do what was asked; the base of the proxy's own errors."""


class ConfigError(ProxyError):
    """Raised when the configuration is invalid; the message names each offending key path."""


class StartupError(ProxyError):
    """Raised when the proxy cannot start: the hook does not import, or the sandbox or database fails."""
