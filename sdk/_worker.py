"""Glue run inside the sandboxed worker (never in the proxy): turns the call's plain argument into the
objects a hook expects, and makes LiteLLM's module names importable there.

The runner imports this module (the proxy's adapter ``sdk._worker:openid_from_dict``) in the worker template
before the hook. Imported there, it installs :class:`sdk._compat.CompatFinder`; imported anywhere else (the
proxy, tests) it changes nothing.
"""

from __future__ import annotations

from typing import Any

from runner import in_worker

from . import _compat
from ._types import OpenID
from .contract import ADAPTER

__all__ = ("ADAPTER", "openid_from_dict")


def openid_from_dict(data: dict[str, Any]) -> OpenID:
    """Build the :class:`OpenID` a handler receives from the plain dict the proxy sends.

    Unknown keys are ignored so that a newer proxy can send more than an older SDK knows.
    """
    return OpenID.model_validate(data)


if in_worker():
    _compat.install()
