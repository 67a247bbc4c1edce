"""The parent does not take the worker template's word for which process to kill.

A hook's import-time code runs inside the template, so it can make the template say anything on its control
socket. These hooks tamper with their template and must not get the parent to act on another process.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import pytest

from runner import HookError, HookRunner, HookSpec, Limits, Sandbox

from .conftest import SANDBOX

pytestmark = pytest.mark.anyio


@pytest.fixture
def victim() -> Iterator[subprocess.Popen[bytes]]:
    """A process of the proxy's uid that no hook may get killed."""
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


async def test_cant_make_the_parent_kill_a_process_it_names(
    write_hook: Callable[..., HookSpec], victim: subprocess.Popen[bytes]
) -> None:
    spec = write_hook(
        """
        import os
        from runner import _zygote

        VICTIM = int(os.environ["VICTIM"])

        def forged_spawn(self, token, fds):
            for fd in fds:
                os.close(fd)
            # Claim the victim is the child forked for this call: a naive parent SIGKILLs it at the call's end.
            self.control.send(_zygote.Spawned(token=token, pid=VICTIM))

        _zygote.Template.spawn = forged_spawn

        def handler(info):
            return {}
        """
    )
    sandbox = Sandbox(**{**SANDBOX.__dict__, "env": {"VICTIM": str(victim.pid)}})
    async with HookRunner(spec, Limits(timeout=1.0), sandbox) as runner:
        with pytest.raises(HookError):
            await runner.call({})
    assert victim.poll() is None  # still running


async def test_cant_forge_control_frames(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        import sys, time
        from runner import _zygote

        def garbage_spawn(self, token, fds):
            self.control.sock.sendall(b"\\x00\\x00\\x00\\x03abc")

        _zygote.Template.spawn = garbage_spawn

        def handler(info):
            return {}
        """
    )
    async with HookRunner(spec, Limits(timeout=1.0), SANDBOX) as runner:
        with pytest.raises(HookError):
            await runner.call({})
        assert runner.restarts >= 1  # the tampered template was killed and replaced, the runner goes on


async def test_cant_flood_the_parent_with_control_frames(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        from runner import _zygote
        from runner._protocol import Exited

        def flooding_serve(self):
            payload = self.control._encoder.encode(Exited(pid=999999, status=0))
            while True:
                self.control.sock.send(len(payload).to_bytes(4, "big") + payload)

        _zygote.Template.serve = flooding_serve

        def handler(info):
            return {}
        """
    )
    async with HookRunner(spec, Limits(timeout=1.0), SANDBOX) as runner:
        # the flooding template is killed and replaced (by another flooding one) until the call's deadline
        with pytest.raises(HookError):
            await runner.call({})
        assert runner.restarts >= 1
