"""The identity provider, chosen from LiteLLM's environment variables: Google, then Microsoft, then generic
OIDC.

A fresh fastapi-sso provider object is made for every request (its login state must not be shared between
concurrent logins). Generic OIDC takes its endpoints from ``GENERIC_*_ENDPOINT`` variables or from
``GENERIC_DISCOVERY_URL`` (hookjail's addition; explicit endpoints win), fetched on first use and cached.
"""

from __future__ import annotations

import functools
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import fastapi_sso.sso.base
import fastapi_sso.sso.google
import httpx
from fastapi_sso.sso.base import DiscoveryDocument, OpenID, SSOBase
from fastapi_sso.sso.generic import create_provider
from fastapi_sso.sso.google import GoogleSSO
from fastapi_sso.sso.microsoft import MicrosoftSSO

from ._errors import ConfigError, ProxyError
from ._ratelimit import RateLimit, parse_rate_limit

__all__ = ("GenericOIDC", "ProviderUnavailable", "SSOProvider", "SSOSettings", "sso_settings_from_env")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
# A loopback Host header: localhost, 127.x.x.x or [::1], with an optional port. Nothing else (no userinfo).
_LOOPBACK_HOST = re.compile(
    r"^(?:localhost|127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}|\[::1\])(?::[0-9]{1,5})?$", re.IGNORECASE
)


@functools.cache
def shared_tls_context() -> ssl.SSLContext:
    """The process's one TLS context for requests to the identity provider: what httpx builds for a client
    made without ``verify`` (the CA bundle of ``SSL_CERT_FILE`` or ``SSL_CERT_DIR``, else certifi's), built
    once. Building it costs ~18 ms of CPU on the event loop (the CA bundle is parsed), which fastapi-sso
    would spend on every login. A CA bundle changed on disk is read at the next start."""
    return httpx.create_ssl_context()


class _HttpxSharingTLS:
    """Stands in for the ``httpx`` module inside fastapi-sso's modules (see :func:`share_tls_context`): the
    same module, except that an ``AsyncClient`` made without ``verify`` uses :func:`shared_tls_context`."""

    def __getattr__(self, name: str) -> Any:
        return getattr(httpx, name)

    @staticmethod
    def AsyncClient(*args: Any, **kwargs: Any) -> httpx.AsyncClient:
        kwargs.setdefault("verify", shared_tls_context())
        return httpx.AsyncClient(*args, **kwargs)


def share_tls_context() -> None:
    """Make fastapi-sso's clients reuse one TLS context (idempotent).

    fastapi-sso's ``process_login`` makes a new ``httpx.AsyncClient()`` for every login (and Google's provider
    one per discovery-document fetch), with no way to pass a client or its options (upstream: fastapi-sso
    PR #185, not merged). Each would build a TLS context from the CA bundle on the event loop. The library's
    code is kept as it is, token and userinfo handling included; only the name ``httpx`` in its modules is
    bound to :class:`_HttpxSharingTLS`, so the client it makes per login is built with the shared context
    (still one client per login: it carries that login's access token). A module that no longer has that name
    (another version of fastapi-sso) is left alone: logins then work as before, only slower; the tests
    check that a login builds no TLS context.
    """
    for module in (fastapi_sso.sso.base, fastapi_sso.sso.google):
        if getattr(module, "httpx", None) is httpx:
            module.httpx = _HttpxSharingTLS()  # type: ignore[attr-defined]


class ProviderUnavailable(ProxyError):
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
    # per client address and login route (HOOKJAIL_SSO_RATE_LIMIT); None: no limit
    rate_limit: RateLimit | None = None


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
        "rate_limit": parse_rate_limit(get("HOOKJAIL_SSO_RATE_LIMIT"), name="environment: HOOKJAIL_SSO_RATE_LIMIT"),
    }
    base_url = common["base_url"]
    if base_url is not None and not re.fullmatch(r"https?://[^/?#@\s]+(/[^?#\s]*)?", base_url):
        raise ConfigError(
            f"environment: PROXY_BASE_URL: expected an http(s) URL like https://proxy.example.com, got {base_url!r}"
        )
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
            use_pkce=_flag(get("GENERIC_CLIENT_USE_PKCE"), "GENERIC_CLIENT_USE_PKCE", default=True),
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


