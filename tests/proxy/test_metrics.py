"""``GET /metrics``, ``Server-Timing`` on the callback, backpressure, and the shared TLS context of the login path."""

from __future__ import annotations

import re
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import anyio
import fastapi_sso.sso.base
import httpx
import pytest
from fastapi import FastAPI
from fastapi_sso.sso.generic import create_provider
from starlette.requests import Request

from proxy._metrics import Metrics, PhaseTimer
from proxy._sso import share_tls_context, shared_tls_context
from runner import HookRunner, HookSpec, Limits, Sandbox
from tests.idp.provider import free_port
from tests.proxy.harness import MASTER_KEY, Proxy, ProxyFactory, login, new_client
from tests.proxy.inprocess import asgi_client, bare_app

OPERATOR = {"Authorization": f"Bearer {MASTER_KEY}"}

#: Looks the user up (a host call), then refuses users named fail*; the others get a viewer's values.
LOOKUP_HOOK = """
from sdk import NotFoundError, SSOUserDefinedValues, user_info

async def custom_sso_handler(userIDPInfo):
    try:
        await user_info(user_id=userIDPInfo.id)
    except NotFoundError:
        pass
    if userIDPInfo.id.startswith("fail"):
        raise RuntimeError("refused on purpose")
    return SSOUserDefinedValues(
        models=[], user_id=userIDPInfo.id, user_email=userIDPInfo.email,
        user_role="internal_user_viewer", max_budget=1.0, budget_duration="1d",
    )
"""

#: Holds its worker slot for 1.2 s.
SLOW_HOOK = """
import time

def custom_sso_handler(userIDPInfo):
    time.sleep(1.2)
    return {"models": [], "user_id": userIDPInfo.id, "user_email": userIDPInfo.email,
            "user_role": "internal_user_viewer", "max_budget": 1.0, "budget_duration": "1d"}
"""

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def scrape(proxy: Proxy) -> dict[str, float]:
    """``/metrics`` as ``{'name{labels}': value}``."""
    response = httpx.get(f"{proxy.base_url}/metrics", headers=OPERATOR, timeout=10.0)
    assert response.status_code == 200, response.text
    return parse(response.text)


