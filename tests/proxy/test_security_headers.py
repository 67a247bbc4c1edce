"""Security headers on every response: through real HTTP with the real ``hookjail`` process and OpenID provider,
and in-process for what a loopback test cannot make (a direct https request, an unhandled error)."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from proxy.web._headers import DOCS_CSP, HSTS, STRICT_CSP, TEMPLATES, install_security_headers
from tests.proxy.harness import MASTER_KEY, Proxy, ProxyFactory, login, new_client

STRICT = {
    "content-security-policy": STRICT_CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def assert_strict(response: httpx.Response, *, https: bool = False) -> None:
    where = f"{response.request.method} {response.request.url} ({response.status_code})"
    for name, value in STRICT.items():
        assert response.headers.get_list(name) == [value], f"{name} on {where}"
    assert response.headers.get_list("strict-transport-security") == ([HSTS] if https else []), where


def test_the_policy_forbids_script_framing_and_foreign_styles() -> None:
    directives = dict(d.split(" ", 1) for d in STRICT_CSP.split("; "))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    styles = directives["style-src"].split()
    assert styles[0] == "'self'"
    assert all(source.startswith("'sha256-") for source in styles[1:])
    assert "unsafe" not in STRICT_CSP
    assert "frame-ancestors 'none'" in DOCS_CSP


def test_the_templates_have_no_script_and_no_inline_style_attributes() -> None:
    for path in TEMPLATES.glob("*.html"):
        text = path.read_text()
        assert "<script" not in text.lower(), path.name
        assert not re.search(r"\sstyle\s*=", text, re.I), path.name
        assert not re.search(r"\son[a-z]+\s*=", text, re.I), path.name


def style_sources(page: str) -> list[str]:
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(block.encode()).digest()).decode() + "'"
        for block in re.findall(r"<style>(.*?)</style>", page, re.S)
    ]


def test_every_kind_of_response_carries_the_headers(start: ProxyFactory) -> None:
    proxy = start()
    bearer = {"Authorization": f"Bearer {MASTER_KEY}"}
    with new_client() as client:
        signed_in = login(client, proxy, "alice")
        assert signed_in.status_code == 200
        assert signed_in.url.path == "/ui/"
        assert "Signed in" in signed_in.text
        responses = [
            signed_in,  # the admin UI, signed in
            *(r for r in signed_in.history if r.url.port == proxy.port),  # the callback (303)
            client.get(f"{proxy.base_url}/ui/logout"),  # the logout page
        ]
        style = style_sources(signed_in.text)
        assert style, "the page has a <style> block"
        assert all(source in signed_in.headers["content-security-policy"] for source in style)
    with new_client() as client:
        responses += [
            client.get(f"{proxy.base_url}/ui/"),  # signed out
            client.get(f"{proxy.base_url}/health"),
            client.get(f"{proxy.base_url}/"),  # a redirect
            client.get(f"{proxy.base_url}/ui"),  # another redirect (307)
            client.get(f"{proxy.base_url}/user/info", params={"user_id": "alice"}),  # JSON 401
            client.get(f"{proxy.base_url}/user/info", params={"user_id": "nobody"}, headers=bearer),  # JSON 404
            client.post(f"{proxy.base_url}/user/new", content=b"{", headers=bearer),  # JSON 422
            client.get(f"{proxy.base_url}/no/such/page"),  # 404
            client.get(f"{proxy.base_url}/sso/callback", params={"error": "access_denied"}),  # the error page
            client.get(f"{proxy.base_url}/sso/key/generate"),  # the redirect to the provider
        ]
    statuses = [response.status_code for response in responses]
    assert statuses == [200, 303, 200, 200, 200, 303, 307, 401, 404, 422, 404, 401, 303], statuses
    assert "Login failed" in responses[-2].text
    for response in responses:
        assert_strict(response)


def test_hsts_only_when_uvicorn_sees_https(start: ProxyFactory) -> None:
    proxy: Proxy = start(hook_source=None)
    https = {"X-Forwarded-Proto": "https"}  # trusted from loopback: uvicorn's default --forwarded-allow-ips
    with new_client() as client:
        assert_strict(client.get(f"{proxy.base_url}/health"))
        assert_strict(client.get(f"{proxy.base_url}/health", headers=https), https=True)
        assert_strict(client.get(f"{proxy.base_url}/", headers=https), https=True)
        assert_strict(client.get(f"{proxy.base_url}/user/list", headers=https), https=True)
        assert_strict(client.get(f"{proxy.base_url}/health", headers={"X-Forwarded-Proto": "http"}))


def test_the_docs_get_a_relaxed_policy_that_still_forbids_framing(start: ProxyFactory) -> None:
    proxy = start(hook_source=None)
    with new_client() as client:
        docs = client.get(f"{proxy.base_url}/docs")
        openapi = client.get(f"{proxy.base_url}/openapi.json")
    assert docs.status_code == 200
    assert "swagger-ui" in docs.text
    # the console's own policy for /docs (proxy/web/_console.py): Swagger UI from the proxy, its inline script by hash
    policy = docs.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert "cdn.jsdelivr.net" not in policy
    assert docs.headers["x-frame-options"] == "DENY"
    assert_strict(openapi)


# --- in-process: a direct https request and an unhandled error -----------------------------------------------


def asgi_app() -> Starlette:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"hello over {request.url.scheme}")

    async def own_policy(request: Request) -> PlainTextResponse:
        return PlainTextResponse("mine", headers={"Referrer-Policy": "same-origin"})

    async def broken(request: Request) -> PlainTextResponse:
        raise RuntimeError("boom")

    app = Starlette(routes=[Route("/", hello), Route("/own", own_policy), Route("/broken", broken)])
    install_security_headers(app)
    return app


@pytest.mark.anyio
async def test_hsts_on_a_direct_https_request_and_headers_on_an_unhandled_error() -> None:
    transport = httpx.ASGITransport(app=asgi_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://hookjail.example") as client:
        response = await client.get("/")
        assert response.text == "hello over https"
        assert_strict(response, https=True)
        broken = await client.get("/broken")  # Starlette's own 500, outside the routes
        assert broken.status_code == 500
        assert_strict(broken, https=True)
        own = await client.get("/own")  # a header the application set is kept
        assert own.headers.get_list("referrer-policy") == ["same-origin"]
        assert own.headers["content-security-policy"] == STRICT_CSP
    async with httpx.AsyncClient(transport=transport, base_url="http://hookjail.example") as client:
        response = await client.get("/")
        assert response.text == "hello over http"
        assert_strict(response)
