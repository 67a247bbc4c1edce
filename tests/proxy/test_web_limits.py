"""The gateway under attack: bodies capped before they are read, the master key checked before a body is parsed,
and a public ``/health`` that says nothing but the status and version.

In-process through httpx's ASGI transport where that shows the behaviour (how much of a streamed body the app
read), and against the real ``hookjail`` process over a socket where only that can (its memory, a 413 sent
before any of the body).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from proxy.web._bodylimit import MAX_BODY_BYTES, BodyLimit
from tests.idp.provider import free_port
from tests.proxy.harness import MASTER_KEY, REPO, Proxy, start_proxy, write_config, write_hook
from tests.proxy.inprocess import asgi_client, offline_environ, running_app

CHUNK = b"x" * 65536
#: A 50 MiB body: 800 chunks of 64 KiB.
HUGE_CHUNKS = 800
BEARER = {"Authorization": f"Bearer {MASTER_KEY}"}
JSON = {"Content-Type": "application/json"}

#: A hook that fails at import with a secret in its error: ``int()`` quotes the bad literal.
SECRET = "sk-live-7f3a9c1e5b"
LEAKY_HOOK = f"""
TIMEOUT = int("{SECRET}")

def custom_sso_handler(userIDPInfo):
    return None
"""


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    async with running_app(write_config(tmp_path, hook_source=None), offline_environ()) as application:
        yield application


def in_process(app: FastAPI, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    return asgi_client(app, headers=headers)


class Stream:
    """A streamed (chunked) body of ``chunks`` x 64 KiB that counts how much of it was read."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.read += 1
            yield CHUNK


# --- the cap, in-process ----------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_declared_oversize_body_is_a_413_without_calling_the_app() -> None:
    calls: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=BodyLimit(app, 10)), base_url="http://t") as http:
        refused = await http.post("/", content=b"x" * 11)
        accepted = await http.post("/", content=b"x" * 10)
    assert (refused.status_code, refused.headers["connection"]) == (413, "close")
    assert refused.json()["error"]["code"] == "413"
    assert accepted.status_code == 200
    assert len(calls) == 1


@pytest.mark.anyio
async def test_a_streamed_body_is_cut_off_at_the_cap_and_the_apps_answer_dropped() -> None:
    received: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            received.append(message)
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": b"the app's own answer"})

    stream = Stream(HUGE_CHUNKS)
    limited = BodyLimit(app, 3 * len(CHUNK))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=limited), base_url="http://t") as http:
        response = await http.post("/", content=stream)
    assert response.status_code == 413
    assert stream.read == 4  # the read that passed the cap, not one more
    assert received[-1] == {"type": "http.disconnect"}


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/user/new", "/team/new", "/team/member_add", "/ui/logout"])
async def test_an_oversize_body_is_a_413_with_or_without_the_key(app: FastAPI, path: str) -> None:
    async with in_process(app, BEARER) as operator, in_process(app) as anyone:
        for http in (operator, anyone):
            response = await http.post(path, content=b"{" + b" " * MAX_BODY_BYTES + b"}", headers=JSON)
            assert response.status_code == 413, response.text


@pytest.mark.anyio
async def test_an_authenticated_streamed_body_is_a_413_once_past_the_cap(app: FastAPI) -> None:
    stream = Stream(HUGE_CHUNKS)
    async with in_process(app, BEARER) as http:
        response = await http.post("/user/new", content=stream, headers=JSON)
    assert response.status_code == 413, response.text
    assert stream.read == MAX_BODY_BYTES // len(CHUNK) + 1  # 1 MiB and one chunk of a 50 MiB stream


@pytest.mark.anyio
async def test_a_body_just_under_the_cap_is_served(app: FastAPI) -> None:
    prefix, suffix = b'{"user_id": "padded", "padding": "', b'"}'  # a field LiteLLM has and hookjail ignores
    body = prefix + b"x" * (MAX_BODY_BYTES - len(prefix) - len(suffix)) + suffix
    assert len(body) == MAX_BODY_BYTES
    async with in_process(app, BEARER) as http:
        response = await http.post("/user/new", content=body, headers=JSON)
    assert response.status_code == 200, response.text


# --- the key before the body, in-process --------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/user/new", "/team/new", "/team/member_add"])
@pytest.mark.parametrize("authorization", [None, "Bearer sk-wrong"])
async def test_an_unauthenticated_streamed_body_is_a_401_and_never_read(
    app: FastAPI, path: str, authorization: str | None
) -> None:
    stream = Stream(HUGE_CHUNKS)
    headers = JSON | ({"Authorization": authorization} if authorization else {})
    async with in_process(app) as http:
        response = await http.post(path, content=stream, headers=headers)
    assert response.status_code == 401, response.text
    assert stream.read == 0


