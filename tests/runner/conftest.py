from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from runner import HookSpec, Sandbox

#: Runner tests run with the full sandbox: limits and errors must behave the same under confinement.
SANDBOX = Sandbox()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def write_hook(tmp_path: Path) -> Callable[..., HookSpec]:
    """Writes hook source to a file and returns a spec for its ``handler`` (or another function)."""

    def write(source: str, function: str = "handler", name: str = "hook.py") -> HookSpec:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        return HookSpec(path=path, function=function)

    return write
