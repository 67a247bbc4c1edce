"""Shared fixtures: the anyio backend (tests use anyio's pytest plugin, not pytest-asyncio)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