# --- against the real process -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """``hookjail`` without a hook (its memory is the proxy's alone)."""
    directory = tmp_path_factory.mktemp("limits")
    config = write_config(directory, hook_source=None)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GENERIC_", "GOOGLE_", "MICROSOFT_", "PROXY_", "ALLOWED_EMAIL", "LITELLM_"))
    }
    env |= offline_environ(PYTHONPATH=str(REPO))
    proxy = start_proxy(config, free_port(), env)
    try:
        yield proxy
    finally:
        proxy.stop()


def memory(proxy: Proxy) -> dict[str, int]:
    """The process's ``VmRSS`` and ``VmHWM`` (peak) in KiB."""
    status = Path(f"/proc/{proxy.process.pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {name: int(fields[name].split()[0]) for name in ("VmRSS", "VmHWM")}


def reset_peak(proxy: Proxy) -> None:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0); without that the peak since start-up is compared."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{proxy.process.pid}/clear_refs").write_text("5")


def huge_stream() -> Iterator[bytes]:
    for _ in range(HUGE_CHUNKS):
        yield CHUNK


def raw_reply(proxy: Proxy, head: bytes, timeout: float = 5.0) -> bytes:
    """Send only a request's head (no body) and return what the server answers first."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout) as sock:
        sock.sendall(head)
        return sock.recv(65536)


def test_a_50_mib_unauthenticated_body_is_a_quick_401_and_costs_no_memory(server: Proxy) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30.0) as http:
        assert http.post("/user/new", content=b"{}", headers=JSON).status_code == 401  # warm up the route
        reset_peak(server)
        before = memory(server)
        started = time.monotonic()
        response = http.post("/user/new", content=huge_stream(), headers=JSON)
        elapsed = time.monotonic() - started
        after = memory(server)
        health_started = time.monotonic()
        health = http.get("/health")
        health_elapsed = time.monotonic() - health_started
    assert response.status_code == 401, response.text
    assert response.json()["error"]["type"] == "auth_error"
    # reading and parsing the 50 MiB costs more than 100 MiB at its peak; not reading it costs nothing
    assert after["VmHWM"] - before["VmRSS"] < 16 * 1024, (before, after)
    assert elapsed < 15, elapsed
    assert health.status_code == 200
    assert health_elapsed < 2, health_elapsed


@pytest.mark.parametrize("authorization", [b"", f"Authorization: Bearer {MASTER_KEY}\r\n".encode()])
def test_a_declared_50_mib_body_is_a_413_before_any_of_it_is_sent(server: Proxy, authorization: bytes) -> None:
    head = (
        b"POST /user/new HTTP/1.1\r\nHost: hookjail.test\r\nContent-Type: application/json\r\n"
        + authorization
        + f"Content-Length: {HUGE_CHUNKS * len(CHUNK)}\r\n\r\n".encode()
    )
    reply = raw_reply(server, head)
    assert reply.startswith(b"HTTP/1.1 413 "), reply[:200]
    assert b"connection: close" in reply.lower()


def test_malformed_json_without_the_key_is_a_401_over_http(server: Proxy) -> None:
    with httpx.Client(base_url=server.base_url, timeout=10.0) as http:
        response = http.post("/user/new", content=b'{"user_id": "x", ', headers=JSON)
    assert response.status_code == 401


# --- /health -------------------------------------------------------------------------------------------------------


@pytest.fixture
async def leaky_app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    """The app with a hook that loaded, then was changed into one that fails to import with a secret in its
    error (the proxy keeps the last good version and records the error)."""
    config = write_config(tmp_path, hook_settings={"sandbox": "permissive"})
    async with running_app(config, offline_environ(), allow_weak_sandbox=True) as application:
        write_hook(tmp_path / "custom_sso.py", LEAKY_HOOK)
        await application.state.hook.reload_if_changed()
        assert SECRET in application.state.hook.last_reload_error
        yield application


@pytest.mark.anyio
async def test_public_health_shows_no_hook_database_or_error_details(leaky_app: FastAPI) -> None:
    async with in_process(leaky_app) as http:
        response = await http.get("/health")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert set(body) == {"status", "version"}
    assert body["status"] == "ok"
    for word in (SECRET, "custom_sso", "layers", "seccomp", "landlock", "database", "reload"):
        assert word not in response.text


@pytest.mark.anyio
async def test_health_with_the_master_key_has_the_details(leaky_app: FastAPI) -> None:
    async with in_process(leaky_app, BEARER) as http:
        response = await http.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"]) == ("ok", "ok")
    assert body["hook"]["handler"] == "custom_sso.custom_sso_handler"
    assert body["hook"]["layers"]
    assert SECRET in body["hook"]["last_reload_error"]


@pytest.mark.anyio
async def test_health_with_a_wrong_key_is_a_401_without_details(leaky_app: FastAPI) -> None:
    async with in_process(leaky_app, {"Authorization": "Bearer sk-guess"}) as http:
        response = await http.get("/health")
    assert response.status_code == 401
    assert SECRET not in response.text
