"""``hookjail demo``: the bundled example behind an embedded development OpenID provider, with no setup.

For development only. The provider is PyPI's ``oidc-provider-mock``: a real OpenID Connect server (discovery,
authorization code flow, userinfo) that signs in anyone without a password and accepts any client. It runs
on loopback in a thread of this process; the proxy is pointed at it through an environment built in memory
(nothing is read from or written to the real environment): a generic-OIDC client, a master key generated for
this session, and a SQLite database in a temporary directory removed at exit. Being a demo, it prints that master
key, with the ``curl`` line that looks up the hook run whose id a login's error page (or the dashboard) shows.

The provider's form asks for a "sub" (the user id). So that a typed name or email makes a sensible user,
each sub is registered before the form is handled (through the provider's own ``PUT /users/<sub>``) with an
email (the sub if it is one, else ``<name>@example.com``) and names derived from it.
"""

from __future__ import annotations

import importlib
import io
import re
import secrets
import shlex
import threading
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from .._errors import ConfigError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = (
    "CLIENT_ID",
    "SAMPLE_USERS",
    "DevIdP",
    "claims_for",
    "demo_environ",
    "find_example_config",
    "master_key_lines",
    "run_dev_idp",
)

CLIENT_ID = "hookjaildemo"

#: Offered as one-click buttons on the provider's form (examples/custom_sso.py maps the email domain).
SAMPLE_USERS = ("alice@example.com", "boss@admin.example.com")

_EXAMPLE = Path("examples") / "config.yaml"


def find_example_config(explicit: str | None, cwd: Path, *, checkout: Path | None = None) -> Path:
    """The config to serve: ``explicit`` if given, else ``examples/config.yaml`` of the checkout this package
    was installed from (``pip install -e .``; ``checkout`` overrides where that is), else
    ``examples/config.yaml`` under the current directory.

    Raises:
        ConfigError: nothing found.
    """
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"--config: no such file: {explicit}")
        return path.resolve()
    root = checkout if checkout is not None else Path(__file__).resolve().parents[2]
    candidates = (root / _EXAMPLE, cwd / _EXAMPLE)
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise ConfigError(
        "cannot find the bundled example (examples/config.yaml): 'hookjail demo' runs from a git checkout of "
        "hookjail (git clone ...; pip install -e .); run it there, or pass --config PATH/TO/config.yaml"
    )


def claims_for(sub: str) -> dict[str, Any]:
    """The claims the development provider gives a user who typed ``sub`` on its form."""
    text = sub.strip()
    if re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", text):
        email = text.lower()
        words = re.split(r"[._+-]+", text.partition("@")[0])
    else:
        words = text.split()
        local = ".".join(re.sub(r"[^a-z0-9]+", "", w.lower()) for w in words).strip(".")
        email = f"{local or 'user'}@example.com"
    words = [w for w in words if w] or ["User"]
    given, family = words[0].capitalize(), " ".join(w.capitalize() for w in words[1:])
    claims: dict[str, Any] = {
        "email": email,
        "email_verified": True,
        "name": f"{given} {family}".strip(),
        "given_name": given,
    }
    if family:
        claims["family_name"] = family
    return claims


class _RegisterTypedUsers:
    """WSGI middleware: before the provider handles its login form, register the typed sub with
    :func:`claims_for` (through the provider's public ``PUT /users/<sub>``)."""

    def __init__(self, app: WSGIApplication) -> None:
        from werkzeug.test import Client  # noqa: PLC0415 (werkzeug comes with the development provider)

        self.app = app
        self.client = Client(app)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO") == "/oauth2/authorize":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            body = environ["wsgi.input"].read(length) if 0 < length <= 65536 else b""
            environ["wsgi.input"] = io.BytesIO(body)  # the provider reads the form again
            form = parse_qs(body.decode("utf-8", "replace"))
            sub = (form.get("sub") or [""])[0]
            if sub.strip() and form.get("action", [""])[0] != "deny":
                self.client.put(f"/users/{quote(sub, safe='')}", json=claims_for(sub))
        return self.app(environ, start_response)


@dataclass(frozen=True)
class DevIdP:
    """A running development provider."""

    url: str

    @property
    def discovery_url(self) -> str:
        """Its OpenID Connect discovery document."""
        return f"{self.url}/.well-known/openid-configuration"


@contextmanager
def run_dev_idp(port: int = 0, *, users: Iterable[str] = SAMPLE_USERS) -> Iterator[DevIdP]:
    """Run ``oidc-provider-mock`` on 127.0.0.1 (``port`` 0: any free port) in a thread, stopped on exit.

    Raises:
        ConfigError: the package is not installed, or the port cannot be bound.
    """
    try:
        with warnings.catch_warnings():
            # authlib's deprecation notices are the provider's business; authlib forces them on when imported
            importlib.import_module("authlib.deprecate")
            warnings.simplefilter("ignore")
            import oidc_provider_mock  # type: ignore[import-untyped]  # noqa: PLC0415
            import werkzeug.serving  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigError(
            f"the development OpenID provider is not installed ({exc.name}): pip install 'oidc-provider-mock>=0.3.4'"
        ) from None
    # ... and so are the ones it raises while serving (this process is the demo's alone)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(authlib|oidc_provider_mock)(\.|$)")
    app = oidc_provider_mock.app(
        user_claims=[oidc_provider_mock.User(sub=sub, claims=claims_for(sub)) for sub in users],
    )
    try:
        server = werkzeug.serving.make_server("127.0.0.1", port, _RegisterTypedUsers(app), threaded=True)
    except OSError as exc:
        raise ConfigError(f"--idp-port: cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="hookjail-demo-idp", daemon=True
    )
    thread.start()
    try:
        yield DevIdP(url=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def demo_environ(idp: DevIdP) -> dict[str, str]:
    """The environment the demo's proxy reads (in memory only): LiteLLM's generic-OIDC variables pointing at
    the development provider, and a master key made for this session."""
    return {
        "GENERIC_CLIENT_ID": CLIENT_ID,
        "GENERIC_CLIENT_SECRET": secrets.token_hex(16),
        "GENERIC_DISCOVERY_URL": idp.discovery_url,
        "GENERIC_USER_ID_ATTRIBUTE": "sub",
        "LITELLM_MASTER_KEY": "sk-demo-" + secrets.token_hex(16),
    }


def master_key_lines(url: str, master_key: str, *, generated: bool = True) -> list[str]:
    """The banner's lines for the demo's master key: the key itself (it is a demo) and a ``curl`` command that
    looks up a hook run with it (``<run_id>``: the id an error page or the dashboard shows).

    A key that the demo did not make (``--config`` with its own ``general_settings.master_key``) is not printed:
    the command then says ``<master_key>``.
    """
    if generated:
        shown = f"{master_key}  (random, made for this session)"
    else:
        master_key, shown = "<master_key>", "general_settings.master_key of the config (not printed)"
    header = shlex.quote(f"Authorization: Bearer {master_key}")
    return [
        f"  master key         {shown}",
        f"  look up a run      curl -H {header} {url.rstrip('/')}/hook/runs/<run_id>",
        "                     (<run_id>: the run id a login's error page or the dashboard shows)",
    ]
