"""The identity provider, chosen from LiteLLM's environment variables: Google, then Microsoft, then generic
OIDC.

A fresh fastapi-sso provider object is made for every request (its login state must not be shared between
concurrent logins). Generic OIDC takes its endpoints from ``GENERIC_*_ENDPOINT`` variables or from
``GENERIC_DISCOVERY_URL`` (hookjail's addition; explicit endpoints win), fetched on first use and cached.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
from fastapi_sso.sso.base import DiscoveryDocument, OpenID, SSOBase
from fastapi_sso.sso.generic import create_provider
from fastapi_sso.sso.google import GoogleSSO
from fastapi_sso.sso.microsoft import MicrosoftSSO

from ._errors import ConfigError

__all__ = ("GenericOIDC", "ProviderUnavailable", "SSOProvider", "SSOSettings", "sso_settings_from_env")

_TRUE = ("1", "true", "yes", "on")


class ProviderUnavailable(Exception):
    """Raised when the identity provider's discovery document cannot be fetched or is unusable."""


@dataclass(frozen=True, kw_only=True)
class GenericOIDC:
    """Settings of a generic OpenID Connect provider (LiteLLM's ``GENERIC_*`` variables)."""

    authorization_endpoint: str | None
    token_endpoint: str | None
    userinfo_endpoint: str | None
    discovery_url: str | None
    scope: tuple[str, ...]
    use_pkce: bool
    # attribute name → fallback attribute names (used only when the variable is unset)
    id_attribute: tuple[str, ...]
    email_attribute: tuple[str, ...]
    first_name_attribute: tuple[str, ...]
    last_name_attribute: tuple[str, ...]
    display_name_attribute: tuple[str, ...]
    provider_attribute: str


@dataclass(frozen=True, kw_only=True)
class SSOSettings:
    """Which provider to use and the login rules read from the environment."""

    kind: str
    client_id: str
    client_secret: str = field(repr=False)
    tenant: str | None = None
    generic: GenericOIDC | None = None
    base_url: str | None = None
    allowed_email_domains: frozenset[str] = frozenset()
    proxy_admin_id: str | None = None


def sso_settings_from_env(environ: Mapping[str, str]) -> SSOSettings:
    """Read the provider settings as LiteLLM does.

    Raises:
        ConfigError: no provider is configured, or a variable the chosen provider needs is missing.
    """

    def get(name: str) -> str | None:
        value = environ.get(name, "").strip()
        return value or None

    common: dict[str, Any] = {
        "base_url": (get("PROXY_BASE_URL") or "").rstrip("/") or None,
        "allowed_email_domains": frozenset(
            d.strip().lower().lstrip("@") for d in (get("ALLOWED_EMAIL_DOMAINS") or "").split(",") if d.strip()
        ),
        "proxy_admin_id": get("PROXY_ADMIN_ID"),
    }
    if get("GOOGLE_CLIENT_ID"):
        return SSOSettings(
            kind="google",
            client_id=_need(get, "GOOGLE_CLIENT_ID", "GOOGLE_CLIENT_ID"),
            client_secret=_need(get, "GOOGLE_CLIENT_SECRET", "GOOGLE_CLIENT_ID"),
            **common,
        )
    if get("MICROSOFT_CLIENT_ID"):
        return SSOSettings(
            kind="microsoft",
            client_id=_need(get, "MICROSOFT_CLIENT_ID", "MICROSOFT_CLIENT_ID"),
            client_secret=_need(get, "MICROSOFT_CLIENT_SECRET", "MICROSOFT_CLIENT_ID"),
            tenant=get("MICROSOFT_TENANT"),
            **common,
        )
    if get("GENERIC_CLIENT_ID"):
        discovery = get("GENERIC_DISCOVERY_URL")
        endpoints = {
            name: get(f"GENERIC_{name.upper()}")
            for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint")
        }
        if discovery is None:
            for name, value in endpoints.items():
                if value is None:
                    raise ConfigError(
                        f"environment: GENERIC_{name.upper()} is not set (needed with GENERIC_CLIENT_ID "
                        "unless GENERIC_DISCOVERY_URL is set)"
                    )

        def attribute(name: str, default: str, *fallbacks: str) -> tuple[str, ...]:
            explicit = get(name)
            return (explicit,) if explicit else (default, *fallbacks)

        generic = GenericOIDC(
            discovery_url=discovery,
            scope=tuple((get("GENERIC_SCOPE") or "openid email profile").replace(",", " ").split()),
            use_pkce=(get("GENERIC_CLIENT_USE_PKCE") or "").lower() in _TRUE,
            id_attribute=attribute("GENERIC_USER_ID_ATTRIBUTE", "preferred_username", "sub"),
            email_attribute=attribute("GENERIC_USER_EMAIL_ATTRIBUTE", "email"),
            first_name_attribute=attribute("GENERIC_USER_FIRST_NAME_ATTRIBUTE", "first_name", "given_name"),
            last_name_attribute=attribute("GENERIC_USER_LAST_NAME_ATTRIBUTE", "last_name", "family_name"),
            display_name_attribute=attribute("GENERIC_USER_DISPLAY_NAME_ATTRIBUTE", "display_name", "name", "sub"),
            provider_attribute=get("GENERIC_USER_PROVIDER_ATTRIBUTE") or "provider",
            **endpoints,
        )
        return SSOSettings(
            kind="generic",
            client_id=_need(get, "GENERIC_CLIENT_ID", "GENERIC_CLIENT_ID"),
            client_secret=_need(get, "GENERIC_CLIENT_SECRET", "GENERIC_CLIENT_ID"),
            generic=generic,
            **common,
        )
    raise ConfigError(
        "environment: no SSO provider configured; set GOOGLE_CLIENT_ID/GOOGLE_CLIENT_SECRET, "
        "MICROSOFT_CLIENT_ID/MICROSOFT_CLIENT_SECRET, or GENERIC_CLIENT_ID/GENERIC_CLIENT_SECRET with "
        "GENERIC_DISCOVERY_URL or the GENERIC_*_ENDPOINT variables"
    )


