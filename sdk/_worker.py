"""Glue run inside the sandboxed worker (never in the proxy): turns the call's plain argument into the
objects a hook expects, and makes LiteLLM's module names importable there.

The runner imports this module (the proxy's adapter ``sdk._worker:openid_from_dict``) in the worker template
before the hook. Imported there, it installs :class:`sdk._compat.CompatFinder`; imported anywhere else (the
proxy, tests) it changes nothing.
"""

from __future__ import annotations

import sys
from typing import Any

from . import _compat
from ._types import OpenID

__all__ = ("ADAPTER", "in_worker_template", "openid_from_dict")

#: The runner's ``HookSpec.adapter`` for SSO hooks: run inside the worker on the call's argument, so that
#: handlers receive an ``OpenID`` object, not a dict.
ADAPTER = "sdk._worker:openid_from_dict"


def openid_from_dict(data: dict[str, Any]) -> OpenID:
    """Build the :class:`OpenID` a handler receives from the plain dict the proxy sends.

    Unknown keys are ignored so that a newer proxy can send more than an older SDK knows.
    """
    return OpenID.model_validate(data)


def in_worker_template() -> bool:
    """True inside hookjail's worker template: an isolated interpreter (``python -I``) started by the runner."""
    return bool(sys.flags.isolated) and "runner._zygote" in sys.modules


if in_worker_template():
    _compat.install()
