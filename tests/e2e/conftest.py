from __future__ import annotations

from tests.idp.provider import idp, proxy_ports
from tests.proxy.harness import start

__all__ = ("idp", "proxy_ports", "start")
