"""Shared fixtures: the anyio backend (tests use anyio's pytest plugin, not pytest-asyncio), and a victim process
for hostile hooks."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def victim() -> Iterator[subprocess.Popen[bytes]]:
    """A process of the proxy's uid that no hook may get killed, nor touch the limits of."""
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()
