"""Fixtures for the sdk's tests: the anyio backend, and the sdk's own pytest plugin (its ``hook_runner``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdk.pytest_plugin import hook_runner

__all__ = ("HOOKS", "anyio_backend", "hook", "hook_runner")

HOOKS = Path(__file__).parent / "hooks"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def hook(module: str, function: str) -> str:
    """The ``path:function`` target of a test hook in tests/sdk/hooks/."""
    return f"{HOOKS / module}.py:{function}"