def parse(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is not None and not line.startswith("#"):
            samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


def server_timing(response: httpx.Response) -> dict[str, float]:
    callback = next(r for r in (*response.history, response) if urlsplit(str(r.url)).path == "/sso/callback")
    header = callback.headers["server-timing"]
    return {name: float(value) for name, value in re.findall(r"(\w+);dur=([0-9.]+)", header)}


# --- in process ----------------------------------------------------------------------------------------------


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    async with bare_app(tmp_path, PROXY_BASE_URL="https://hookjail.example.com") as application:
        yield application


def asgi(app: FastAPI) -> httpx.AsyncClient:
    return asgi_client(app, "https://hookjail.example.com")


@pytest.mark.anyio
@pytest.mark.parametrize("authorization", [None, "Bearer sk-wrong", f"Basic {MASTER_KEY}", MASTER_KEY])
async def test_metrics_need_the_master_key(app: FastAPI, authorization: str | None) -> None:
    async with asgi(app) as http:
        response = await http.get("/metrics", headers={"Authorization": authorization} if authorization else {})
    assert response.status_code == 401
    assert "hookjail_" not in response.text


@pytest.mark.anyio
async def test_metrics_are_prometheus_text_of_the_apps_own_registry(app: FastAPI) -> None:
    async with asgi(app) as http:
        await http.get("/sso/callback")  # no state, no code: counted
        response = await http.get("/metrics", headers=OPERATOR)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = parse(response.text)
    assert samples['hookjail_logins_total{outcome="state_invalid"}'] == 1
    assert samples['hookjail_logins_total{outcome="ok"}'] == 0
    assert samples['hookjail_database_errors_total{operation="login"}'] == 0
    # nothing of prometheus_client's global registry (process and platform collectors)
    assert "process_cpu_seconds_total" not in response.text
    assert "python_info" not in response.text


def test_a_phase_timer_adds_up_each_phase() -> None:
    timer = PhaseTimer()
    with timer.phase("db"):
        time.sleep(0.01)
    with timer.phase("db"):
        time.sleep(0.01)
    header = timer.header()
    values = dict(re.findall(r"(\w+);dur=([0-9.]+)", header))
    assert list(values) == ["idp", "hook", "db", "total"]
    assert float(values["idp"]) == 0
    assert 20 <= float(values["db"]) <= float(values["total"])


def test_label_values_a_hook_chooses_are_bounded() -> None:
    metrics = Metrics()
    for index in range(50):
        metrics.host_call(f"made_up_{index}", "ok")
    metrics.login("no such outcome")
    samples = parse(metrics.render().decode())
    assert samples['hookjail_host_calls_total{method="other",outcome="ok"}'] == 50
    assert not any("made_up" in name for name in samples)
    assert samples['hookjail_logins_total{outcome="error"}'] == 1


# --- the TLS context of the login path -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_fastapi_sso_builds_no_tls_context_per_login(monkeypatch: pytest.MonkeyPatch) -> None:
    """fastapi-sso's process_login makes an httpx client per login; it must reuse the one shared TLS context
    (building one parses the CA bundle: ~18 ms of CPU on the event loop)."""

    share_tls_context()
    shared = shared_tls_context()
    built: list[object] = []
    original = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    closed = f"http://127.0.0.1:{free_port()}"
    provider_class = create_provider(
        name="generic",
        discovery_document={
            "authorization_endpoint": f"{closed}/auth",
            "token_endpoint": f"{closed}/token",
            "userinfo_endpoint": f"{closed}/me",
        },
    )
    scope = {"type": "http", "method": "GET", "path": "/sso/callback", "query_string": b"code=c&state=s"}
    scope |= {"headers": [(b"host", b"127.0.0.1")], "scheme": "http", "server": ("127.0.0.1", 80)}
    for _ in range(3):
        sso = provider_class("client", "secret", "http://127.0.0.1/sso/callback", allow_insecure_http=True)
        async with sso:
            with pytest.raises(httpx.ConnectError):  # nothing listens: the client was made, the request failed
                await sso.process_login("c", Request(scope), redirect_uri="http://127.0.0.1/sso/callback")
    assert built == []

    client = fastapi_sso.sso.base.httpx.AsyncClient()
    assert client._transport._pool._ssl_context is shared
    await client.aclose()


# --- the runner's counters -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_runner_counts_calls_in_flight_and_waiting_and_estimates_the_wait(tmp_path: Path) -> None:
    hook = tmp_path / "slow.py"
    hook.write_text("import time\n\ndef handler(info):\n    time.sleep(info['s'])\n    return {}\n")
    limits = Limits(timeout=1.5, max_concurrency=1)
    async with HookRunner(HookSpec(str(hook), "handler"), limits, Sandbox(enabled=False)) as runner:
        assert (runner.in_flight, runner.waiting, runner.typical_duration()) == (0, 0, None)
        assert runner.would_miss_deadline() is None  # a slot is free
        await runner.call({"s": 1.0})
        typical = runner.typical_duration()
        assert typical is not None
        assert 1.0 <= typical < 1.5

        async with anyio.create_task_group() as group:
            group.start_soon(runner.call, {"s": 0.6})
            while runner.in_flight == 0:
                await anyio.sleep(0.01)
            # one call holds the only slot: a new one would wait ~typical, then run ~typical: past 1.5 s
            wait = runner.would_miss_deadline()
            assert wait is not None
            assert 0.5 < wait <= typical
            group.start_soon(runner.call, {"s": 0.0})
            while runner.waiting == 0:
                await anyio.sleep(0.01)
            assert (runner.in_flight, runner.waiting) == (1, 1)
        assert (runner.in_flight, runner.waiting) == (0, 0)
        assert runner.would_miss_deadline() is None


# --- the real proxy and IdP ----------------------------------------------------------------------------------


def test_logins_are_counted_timed_and_reported(start: ProxyFactory) -> None:
    proxy = start(hook_source=LOOKUP_HOOK)
    with new_client() as client:
        ok = login(client, proxy, "alice")
    with new_client() as client:
        failed = login(client, proxy, "failbob")
    assert ok.status_code == 200
    assert failed.status_code == 502
    for response in (ok, failed):
        timing = server_timing(response)
        assert list(timing) == ["idp", "hook", "db", "total"]
        assert timing["idp"] > 0
        assert timing["hook"] > 0
        assert timing["db"] > 0
        assert timing["idp"] + timing["hook"] + timing["db"] <= timing["total"]

    samples = scrape(proxy)
    assert samples['hookjail_logins_total{outcome="ok"}'] == 1
    assert samples['hookjail_logins_total{outcome="raised"}'] == 1
    assert samples['hookjail_hook_call_duration_seconds_count{outcome="ok"}'] == 1
    assert samples['hookjail_hook_call_duration_seconds_count{outcome="raised"}'] == 1
    assert samples['hookjail_host_calls_total{method="user_info",outcome="NotFound"}'] == 2
    assert samples["hookjail_hook_calls_in_flight"] == 0
    assert samples["hookjail_hook_calls_waiting"] == 0
    assert samples["hookjail_hook_slots"] == 8
    assert samples["hookjail_hook_template_restarts_total"] == 0
    assert samples['hookjail_hook_reloads_total{result="ok"}'] == 0
    assert samples['hookjail_database_errors_total{operation="login"}'] == 0

    # a reload (the file changed) is counted
    proxy.write_hook(LOOKUP_HOOK.replace("refused on purpose", "refused again"))
    with new_client() as client:
        assert login(client, proxy, "carol").status_code == 200
    samples = scrape(proxy)
    assert samples['hookjail_hook_reloads_total{result="ok"}'] == 1
    assert samples['hookjail_logins_total{outcome="ok"}'] == 2

    # the text log: a line per login; uvicorn's access log without the code and state
    log = proxy.log()
    assert re.search(r"login alice: ok \(303\) in [0-9.]+ ms, run [0-9a-f]{16}", log), log
    assert re.search(r"login failbob: raised \(502\)", log)
    assert re.search(r"GET /sso/callback\?code=\[redacted\]&state=\[redacted\]", log), log
    callback = next(r for r in ok.history if urlsplit(str(r.url)).path == "/sso/callback")
    assert str(callback.url.params["code"]) not in log


def until_callback(client: httpx.Client, proxy: Proxy, user: str) -> str:
    """Sign in at the IdP and return the proxy's callback URL, without following it."""
    response = client.get(f"{proxy.base_url}/sso/key/generate")
    for _ in range(20):
        if response.is_redirect:
            url = urljoin(str(response.url), response.headers["location"])
            if urlsplit(url).port == proxy.port and urlsplit(url).path == "/sso/callback":
                return url
            response = client.get(url)
            continue
        match = re.search(r"<form[^>]*action=\"([^\"]+)\"[^>]*>(.*?)</form>", response.text, re.S)
        assert match is not None, response.text[:500]
        data = {}
        for tag in re.findall(r"<input[^>]*>", match.group(2)):
            attrs = dict(re.findall(r"(\w+)=\"([^\"]*)\"", tag))
            if "name" in attrs:
                data[attrs["name"]] = attrs.get("value", "")
        if "login" in data:
            data |= {"login": user, "password": "any-password"}
        response = client.post(urljoin(str(response.url), match.group(1).replace("&amp;", "&")), data=data)
    raise AssertionError("never came back to the proxy")


@pytest.fixture
def background() -> Iterator[list[threading.Thread]]:
    threads: list[threading.Thread] = []
    yield threads
    for thread in threads:
        thread.join(timeout=30)


def test_a_login_that_would_wait_past_its_deadline_is_a_503_at_once(
    start: ProxyFactory, background: list[threading.Thread]
) -> None:
    """max_concurrency 1, a hook that holds its slot 1.2 s, a 1.6 s deadline: while one login runs the hook,
    another would wait ~1.2 s then run 1.2 s, past 1.6 s. It is refused at once (503, Retry-After), before its
    state is used or its code redeemed: the same callback URL works once the slot is free."""
    proxy = start(hook_source=SLOW_HOOK, hook_settings={"timeout": 1.6, "max_concurrency": 1})
    with new_client() as client:  # one login ends: the runner now knows how long a call takes
        assert login(client, proxy, "warm").status_code == 200

    waiting_client = new_client()
    url = until_callback(waiting_client, proxy, "bob")
    first: list[httpx.Response] = []

    def first_login() -> None:
        with new_client() as client:
            first.append(login(client, proxy, "alice"))

    thread = threading.Thread(target=first_login)
    background.append(thread)
    thread.start()
    deadline = time.monotonic() + 20
    while scrape(proxy)["hookjail_hook_calls_in_flight"] < 1:
        assert time.monotonic() < deadline, proxy.log()
        time.sleep(0.02)

    started = time.monotonic()
    refused = waiting_client.get(url)
    elapsed = time.monotonic() - started
    assert refused.status_code == 503, refused.text
    assert elapsed < 0.8  # at once, not after waiting for the slot
    assert 1 <= int(refused.headers["retry-after"]) <= 2
    assert "Reload this page" in refused.text
    assert "hookjail_oauth" not in refused.headers.get("set-cookie", "")  # the login cookie is kept

    thread.join(timeout=20)
    assert first and first[0].status_code == 200
    retried = waiting_client.get(url, follow_redirects=True)  # same state and code: they were not used
    waiting_client.close()
    assert retried.status_code == 200, retried.text
    assert "bob" in retried.text

    samples = scrape(proxy)
    assert samples['hookjail_logins_total{outcome="busy"}'] == 1
    assert samples['hookjail_logins_total{outcome="ok"}'] == 3
    assert samples['hookjail_logins_total{outcome="timeout"}'] == 0
    assert "every hook slot is busy" in proxy.log()
