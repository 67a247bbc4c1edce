"""hookjail's pytest plugin: the ``hook_runner`` fixture runs a hook through the real sandbox.

Enabled by the ``hookjail`` entry point in the ``pytest11`` group (or ``-p sdk.pytest_plugin``).

Example:
    >>> def test_admins_keep_their_role(hook_runner):  # doctest: +SKIP
    ...     hook_runner.host = FakeHost(users=[{"user_id": "alice", "user_role": "proxy_admin"}])
    ...     result = hook_runner.run_sync("custom_sso.py:custom_sso_handler", {"id": "alice"})
    ...     assert result.value["user_role"] == "proxy_admin"
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from runner import HostHandler, Limits, Sandbox

from ._fakehost import FakeHost
from ._types import OpenID
from .testing import HookTarget, RunResult, run_hook, run_hook_sync

__all__ = ("HookTester", "hook_runner")


class HookTester:
    """What the ``hook_runner`` fixture gives a test: :func:`~sdk.testing.run_hook` with per-test defaults.

    Attributes:
        host: the :class:`~sdk.testing.FakeHost` used when a run gives none (empty, grants ``user_info``);
            seed it or replace it before running.
        limits: the limits used when a run gives none (production's defaults).
        sandbox: the confinement used when a run gives none (production's: strict).
    """

    def __init__(self) -> None:
        self.host = FakeHost()
        self.limits = Limits()
        self.sandbox = Sandbox()

    async def run(
        self,
        target: HookTarget,
        openid: OpenID | Mapping[str, Any] | None = None,
        *,
        limits: Limits | None = None,
        host: HostHandler | None = None,
        sandbox: Sandbox | None = None,
    ) -> RunResult:
        """Run the hook once through the sandbox (see :func:`sdk.testing.run_hook`)."""
        return await run_hook(
            target, openid, limits=limits or self.limits, host=host or self.host, sandbox=sandbox or self.sandbox
        )

    def run_sync(
        self,
        target: HookTarget,
        openid: OpenID | Mapping[str, Any] | None = None,
        *,
        limits: Limits | None = None,
        host: HostHandler | None = None,
        sandbox: Sandbox | None = None,
    ) -> RunResult:
        """:meth:`run` for plain (non-async) tests."""
        return run_hook_sync(
            target, openid, limits=limits or self.limits, host=host or self.host, sandbox=sandbox or self.sandbox
        )


@pytest.fixture
def hook_runner() -> HookTester:
    """Runs hooks through hookjail's real sandbox, with a fresh in-memory host per test."""
    return HookTester()
