"""The login gateway under attack, over real HTTP: the real ``hookjail`` process, the real OpenID provider, httpx
as the browser(s) and a counting proxy in front of the provider's token endpoint.

Findings reproduced: a forged ``Host`` choosing the callback URL; ``X-Forwarded-Proto`` from trusted and untrusted
addresses; PKCE off by default; an unsigned, reusable, unbound OAuth state; provider ``?error=`` text shown and
forging log lines; no rate limit (and bogus callbacks reaching the provider); logout by cross-site POST.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit, urlunsplit

import httpx
import pytest
from fastapi import FastAPI

from proxy import ConfigError
from proxy._ratelimit import RateLimit, TokenBuckets
from proxy._sso import sso_settings_from_env
from proxy.web._oauth_state import OAuthStates
from tests.idp.provider import IdP, PortPool, running_idp
from tests.local_server import LocalServer
from tests.proxy.harness import MASTER_KEY, Proxy, ProxyFactory, idp_form, login, new_client
from tests.proxy.inprocess import bare_app

# --- fixtures: the provider with http and https callbacks, and a counter of token requests ------------------


@pytest.fixture(scope="module")
def idp(proxy_ports: PortPool) -> Iterator[IdP]:
    """The test provider (tests/idp/server.mjs), also accepting ``https://127.0.0.1:<port>/sso/callback`` (a
    proxy behind a TLS terminator)."""
    uris = [f"{scheme}://127.0.0.1:{p}/sso/callback" for p in proxy_ports.all for scheme in ("http", "https")]
    with running_idp(uris) as provider:
        yield provider


class TokenCounter(LocalServer):
    """A tiny reverse proxy for the provider's token endpoint that counts (and keeps) the requests it forwards."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.bodies: list[str] = []
        counter = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                counter.bodies.append(body.decode())
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
                answer = httpx.post(counter.target, content=body, headers=headers, timeout=10)
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("content-type", "application/json"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(Handler)
        self.url = f"http://127.0.0.1:{self.port}/token"

    @property
    def count(self) -> int:
        return len(self.bodies)


@pytest.fixture
def tokens(idp: IdP) -> Iterator[TokenCounter]:
    counter = TokenCounter(f"{idp.issuer}/token")
    try:
        yield counter
    finally:
        counter.close()


# --- helpers ---------------------------------------------------------------------------------------------


def set_cookie(response: httpx.Response, name: str) -> str | None:
    """The ``Set-Cookie`` header for ``name``, if the response sets it."""
    return next((h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")), None)


def cookie_value(header: str) -> str:
    return header.split(";", 1)[0].split("=", 1)[1]


def attributes(header: str) -> dict[str, str]:
    parts = [part.strip() for part in header.split(";")[1:]]
    return {p.split("=", 1)[0].lower(): (p.split("=", 1)[1] if "=" in p else "") for p in parts}


def begin(client: httpx.Client, proxy: Proxy, **headers: str) -> tuple[str, httpx.Response]:
    """GET /sso/key/generate without following: the authorization URL and the response."""
    response = client.get(f"{proxy.base_url}/sso/key/generate", headers=headers)
    assert response.status_code == 303, response.text[:500]
    return response.headers["location"], response


def authorize(client: httpx.Client, url: str, user: str) -> str:
    """Sign in and consent at the provider; the callback URL it sends the browser to (not followed)."""
    response = client.get(url)
    for _ in range(12):
        if response.is_redirect:
            target = urljoin(str(response.url), response.headers["location"])
            if urlsplit(target).path == "/sso/callback":
                return target
            response = client.get(target)
            continue
        action, data = idp_form(response, user)
        response = client.post(action, data=data)
    raise AssertionError(f"the provider did not send the browser back: {response.url}")


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    params = query(url) | changes
    return urlunsplit(parts._replace(query=str(httpx.QueryParams(params))))


def signed_in_as(response: httpx.Response) -> str | None:
    match = re.search(r'id="user-id">([^<]*)<', response.text)
    return match.group(1) if match else None


def oauth_cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"hookjail_oauth={value}"}


# --- 1. the callback URL is not the Host header's choice ---------------------------------------------------


def test_a_forged_host_without_proxy_base_url_gets_400(start: ProxyFactory) -> None:
    proxy = start(hook_source=None)
    with new_client() as client:
        for host in ("evil.example", "evil.example:80", "evil.example@127.0.0.1", "127.0.0.1.evil.example"):
            response = client.get(f"{proxy.base_url}/sso/key/generate", headers={"Host": host})
            assert response.status_code == 400, host
            assert "location" not in response.headers
            assert set_cookie(response, "hookjail_oauth") is None
            callback = client.get(
                f"{proxy.base_url}/sso/callback", params={"code": "c", "state": "s"}, headers={"Host": host}
            )
            assert callback.status_code == 400
        # loopback names are fine: the code goes back to this machine
        for host in (f"127.0.0.1:{proxy.port}", f"localhost:{proxy.port}"):
            location, _ = begin(client, proxy, Host=host)
            assert query(location)["redirect_uri"] == f"http://{host}/sso/callback"
    log = proxy.log()
    assert "refused a sign-in reached through Host evil.example" in log
    assert "PROXY_BASE_URL" in log


def test_proxy_base_url_decides_the_callback_whatever_the_host(start: ProxyFactory) -> None:
    proxy = start(
        hook_source=None,
        env={"PROXY_BASE_URL": "https://hookjail.example.com/", "OAUTHLIB_INSECURE_TRANSPORT": "1"},  # http test IdP
    )
    with new_client() as client:
        location, response = begin(client, proxy, Host="evil.example")
    assert query(location)["redirect_uri"] == "https://hookjail.example.com/sso/callback"
    header = set_cookie(response, "__Host-hookjail_oauth")
    assert header is not None
    assert {"secure", "httponly"} <= attributes(header).keys()
    assert attributes(header)["path"] == "/"
    assert "domain" not in attributes(header)


# --- X-Forwarded-Proto: trusted from the configured addresses only -----------------------------------------


def test_a_trusted_tls_terminator_gives_an_https_callback_and_secure_cookies(
    start: ProxyFactory, tokens: TokenCounter
) -> None:
    # the provider here is plain http (a real one is https): let oauthlib talk to it from an https login
    proxy = start(
        hook_source=None, env={"GENERIC_TOKEN_ENDPOINT": tokens.url, "OAUTHLIB_INSECURE_TRANSPORT": "1"}
    )  # FORWARDED_ALLOW_IPS unset: loopback, where this test connects from, is trusted
    https = {"X-Forwarded-Proto": "https"}
    with new_client() as client:
        location, response = begin(client, proxy, **https)
        assert query(location)["redirect_uri"] == f"https://127.0.0.1:{proxy.port}/sso/callback"
        header = set_cookie(response, "__Host-hookjail_oauth")
        assert header is not None, response.headers
        assert {"secure", "httponly", "max-age", "path", "samesite"} <= attributes(header).keys()
        callback = authorize(client, location, "hank@example.com")
    assert callback.startswith(f"https://127.0.0.1:{proxy.port}/sso/callback?")
    # the terminator turns the browser's https request into http to the proxy, with the header
    plain = callback.replace("https://", "http://", 1)
    cookie = {"Cookie": f"__Host-hookjail_oauth={cookie_value(header)}"}
    # an http request (no header) does not read the __Host- cookie: refused, and the provider is not asked
    assert httpx.get(plain, headers=cookie).status_code == 401
    assert tokens.count == 0
    response = httpx.get(plain, headers=https | cookie)
    assert response.status_code == 303, response.text[:500]
    assert tokens.count == 1
    assert "redirect_uri=https%3A%2F%2F127.0.0.1" in tokens.bodies[0]
    session = set_cookie(response, "token")
    assert session is not None
    assert "secure" in attributes(session)
    deleted = set_cookie(response, "__Host-hookjail_oauth")
    assert deleted is not None
    assert attributes(deleted).get("max-age") == "0"
    assert "secure" in attributes(deleted)
    ui = httpx.get(f"{proxy.base_url}/ui/", headers=https, cookies={"token": cookie_value(session)})
    assert signed_in_as(ui) == "hank"


@pytest.mark.parametrize("how", ["flag", "env"])
def test_forwarded_proto_from_an_untrusted_address_is_ignored(start: ProxyFactory, how: str) -> None:
    if how == "flag":
        proxy = start(hook_source=None, extra_args=("--forwarded-allow-ips", "192.0.2.1"))
    else:
        proxy = start(hook_source=None, env={"FORWARDED_ALLOW_IPS": "192.0.2.1"})
    with new_client() as client:
        location, response = begin(client, proxy, **{"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"})
    assert query(location)["redirect_uri"] == f"http://127.0.0.1:{proxy.port}/sso/callback"
    assert set_cookie(response, "__Host-hookjail_oauth") is None
    header = set_cookie(response, "hookjail_oauth")
    assert header is not None
    assert "secure" not in attributes(header)


# --- 2. PKCE by default ----------------------------------------------------------------------------------


def test_pkce_is_on_by_default_and_the_verifier_matches(start: ProxyFactory, tokens: TokenCounter) -> None:
    proxy = start(hook_source=None, env={"GENERIC_CLIENT_USE_PKCE": "", "GENERIC_TOKEN_ENDPOINT": tokens.url})
    with new_client() as client:
        location, response = begin(client, proxy)
        params = query(location)
        assert params["code_challenge_method"] == "S256"
        cookie = cookie_value(set_cookie(response, "hookjail_oauth") or "")
        assert cookie not in location  # the browser's nonce never travels in the URL
        finished = client.get(authorize(client, location, "ivy@example.com"), follow_redirects=True)
        assert signed_in_as(finished) == "ivy"
    (body,) = tokens.bodies
    verifier = query(f"?{body}")["code_verifier"]
    assert 43 <= len(verifier) <= 128
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert challenge == params["code_challenge"]
    assert verifier not in location


def test_generic_client_use_pkce_false_turns_it_off(start: ProxyFactory) -> None:
    proxy = start(hook_source=None, env={"GENERIC_CLIENT_USE_PKCE": "false"})
    with new_client() as client:
        location, _ = begin(client, proxy)
        assert "code_challenge" not in query(location)
        assert signed_in_as(login(client, proxy, "jay@example.com")) == "jay"


# --- 3. the state: signed, single-use, bound to the browser ------------------------------------------------


def test_the_login_cookie_is_httponly_lax_short_lived_and_deleted_on_use(start: ProxyFactory) -> None:
    proxy = start(hook_source=None)
    with new_client() as client:
        location, response = begin(client, proxy)
        header = set_cookie(response, "hookjail_oauth")
        assert header is not None
        flags = attributes(header)
        assert {"httponly", "path", "samesite", "max-age"} <= flags.keys()
        assert "secure" not in flags  # plain http
        assert (flags["samesite"].lower(), flags["max-age"], flags["path"]) == ("lax", "600", "/")
        assert "sso_state" not in response.headers.get("set-cookie", "")
        assert "pkce_code_verifier" not in response.headers.get("set-cookie", "")
        finished = client.get(authorize(client, location, "kim@example.com"))
        assert finished.status_code == 303
        deleted = set_cookie(finished, "hookjail_oauth")
        assert deleted is not None
        assert attributes(deleted)["max-age"] == "0"
        assert "hookjail_oauth" not in client.cookies


def test_a_replayed_state_is_refused_before_the_provider(start: ProxyFactory, tokens: TokenCounter) -> None:
    proxy = start(hook_source=None, env={"GENERIC_TOKEN_ENDPOINT": tokens.url})
    with new_client() as client:
        location, response = begin(client, proxy)
        cookie = cookie_value(set_cookie(response, "hookjail_oauth") or "")
        callback = authorize(client, location, "lee@example.com")
        assert client.get(callback).status_code == 303
    assert tokens.count == 1
    # the same callback with the same cookie (an attacker who copied both, or a browser's history)
    replay = httpx.get(callback, headers=oauth_cookie(cookie))
    assert replay.status_code == 401
    assert set_cookie(replay, "token") is None
    assert "not valid" in replay.text
    assert tokens.count == 1  # refused by the state check, not by the provider
    assert "the state was already used (a replay)" in proxy.log()


def test_a_state_from_another_browser_is_refused(start: ProxyFactory, tokens: TokenCounter) -> None:
    proxy = start(hook_source=None, env={"GENERIC_TOKEN_ENDPOINT": tokens.url})
    # the attacker signs in as themselves and keeps the callback link (login CSRF) ...
    with new_client() as attacker:
        location, _ = begin(attacker, proxy)
        link = authorize(attacker, location, "mallory@example.com")
        # ... and the victim's browser, with a login of its own under way or none, follows it
        with new_client() as victim:
            begin(victim, proxy)
            for response in (victim.get(link), httpx.get(link)):
                assert response.status_code == 401
                assert set_cookie(response, "token") is None
            assert "token" not in victim.cookies
        assert tokens.count == 0
        assert proxy.query("SELECT * FROM ui_sessions") == []
        # the link itself was fine: in the browser that started it, it still signs in
        assert signed_in_as(attacker.get(link, follow_redirects=True)) == "mallory"
    assert tokens.count == 1
    log = proxy.log()
    assert "does not belong to this browser's login cookie" in log
    assert "the browser sent no login cookie" in log


def test_a_tampered_forged_or_expired_state_is_refused(start: ProxyFactory, tokens: TokenCounter) -> None:
    proxy = start(hook_source=None, env={"GENERIC_TOKEN_ENDPOINT": tokens.url})
    with new_client() as client:
        location, response = begin(client, proxy)
        cookie = cookie_value(set_cookie(response, "hookjail_oauth") or "")
        link = authorize(client, location, "max@example.com")
        state = query(link)["state"]
        issued, nonce = cookie.split(".")
        old = OAuthStates(MASTER_KEY, clock=lambda: time.time() - 700).begin()
        other_key = OAuthStates("sk-another-master-key").begin()
        attempts = {
            "tampered state": (with_query(link, state=state[:-1] + ("A" if state[-1] != "A" else "B")), cookie),
            "tampered cookie time": (link, f"{int(issued) + 1}.{nonce}"),
            "tampered cookie nonce": (link, f"{issued}.{nonce[::-1]}"),
            "no state": (with_query(link, state=""), cookie),
            "expired": (with_query(link, state=old.state), old.cookie),
            "another master key": (with_query(link, state=other_key.state), other_key.cookie),
            "fastapi-sso's cookie": (with_query(link, state="forged"), cookie),
        }
        for name, (url, value) in attempts.items():
            refused = httpx.get(url, headers={"Cookie": f"hookjail_oauth={value}; sso_state=forged"})
            assert refused.status_code == 401, name
            assert set_cookie(refused, "token") is None, name
        assert tokens.count == 0
        # none of that used up the real one
        assert signed_in_as(client.get(link, follow_redirects=True)) == "max"
    assert tokens.count == 1
    assert "the login took too long (the state expired)" in proxy.log()


# --- 4. provider errors ------------------------------------------------------------------------------------

SCAM = "Your account is locked. Call IT at +1-555-0100 now"
FORGED = "x\nINFO:     hookjail: admin alice logged in\r\n\x1b[2J"


def test_provider_error_text_is_not_shown_and_cannot_forge_log_lines(start: ProxyFactory) -> None:
    proxy = start(hook_source=None)
    callback = f"{proxy.base_url}/sso/callback"
    cases = [
        ({"error": SCAM}, "The identity provider did not sign you in."),
        ({"error": "access_denied", "error_description": SCAM}, "(access_denied)"),
        ({"error": "temporarily_unavailable", "error_description": SCAM}, "try again later"),
        ({"error": FORGED, "error_description": FORGED}, "The identity provider did not sign you in."),
    ]
    for params, expected in cases:
        response = httpx.get(callback, params=params)
        assert response.status_code == 401
        reason = re.search(r'id="reason">([^<]*)<', response.text)
        assert reason is not None
        assert expected in html.unescape(reason.group(1))
        assert "555" not in response.text
        assert "Call IT" not in response.text
        assert "admin alice" not in response.text
    log = proxy.log()
    assert not any(line.startswith("INFO:     hookjail: admin alice") for line in log.splitlines())
    assert "error=x\\nINFO:     hookjail: admin alice logged in\\r\\n\\x1b[2J" in log
    assert "\x1b" not in log
    assert f"error_description={SCAM}" in log  # the operator's to read


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    async with bare_app(tmp_path, PROXY_BASE_URL="https://hookjail.example.com") as application:
        yield application


@pytest.mark.anyio
async def test_provider_error_log_records_are_one_line(app: FastAPI, caplog: pytest.LogCaptureFixture) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://hookjail.example.com") as http:
        with caplog.at_level(logging.INFO, logger="hookjail"):
            response = await http.get("/sso/callback", params={"error": FORGED, "error_description": SCAM + FORGED})
    assert response.status_code == 401
    assert "555" not in response.text
    (record,) = [r for r in caplog.records if "identity provider refused" in r.getMessage()]
    message = record.getMessage()
    assert "\n" not in message
    assert "\r" not in message
    assert "\x1b" not in message
    assert "\\nINFO:     hookjail: admin alice" in message


# --- 5. rate limits, and bogus callbacks never reach the provider ---------------------------------------


@pytest.mark.anyio
async def test_bogus_callbacks_are_rate_limited_and_never_reach_the_provider(
    start: ProxyFactory, tokens: TokenCounter
) -> None:
    proxy = start(hook_source=None, env={"GENERIC_TOKEN_ENDPOINT": tokens.url, "HOOKJAIL_SSO_RATE_LIMIT": "20/minute"})
    with new_client() as client:
        _, response = begin(client, proxy)
        cookie = cookie_value(set_cookie(response, "hookjail_oauth") or "")
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:

        async def bogus(i: int) -> httpx.Response:
            return await http.get(
                f"{proxy.base_url}/sso/callback",
                params={"code": f"stolen-{i}", "state": f"forged-{i}"},
                headers=oauth_cookie(cookie),
            )

        responses = await asyncio.gather(*(bogus(i) for i in range(200)))
    statuses = [r.status_code for r in responses]
    # 20 at once, and one more every 3 s while they run
    assert 20 <= statuses.count(401) <= 21
    assert statuses.count(401) + statuses.count(429) == 200
    for response in responses:
        if response.status_code == 429:
            assert 1 <= int(response.headers["Retry-After"]) <= 3  # 20/minute: a token every 3 s
    assert tokens.count == 0
    # a trusted reverse proxy's X-Forwarded-For is another client, with its own bucket
    other = httpx.get(
        f"{proxy.base_url}/sso/callback", params={"code": "c", "state": "s"}, headers={"X-Forwarded-For": "203.0.113.7"}
    )
    assert other.status_code == 401
    # the login route has its own bucket: 19 more (one was used above; give or take a refill), then 429
    with new_client() as client:
        statuses = [client.get(f"{proxy.base_url}/sso/key/generate").status_code for _ in range(22)]
    first_refused = statuses.index(429)
    assert 19 <= first_refused <= 21
    assert set(statuses[:first_refused]) == {303}
    assert tokens.count == 0


def test_token_buckets_refill_and_say_when() -> None:
    now = [0.0]
    buckets = TokenBuckets(RateLimit(3, 60), clock=lambda: now[0], max_keys=2)
    assert [buckets.take("a") for _ in range(4)] == [None, None, None, 20]
    assert buckets.take("b") is None  # another address
    now[0] = 25.0
    assert buckets.take("a") is None  # one token back after 20 s
    assert buckets.take("a") == 15
    buckets.take("c")  # a third address: the least recently used one is forgotten
    assert len(buckets._buckets) == 2


def test_used_states_are_remembered_within_a_bound() -> None:
    now = [1_000_000.0]
    states = OAuthStates(MASTER_KEY, max_remembered=3, clock=lambda: now[0])
    first = states.begin()
    states.finish(first.cookie, first.state)
    for _ in range(5):
        another = states.begin()
        states.finish(another.cookie, another.state)
    assert len(states._used) == 3
    assert MASTER_KEY not in repr(states)


# --- 6. logout: same origin only, and it revokes the session -------------------------------------------


def test_a_cross_site_logout_is_refused_and_the_session_survives(start: ProxyFactory) -> None:
    proxy = start(hook_source=None)
    with new_client() as client:
        login(client, proxy, "nora@example.com")
        token = client.cookies["token"]
    cookies = {"token": token}
    logout = f"{proxy.base_url}/ui/logout"
    forged = [
        {"Origin": "http://localhost:9999", "Sec-Fetch-Site": "cross-site"},
        {"Origin": f"http://127.0.0.1:{proxy.port + 1}", "Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
    ]
    for headers in forged:
        response = httpx.post(logout, cookies=cookies, headers=headers)
        assert response.status_code == 403, headers
        assert 'id="logout-refused"' in response.text
        assert set_cookie(response, "token") is None  # the cookie is not cleared ...
        assert len(proxy.sessions("nora")) == 1  # ... nor the session revoked
    assert signed_in_as(httpx.get(f"{proxy.base_url}/ui/", cookies=cookies)) == "nora"
    assert "refused a cross-site logout (Origin http://localhost:9999, Sec-Fetch-Site cross-site)" in proxy.log()
    # GET never logs out
    assert httpx.get(logout, cookies=cookies).status_code == 200
    assert len(proxy.sessions("nora")) == 1
    # the proxy's own page (same origin) does, and revokes the session the cookie names
    response = httpx.post(logout, cookies=cookies, headers={"Origin": proxy.base_url, "Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 303
    assert proxy.sessions("nora") == []
    assert signed_in_as(httpx.get(f"{proxy.base_url}/ui/", cookies=cookies)) is None


def test_logout_by_origin_alone_when_the_browser_sends_no_fetch_metadata(start: ProxyFactory) -> None:
    proxy = start(hook_source=None)
    with new_client() as client:
        login(client, proxy, "otto@example.com")
        response = client.post(f"{proxy.base_url}/ui/logout", headers={"Origin": f"http://127.0.0.1:{proxy.port}"})
    assert response.status_code == 303
    assert proxy.sessions("otto") == []


# --- settings -------------------------------------------------------------------------------------------

GENERIC = {"GENERIC_CLIENT_ID": "c", "GENERIC_CLIENT_SECRET": "s", "GENERIC_DISCOVERY_URL": "https://idp.example/"}


@pytest.mark.parametrize(
    ("value", "expected"), [(None, True), ("", True), ("true", True), ("TRUE", True), ("false", False), ("0", False)]
)
def test_generic_pkce_setting(value: str | None, expected: bool) -> None:
    environ = GENERIC | ({} if value is None else {"GENERIC_CLIENT_USE_PKCE": value})
    generic = sso_settings_from_env(environ).generic
    assert generic is not None
    assert generic.use_pkce is expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GENERIC_CLIENT_USE_PKCE", "maybe"),
        ("HOOKJAIL_SSO_RATE_LIMIT", "lots"),
        ("HOOKJAIL_SSO_RATE_LIMIT", "10/fortnight"),
        ("PROXY_BASE_URL", "proxy.example.com"),
        ("PROXY_BASE_URL", "https://user@proxy.example.com"),
    ],
)
def test_bad_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        sso_settings_from_env(GENERIC | {name: value})


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, RateLimit(60, 60)), ("30/minute", RateLimit(30, 60)), ("5/s", RateLimit(5, 1)), ("off", None)],
)
def test_rate_limit_setting(value: str | None, expected: RateLimit | None) -> None:
    environ = GENERIC | ({} if value is None else {"HOOKJAIL_SSO_RATE_LIMIT": value})
    assert sso_settings_from_env(environ).rate_limit == expected