def _need(get: Callable[[str], str | None], name: str, because: str) -> str:
    value = get(name)
    if value is None:
        raise ConfigError(f"environment: {name} is not set (needed with {because})")
    return value


class SSOProvider:
    """Makes a fresh fastapi-sso provider object per request for the configured identity provider."""

    def __init__(self, settings: SSOSettings) -> None:
        self.settings = settings
        self._generic_class: type[SSOBase] | None = None
        self._lock = anyio.Lock()

    def redirect_uri(self, request_base_url: str) -> str:
        """The callback URL: ``PROXY_BASE_URL/sso/callback``, else the request's own base URL."""
        base = self.settings.base_url or request_base_url.rstrip("/")
        return f"{base}/sso/callback"

    async def create(self, redirect_uri: str) -> SSOBase:
        """A new provider object; use it as ``async with`` around one login step.

        Raises:
            ProviderUnavailable: the discovery document cannot be fetched.
        """
        settings = self.settings
        insecure = redirect_uri.startswith("http://")
        if settings.kind == "google":
            return GoogleSSO(settings.client_id, settings.client_secret, redirect_uri, allow_insecure_http=insecure)
        if settings.kind == "microsoft":
            return MicrosoftSSO(
                settings.client_id,
                settings.client_secret,
                redirect_uri,
                allow_insecure_http=insecure,
                tenant=settings.tenant,
            )
        provider_class = await self._generic()
        return provider_class(settings.client_id, settings.client_secret, redirect_uri, allow_insecure_http=insecure)

    async def _generic(self) -> type[SSOBase]:
        if self._generic_class is not None:
            return self._generic_class
        async with self._lock:
            if self._generic_class is None:
                generic = self.settings.generic
                assert generic is not None
                document = await _discover(generic)
                provider_class = create_provider(
                    name="generic",
                    default_scope=list(generic.scope),
                    discovery_document=document,
                    response_convertor=_convertor(generic),
                )
                provider_class.uses_pkce = generic.use_pkce
                self._generic_class = provider_class
        return self._generic_class


async def _discover(generic: GenericOIDC) -> DiscoveryDocument:
    found: dict[str, Any] = {}
    if generic.discovery_url is not None:
        try:
            async with httpx.AsyncClient(timeout=10.0) as client:
                response = await client.get(generic.discovery_url)
                response.raise_for_status()
                found = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnavailable(f"cannot fetch the OIDC discovery document: {exc}") from exc
        if not isinstance(found, dict):
            raise ProviderUnavailable("the OIDC discovery document is not a JSON object")
    document: dict[str, str] = {}
    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
        value = getattr(generic, name, None) or found.get(name)
        if isinstance(value, str) and value:
            document[name] = value
        elif name != "jwks_uri":
            raise ProviderUnavailable(f"the OIDC discovery document has no {name}")
    return DiscoveryDocument(**document)  # type: ignore[typeddict-item,no-any-return]


def _convertor(generic: GenericOIDC) -> Callable[[dict[str, Any], httpx.AsyncClient | None], OpenID]:
    def pick(response: dict[str, Any], names: tuple[str, ...]) -> str | None:
        for name in names:
            value = response.get(name)
            if value is not None and value != "":
                return str(value)
        return None

    def convert(response: dict[str, Any], _session: httpx.AsyncClient | None = None) -> OpenID:
        return OpenID(
            id=pick(response, generic.id_attribute),
            email=pick(response, generic.email_attribute),
            first_name=pick(response, generic.first_name_attribute),
            last_name=pick(response, generic.last_name_attribute),
            display_name=pick(response, generic.display_name_attribute),
            picture=pick(response, ("picture",)),
            provider=pick(response, (generic.provider_attribute,)) or "generic",
        )

    return convert
