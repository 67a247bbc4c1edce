"""The types a hook author works with: what the hook receives (:class:`OpenID`) and what it returns
(:class:`SSOUserDefinedValues`, with a role from :class:`LitellmUserRoles`).

They mirror LiteLLM's and fastapi-sso's so that an existing ``custom_sso.py`` keeps working.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal, TypedDict

from pydantic import BaseModel, ConfigDict

__all__ = ("LitellmUserRoles", "OpenID", "RoleName", "SSOUserDefinedValues")


class OpenID(BaseModel):
    """What the identity provider said about the user, as fastapi-sso's ``OpenID``.

    Every field is an optional string, but ``email_verified``: whether the identity provider says it verified
    ``email`` (its ``email_verified`` claim), ``None`` when it does not say (Microsoft never does; Google
    always verified it). A hook that trusts the email (its domain, a directory lookup by email) should refuse
    ``email_verified is False``: such a provider lets users set any address. Inside the sandbox ``email`` is a
    plain string: the proxy has already validated it before the hook runs.

    Example:
        >>> user = OpenID(id="alice", email="alice@example.com", provider="generic")
        >>> user.email.split("@")[1]
        'example.com'
    """

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    display_name: str | None = None
    picture: str | None = None
    provider: str | None = None
    email_verified: bool | None = None


class LitellmUserRoles(str, Enum):  # noqa: UP042 (LiteLLM's own base classes: str() behaves the same)
    """The roles a user can have, with LiteLLM's exact string values."""

    PROXY_ADMIN = "proxy_admin"
    PROXY_ADMIN_VIEW_ONLY = "proxy_admin_viewer"
    ORG_ADMIN = "org_admin"
    INTERNAL_USER = "internal_user"
    INTERNAL_USER_VIEW_ONLY = "internal_user_viewer"
    TEAM = "team"
    CUSTOMER = "customer"


#: A role's string value, as the type checker and pydantic see it (the values of :class:`LitellmUserRoles`).
RoleName = Literal[
    "proxy_admin",
    "proxy_admin_viewer",
    "org_admin",
    "internal_user",
    "internal_user_viewer",
    "team",
    "customer",
]


class SSOUserDefinedValues(TypedDict):
    """What a hook returns: who the user is inside the proxy.

    All six keys are required (as in LiteLLM). The proxy validates the result strictly: ``user_role`` must be
    one of :class:`LitellmUserRoles`' values, ``max_budget`` finite and non-negative (or ``None``),
    ``budget_duration`` like ``30s``, ``30m``, ``1h``, ``1d``, ``30d`` or ``1mo`` (or ``None``).

    Example:
        >>> SSOUserDefinedValues(
        ...     models=["gpt-4o"],
        ...     user_id="alice",
        ...     user_email="alice@example.com",
        ...     user_role=LitellmUserRoles.INTERNAL_USER.value,
        ...     max_budget=10.0,
        ...     budget_duration="30d",
        ... )["user_role"]
        'internal_user'
    """

    models: list[str]
    user_id: str
    user_email: str | None
    user_role: str | None
    max_budget: float | None
    budget_duration: str | None
