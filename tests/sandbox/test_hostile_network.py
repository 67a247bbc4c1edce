"""Hostile hooks against the network, through the real runner; and the opposite with ``network=True``."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._hooks import call_once, sandbox, write_hook

pytestmark = pytest.mark.anyio


@pytest.fixture
def proxy_port() -> Iterator[int]:
    """A TCP listener on loopback standing for the proxy's own port."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


@pytest.fixture
def http_server() -> Iterator[str]:
    """A local HTTP server answering every GET with a fixed body; yields its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"hello from the host"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


async def test_cant_connect_tcp_to_proxy_port(operator_dir: Path, proxy_port: int) -> None:
    spec = write_hook(
        operator_dir,
        f"""
        import socket
        def handler(info):
            return observe(lambda: socket.create_connection(("127.0.0.1", {proxy_port}), timeout=2).close())
        """,
    )
    assert (await call_once(spec, sandbox(operator_dir))).value["errno"] == "EACCES"


async def test_cant_connect_tcp_elsewhere(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        """
        import socket
        def handler(info):
            return observe(lambda: socket.create_connection(("93.184.215.14", 80), timeout=2).close())
        """,
    )
    assert (await call_once(spec, sandbox(operator_dir))).value["errno"] == "EACCES"


async def test_cant_send_udp_to_loopback(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        """
        import socket
        def handler(info):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            return observe(lambda: udp.sendto(b"stolen", ("127.0.0.1", 53)))
        """,
    )
    assert (await call_once(spec, sandbox(operator_dir))).value["errno"] == "ENETUNREACH"


async def test_cant_resolve_dns(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        """
        import socket
        def handler(info):
            return observe(lambda: socket.getaddrinfo("example.com", 443))
        """,
    )
    value = (await call_once(spec, sandbox(operator_dir))).value
    assert value == {"errno": socket.EAI_AGAIN, "type": "gaierror"}


async def test_cant_open_unix_socket(operator_dir: Path) -> None:
    # A unix socket would reach any listener on the filesystem (a database, a container runtime).
    spec = write_hook(
        operator_dir,
        """
        import socket
        def handler(info):
            return observe(lambda: socket.socket(socket.AF_UNIX).connect("/run/postgresql/.s.PGSQL.5432"))
        """,
    )
    assert (await call_once(spec, sandbox(operator_dir))).value["errno"] == "EPERM"


async def test_network_allow_reaches_local_http_server(operator_dir: Path, http_server: str) -> None:
    spec = write_hook(
        operator_dir,
        f"""
        import urllib.request
        def handler(info):
            with urllib.request.urlopen("{http_server}", timeout=5) as response:
                return response.read().decode()
        """,
    )
    result = await call_once(spec, sandbox(operator_dir, network=True))
    assert result.value == "hello from the host"


async def test_network_allow_still_cant_read_config(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        """
        import os
        def handler(info):
            return observe(lambda: open(os.path.join(os.path.dirname(__file__), "config.yaml")).read())
        """,
    )
    assert (await call_once(spec, sandbox(operator_dir, network=True))).value["errno"] == "EACCES"
