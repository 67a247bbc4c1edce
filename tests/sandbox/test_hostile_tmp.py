"""A hook cannot leave anything in its temp dir for a later login, nor use the shared temp space to kill its
template or the logins running beside it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from runner import HookRunner, Limits

from ._hooks import sandbox, write_hook

pytestmark = pytest.mark.anyio

# No reserve children (prefork=0): the free-inode counts then see only the calls in flight. A finished call's own
# temp dir inode is released a little later than the dir is removed (the kernel frees a dead child's Landlock
# domain, which holds it, from a work queue): counts are compared within a few inodes, far below what a hook
# can leave behind (thousands).
_SLACK = 8
_HOOK = """
import os, time
from runner import host_call

def free_inodes():
    tmp = os.environ.get("TMPDIR")
    return os.statvfs(tmp).f_ffree if tmp else None

def deep(levels):
    fd = os.open(os.environ["TMPDIR"], os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(levels):
        os.mkdir("d" * 60, 0o700, dir_fd=fd)
        inner = os.open("d" * 60, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
    return levels

def fill():
    tmp, made = os.environ["TMPDIR"], 0
    locked = os.path.join(tmp, "locked")
    os.mkdir(locked)
    try:
        while True:
            os.close(os.open(os.path.join(locked, str(made)), os.O_CREAT | os.O_WRONLY))
            made += 1
    except OSError as exc:
        return {"made": made, "stopped": exc.strerror}

def handler(info):
    if info["do"] == "deep":
        return observe(lambda: deep(info["levels"]))
    if info["do"] == "modes":
        return [observe(lambda m=m: os.mkdir(os.path.join(os.environ["TMPDIR"], oct(m)), m)) for m in (0, 0o300, 0o500)]
    if info["do"] == "fill":
        filled = fill()
        host_call("hold", {})  # stays full while a concurrent login runs
        return filled
    if info["do"] == "slow":
        time.sleep(info["seconds"])
    return {"tmp": os.environ.get("TMPDIR") is not None, "free": free_inodes()}
"""


class _Hold:
    """Holds the filling call in a host call until released."""

    def __init__(self) -> None:
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, method: str, args: dict[str, Any]) -> None:
        self.holding.set()
        await self.release.wait()


async def test_cant_leave_a_tree_too_deep_to_remove_or_kill_the_template(operator_dir: Path) -> None:
    spec = write_hook(operator_dir, _HOOK)
    async with HookRunner(spec, Limits(timeout=20, cpu_seconds=10, prefork=0), sandbox(operator_dir)) as runner:
        baseline = (await runner.call({"do": "count"})).value["free"]
        slow = asyncio.create_task(runner.call({"do": "slow", "seconds": 1.0}))
        # 1,500 levels broke a recursive rmtree; 3,000 levels of 60 characters is past PATH_MAX as well
        for levels in (1500, 3000):
            assert (await runner.call({"do": "deep", "levels": levels})).value == {"value": levels}
        assert (await slow).value["tmp"] is True  # the login running beside it was not disturbed
        assert (await runner.call({"do": "count"})).value["free"] >= baseline - _SLACK  # every inode came back
        assert runner.restarts == 0


async def test_cant_make_a_directory_its_template_cannot_remove(operator_dir: Path) -> None:
    spec = write_hook(operator_dir, _HOOK)
    async with HookRunner(spec, Limits(timeout=20, prefork=0), sandbox(operator_dir)) as runner:
        baseline = (await runner.call({"do": "count"})).value["free"]
        refused = {"errno": "EPERM", "type": "PermissionError"}
        assert (await runner.call({"do": "modes"})).value == [refused, refused, refused]
        assert (await runner.call({"do": "count"})).value["free"] >= baseline - _SLACK


async def test_cant_exhaust_the_temp_space_for_other_or_later_logins(operator_dir: Path) -> None:
    spec = write_hook(operator_dir, _HOOK)
    async with HookRunner(spec, Limits(timeout=20, cpu_seconds=10, prefork=0), sandbox(operator_dir)) as runner:
        baseline = (await runner.call({"do": "count"})).value["free"]
        hold = _Hold()
        filling = asyncio.create_task(runner.call({"do": "fill"}, host=hold))
        await hold.holding.wait()
        # The temp space is full: a login starting now still runs (without a temp dir of its own, if none
        # could be made), and the template lives on.
        beside = (await runner.call({"do": "count"})).value
        assert beside["free"] is None or beside["free"] <= _SLACK  # it ran, in a full temp space
        hold.release.set()
        filled = (await filling).value
        assert filled["stopped"] == "No space left on device" and filled["made"] > 1000
        after = (await runner.call({"do": "count"})).value
        assert after["tmp"] is True and after["free"] >= baseline - _SLACK  # given back when the call ended
        assert runner.restarts == 0
