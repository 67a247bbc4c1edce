"""Network namespace, Landlock TCP rules and the socket-family filter."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from ._jail import Jail


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP listener on the host's loopback (the proxy's own port, as far as the hook knows)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def test_cant_connect_tcp_to_host_loopback(jail: Jail, listener: int) -> None:
    report = jail.run(
        f"""
        import socket
        def attempt(ctx):
            socket.create_connection(("127.0.0.1", {listener}), timeout=2)
        """
    )
    assert report["errno"] == "EACCES"  # Landlock's TCP rule answers before the empty namespace would


def test_cant_bind_tcp_port(jail: Jail) -> None:
    report = jail.run('import socket\ndef attempt(ctx):\n    socket.socket().bind(("127.0.0.1", 0))')
    assert report["errno"] == "EACCES"


def test_cant_send_udp_to_loopback(jail: Jail) -> None:
    report = jail.run(
        """
        import socket
        def attempt(ctx):
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", 53))
        """
    )
    assert report["errno"] == "ENETUNREACH"


def test_cant_resolve_dns(jail: Jail) -> None:
    report = jail.run('import socket\ndef attempt(ctx):\n    return socket.getaddrinfo("example.com", 443)')
    # No resolver configuration is readable and no name server reachable: "try again later".
    assert report["type"] == "gaierror"
    assert report["errno"] == socket.EAI_AGAIN


def test_cant_create_unix_socket(jail: Jail) -> None:
    report = jail.run("import socket\ndef attempt(ctx):\n    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)")
    assert report["errno"] == "EPERM"


def test_cant_create_netlink_socket(jail: Jail) -> None:
    report = jail.run(
        """
        import socket
        def attempt(ctx):
            socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        """
    )
    assert report["errno"] == "EPERM"


def test_cant_create_packet_socket(jail: Jail) -> None:
    report = jail.run("import socket\ndef attempt(ctx):\n    socket.socket(socket.AF_PACKET, socket.SOCK_RAW)")
    assert report["errno"] == "EPERM"


def test_zygote_cant_create_unix_socket(jail: Jail) -> None:
    report = jail.run(
        "import socket\ndef attempt(ctx):\n    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)",
        where="zygote",
    )
    assert report["errno"] == "EPERM"


def test_can_use_socketpair(jail: Jail) -> None:
    report = jail.run(
        """
        import socket
        def attempt(ctx):
            a, b = socket.socketpair()
            a.sendall(b"ping")
            return b.recv(4).decode()
        """
    )
    assert report["value"] == "ping"


def test_network_allowed_can_connect_to_host_loopback(jail: Jail, listener: int) -> None:
    report = jail.run(
        f"""
        import socket
        def attempt(ctx):
            with socket.create_connection(("127.0.0.1", {listener}), timeout=5) as conn:
                return conn.getpeername()[1]
        """,
        network=True,
    )
    assert report["value"] == listener
    assert report["layers"]["network_namespace"] == "host network (allowed)"


def test_network_allowed_still_cant_create_unix_socket(jail: Jail) -> None:
    report = jail.run(
        "import socket\ndef attempt(ctx):\n    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)",
        network=True,
    )
    assert report["errno"] == "EPERM"