def _flag(value: str | None, name: str, *, default: bool) -> bool:
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ConfigError(f"environment: {name}: expected true or false, got {value!r}")


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
        share_tls_context()

    @property
    def uses_pkce(self) -> bool:
        """Whether logins send a PKCE challenge (generic OIDC unless ``GENERIC_CLIENT_USE_PKCE=false``)."""
        generic = self.settings.generic
        return self.settings.kind == "generic" and generic is not None and generic.use_pkce

    def redirect_uri(self, scheme: str, host: str | None) -> str | None:
        """The callback URL: ``PROXY_BASE_URL/sso/callback``; without it, the request's own base URL, but only
        for a loopback ``Host`` (``None`` otherwise: a forged Host must not choose where the code is sent).

        ``scheme`` is the request's (https behind a TLS terminator only when uvicorn trusts its address for
        ``X-Forwarded-Proto``: ``FORWARDED_ALLOW_IPS``).
        """
        if self.settings.base_url is not None:
            return f"{self.settings.base_url}/sso/callback"
        if host is None or scheme not in ("http", "https") or _LOOPBACK_HOST.fullmatch(host) is None:
            return None
        return f"{scheme}://{host.lower()}/sso/callback"

    async def login_url(self, sso: SSOBase, *, redirect_uri: str, state: str, code_challenge: str) -> str:
        """The authorization URL for one login, with hookjail's own state and PKCE challenge (see
        :mod:`proxy.web._oauth_state`; fastapi-sso's cookies are not used)."""
        # What fastapi-sso's get_login_url does (none of the providers used here overrides it), with hookjail's
        # state and challenge: fastapi-sso would make its own and keep them in unsigned cookies.
        pkce = {"code_challenge": code_challenge, "code_challenge_method": "S256"} if self.uses_pkce else {}
        url: str = sso.oauth_client.prepare_request_uri(
            await sso.authorization_endpoint, redirect_uri=redirect_uri, state=state, scope=sso.scope, **pkce
        )
        return url

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
                self._generic_class = provider_class
        return self._generic_class


async def _discover(generic: GenericOIDC) -> DiscoveryDocument:
    found: dict[str, Any] = {}
    if generic.discovery_url is not None:
        try:
            async with httpx.AsyncClient(timeout=10.0, verify=shared_tls_context()) as client:
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
    """The generic provider's userinfo → fastapi-sso's ``OpenID`` with LiteLLM's attribute choices, plus
    ``email_verified`` (the claim: ``True``/``False``, ``None`` when absent or not a boolean), ``subject`` (the
    ``sub`` claim, else the user id attribute's value for a provider that sends no ``sub``) and ``issuer`` (the
    discovery URL without ``/.well-known/openid-configuration``, which OIDC Discovery makes the issuer; without
    discovery the response's ``iss``, else ``"generic"``). The login binds stored users to ``issuer`` and
    ``subject`` (:mod:`proxy._login`), so that a user id taken from an editable claim cannot take over an
    account."""

    class IdPOpenID(OpenID):
        email_verified: bool | None = None
        subject: str | None = None
        issuer: str | None = None

    suffix = "/.well-known/openid-configuration"
    discovered = generic.discovery_url
    issuer = discovered[: -len(suffix)] if discovered and discovered.endswith(suffix) else discovered

    def pick(response: dict[str, Any], names: tuple[str, ...]) -> str | None:
        for name in names:
            value = response.get(name)
            if value is not None and value != "":
                return str(value)
        return None

    def verified(value: Any) -> bool | None:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):  # e.g. AWS Cognito
            return value.strip().lower() == "true"
        return None

    def convert(response: dict[str, Any], _session: httpx.AsyncClient | None = None) -> OpenID:
        user_id = pick(response, generic.id_attribute)
        return IdPOpenID(
            id=user_id,
            email=pick(response, generic.email_attribute),
            first_name=pick(response, generic.first_name_attribute),
            last_name=pick(response, generic.last_name_attribute),
            display_name=pick(response, generic.display_name_attribute),
            picture=pick(response, ("picture",)),
            provider=pick(response, (generic.provider_attribute,)) or "generic",
            email_verified=verified(response.get("email_verified")),
            subject=pick(response, ("sub",)) or user_id,
            issuer=issuer or pick(response, ("iss",)) or "generic",
        )

    return convert
