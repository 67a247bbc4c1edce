"""What every router of the app shares: :class:`Web` (made once per app, on ``app.state.web``) and the FastAPI
dependencies built on it: the signed-in user, the console's admin, the master key, the database and the hook.

A dependency that must answer for the route (a redirect to sign in, a 403 page) raises :class:`Answer`, which
the app's handler returns as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from .._db import Database, User, as_utc, utcnow
from .._errors import ProxyError
from .._hook import HookService
from .._login import ADMIN_ROLES, LoginService
from .._metrics import Metrics
from .._ratelimit import TokenBuckets
from .._sessions import COOKIE_NAME, SessionCodec, SessionInvalid
from .._sso import SSOProvider
from ._oauth_state import OAuthStates, cookie_name
from ._pages import Pages
from ._settings import ServeSettings

__all__ = (
    "Admin",
    "Answer",
    "CurrentUser",
    "DatabaseDep",
    "HookDep",
    "Web",
    "admin",
    "current_user",
    "install_answer_handler",
    "signed_in",
    "web_of",
)


class Answer(ProxyError):
    """Raised by a dependency to answer the request with :attr:`response` instead of running the route."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"answered with {response.status_code}")
        self.response = response


def install_answer_handler(app: FastAPI) -> None:
    """Answer :class:`Answer` with its response."""

    async def answer(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Answer)
        return exc.response

    app.add_exception_handler(Answer, answer)


@dataclass(frozen=True, eq=False)
class Web:
    """The app's parts that outlive a request: settings, templates, the identity provider, the session and
    state cookies' codecs, the metrics and the rate limits of the sign-in routes."""

    settings: ServeSettings
    pages: Pages
    provider: SSOProvider
    codec: SessionCodec
    states: OAuthStates
    metrics: Metrics
    login_buckets: TokenBuckets | None
    callback_buckets: TokenBuckets | None

    @classmethod
    def create(cls, settings: ServeSettings) -> Web:
        limit = settings.sso.rate_limit
        return cls(
            settings=settings,
            pages=Pages(),
            provider=SSOProvider(settings.sso),
            codec=SessionCodec(settings.master_key, settings.session_duration),
            states=OAuthStates(settings.master_key),
            metrics=Metrics(),
            login_buckets=TokenBuckets(limit) if limit is not None else None,
            callback_buckets=TokenBuckets(limit) if limit is not None else None,
        )

    @property
    def master_key(self) -> bytes:
        return self.settings.master_key.encode()

    def secure(self, request: Request) -> bool:
        """Cookies get ``Secure`` when the public URL (PROXY_BASE_URL) is https, or the request came over https
        (directly, or through a TLS terminator whose ``X-Forwarded-Proto`` uvicorn trusts: --forwarded-allow-ips).
        """
        return (self.settings.sso.base_url or "").startswith("https://") or request.url.scheme == "https"

    def same_origin(self, request: Request) -> bool:
        """A state-changing request from the proxy's own pages: ``Sec-Fetch-Site: same-origin`` when the browser
        sends it, else an ``Origin`` of this proxy (PROXY_BASE_URL's or the one the request was sent to). Browsers
        send at least ``Origin`` with every POST, so a request with neither comes from no web page (curl, scripts):
        it cannot be a cross-site forgery."""
        site = request.headers.get("sec-fetch-site")
        if site is not None:
            return site.strip().lower() == "same-origin"
        origin = request.headers.get("origin")
        if origin is None:
            return True
        allowed = set()
        if self.settings.sso.base_url is not None:
            parts = urlsplit(self.settings.sso.base_url)
            allowed.add(f"{parts.scheme}://{parts.netloc}".lower())
        host = request.headers.get("host")
        if host:
            allowed.add(f"{request.url.scheme}://{host}".lower())
        return origin.strip().lower() in allowed

    def forget_login(self, request: Request, response: Response) -> None:
        """Delete the login cookie (``__Host-`` on https needs ``Secure`` and ``Path=/`` to be deleted too)."""
        is_secure = self.secure(request)
        response.delete_cookie(cookie_name(is_secure), path="/", secure=is_secure, httponly=True, samesite="lax")

    def console_message(self, user: User | None, status: int, title: str, text: str) -> Response:
        """A console page that only says something (403, 404, 422, ...)."""
        return self.pages.render("console/message.html", status=status, me=user, title=title, message=text)


def web_of(request: Request) -> Web:
    web: Web = request.app.state.web
    return web


def database_of(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def hook_of(request: Request) -> HookService | None:
    hook: HookService | None = request.app.state.hook
    return hook


def login_of(request: Request) -> LoginService:
    login: LoginService = request.app.state.login
    return login


async def signed_in(request: Request, codec: SessionCodec) -> User | None:
    """The user whose UI session cookie the request carries: a valid signature, a session row that still exists
    (not logged out) and has not expired; the user as stored now (a demoted admin is no longer one)."""
    token = request.cookies.get(COOKIE_NAME)
    if not token:
        return None
    try:
        claims = codec.verify(token)
    except SessionInvalid:
        return None
    database = database_of(request)
    row = await database.get_session(claims.session_id)
    if row is None or row.user_id != claims.user_id or as_utc(row.expires_at) <= utcnow():
        return None
    return await database.get_user(claims.user_id)


async def current_user(request: Request) -> User | None:
    """Dependency: the signed-in user, or ``None``."""
    return await signed_in(request, web_of(request).codec)


async def admin(request: Request) -> User:
    """Dependency: the signed-in ``proxy_admin`` or ``proxy_admin_viewer``.

    Raises:
        Answer: signed out, a redirect to ``/ui/``; another role, a 403 page.
    """
    user = await current_user(request)
    if user is None:
        raise Answer(RedirectResponse("/ui/", status_code=303))
    if user.role not in ADMIN_ROLES:
        text = "The admin console is for proxy admins (proxy_admin and proxy_admin_viewer)."
        raise Answer(web_of(request).console_message(user, 403, "Not an admin", text))
    return user


# The dependencies are coroutines: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop (and a
# wait for a free thread under load) per request for what is an attribute lookup.


async def _web(request: Request) -> Web:
    return web_of(request)


async def _database(request: Request) -> Database:
    return database_of(request)


async def _hook(request: Request) -> HookService | None:
    return hook_of(request)


async def _login(request: Request) -> LoginService:
    return login_of(request)


WebDep = Annotated[Web, Depends(_web)]
DatabaseDep = Annotated[Database, Depends(_database)]
HookDep = Annotated[HookService | None, Depends(_hook)]
LoginDep = Annotated[LoginService, Depends(_login)]
CurrentUser = Annotated[User | None, Depends(current_user)]
Admin = Annotated[User, Depends(admin)]
