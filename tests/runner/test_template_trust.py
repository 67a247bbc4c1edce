"""The worker template is out of the hook's reach, and the parent does not trust it anyway.

No hook code runs in the template: a hook whose module body tampers with the runner's template code only
changes its own call's child. Independently, the parent takes nothing the template says on trust; a
compromised template is simulated by a trusted adapter module imported there (tests/runner/_tampered_template).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from runner import HookError, HookImportError, HookRunner, HookSpec, Limits, Sandbox

from .conftest import SANDBOX

pytestmark = pytest.mark.anyio

ECHO = "def handler(info):\n    return {'ok': True}\n"


def _tampered(spec: HookSpec, how: str, **env: str) -> tuple[HookSpec, Sandbox]:
    adapted = HookSpec(spec.path, spec.function, adapter="tests.runner._tampered_template:adapt")
    return adapted, Sandbox(**{**SANDBOX.__dict__, "env": {"TAMPER": how, **env}})


async def test_cant_tamper_with_the_template_from_the_module_body(
    write_hook: Callable[..., HookSpec], victim: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    spec = write_hook(
        """
        import ctypes, os
        from runner import _zygote
        from runner._protocol import Spawned

        VICTIM = int(os.environ["VICTIM"])

        def forged_spawn(self, token, fds):
            self.control.send(Spawned(token=token, pid=VICTIM))

        # What worked when hook code ran in the template: patch its loop, clear its parent-death signal.
        _zygote.Template.spawn = forged_spawn
        ctypes.CDLL(None).prctl(1, 0, 0, 0, 0)

        def handler(info):
            return {"pid": os.getpid()}
        """
    )
    box = Sandbox(**{**SANDBOX.__dict__, "env": {"VICTIM": str(victim.pid)}})
    async with HookRunner(spec, Limits(timeout=5.0), box) as runner:
        pids = {(await runner.call({})).value["pid"] for _ in range(5)}
        assert len(pids) == 5  # every call still gets a fresh child of an untouched template
        assert runner.restarts == 0
    assert victim.poll() is None


async def test_cant_make_the_parent_kill_a_process_it_names(
    write_hook: Callable[..., HookSpec], victim: subprocess.Popen[bytes]
) -> None:
    spec, box = _tampered(write_hook(ECHO), "victim", VICTIM=str(victim.pid))
    with pytest.raises(HookImportError, match="exited while importing"):  # the import probe meets the lie
        async with HookRunner(spec, Limits(timeout=1.0), box):
            pass
    assert victim.poll() is None  # still running


async def test_cant_forge_control_frames(write_hook: Callable[..., HookSpec]) -> None:
    spec, box = _tampered(write_hook(ECHO), "garbage")
    with pytest.raises(HookImportError, match="exited while importing"):  # killed at its first garbage
        async with HookRunner(spec, Limits(timeout=1.0), box):
            pass


async def test_cant_flood_the_parent_with_control_frames(write_hook: Callable[..., HookSpec]) -> None:
    spec, box = _tampered(write_hook(ECHO), "flood")
    with pytest.raises(HookError):  # the flooding template is killed before it ever serves
        async with HookRunner(spec, Limits(timeout=1.0), box) as runner:
            await runner.call({})
