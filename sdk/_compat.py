"""LiteLLM compatibility inside the worker: ``litellm.proxy._types``, ``litellm.proxy.management_endpoints.*``
and ``fastapi_sso.sso.base`` resolve to hookjail's sdk, so an existing ``custom_sso.py`` imports unchanged.

Installed by :mod:`sdk._worker` in the worker template only, before the hook is imported (never in the proxy,
which uses the real fastapi_sso). Inside the worker these names always mean hookjail's versions, even when the
real packages are installed: a hook has no database, its management calls are host calls.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from functools import cache
from types import ModuleType

from . import _errors, _hostapi, _types

__all__ = ("MODULES", "CompatFinder", "install")

_PACKAGES = frozenset(
    {"litellm", "litellm.proxy", "litellm.proxy.management_endpoints", "fastapi_sso", "fastapi_sso.sso"}
)
_ROOTS = frozenset({"litellm", "fastapi_sso"})

#: The modules provided inside the worker and the sdk names each one exports.
MODULES: dict[str, tuple[str, ...]] = {
    "litellm.proxy._types": (
        "LitellmUserRoles",
        "SSOUserDefinedValues",
        "NewUserRequest",
        "NewUserResponse",
        "Member",
        "TeamMemberAddRequest",
        "TeamAddMemberResponse",
        "UserInfoResponse",
        "TeamInfoResponse",
        "UserAPIKeyAuth",
        "ProxyException",
    ),
    "litellm.proxy.management_endpoints.internal_user_endpoints": (
        "new_user",
        "user_info",
        "NewUserRequest",
        "NewUserResponse",
        "UserInfoResponse",
        "UserAPIKeyAuth",
        "LitellmUserRoles",
    ),
    "litellm.proxy.management_endpoints.team_endpoints": (
        "add_new_member",
        "team_info",
        "Member",
        "TeamMemberAddRequest",
        "TeamAddMemberResponse",
        "TeamInfoResponse",
        "UserAPIKeyAuth",
    ),
    "fastapi_sso.sso.base": ("OpenID",),
    "fastapi_sso": ("OpenID",),
}


@cache
def _namespace() -> dict[str, object]:
    names: dict[str, object] = {}
    for module in (_types, _hostapi, _errors):
        names.update({name: getattr(module, name) for name in module.__all__})
    return names


class CompatFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves LiteLLM's and fastapi-sso's module names to hookjail's sdk (a ``sys.meta_path`` finder)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] not in _ROOTS:
            return None
        if fullname not in MODULES and fullname not in _PACKAGES:
            provided = ", ".join(sorted(MODULES))
            raise ModuleNotFoundError(
                f"No module named {fullname!r} inside hookjail's sandbox (hookjail provides {provided})",
                name=fullname,
            )
        return importlib.machinery.ModuleSpec(fullname, self, is_package=fullname in _PACKAGES)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        names = MODULES.get(module.__name__, ())
        namespace = _namespace()
        for name in names:
            setattr(module, name, namespace[name])
        module.__all__ = list(names)  # type: ignore[attr-defined]
        module.__doc__ = f"hookjail's stand-in for {module.__name__} (see the sdk package)."


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once). Only for the worker: it hides the real packages."""
    if not any(isinstance(finder, CompatFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, CompatFinder())
