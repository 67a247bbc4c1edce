"""One login never sees another's data, sequential or concurrent; a hook cannot forge its result or
exhaust the host."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest

from runner import HookLimitExceeded, HookRunner

from ._hooks import LIMITS, call_once, sandbox, write_hook

pytestmark = pytest.mark.anyio

# A hook that stashes each login's id everywhere it can, then looks for what earlier or concurrent logins
# stashed: module globals, its own and guessed sibling temp dirs, /tmp and /dev/shm.
_STASHER = """
import os, time

SEEN = []

def stash(path, text):
    with open(path, "w") as f:
        f.write(text)

def wait_for_sibling(root, tmp, name):
    # stat is not a read: Landlock lets a call see that a sibling's file exists, not what it holds.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for entry in (f"call-{n}" for n in range(1, 20)):
            path = os.path.join(root, entry)
            if path != tmp and os.path.exists(os.path.join(path, name)):
                return path
        time.sleep(0.01)
    return None

def handler(info):
    SEEN.append(info["id"])
    tmp = os.environ["TMPDIR"]
    root = os.path.dirname(tmp)
    stash(os.path.join(tmp, "stash"), info["id"])
    written = {
        "/tmp": observe(lambda: stash("/tmp/hookjail-stash", info["id"])),
        "/dev/shm": observe(lambda: stash("/dev/shm/hookjail-stash", info["id"])),
    }
    other = None
    if info.get("concurrent"):
        # Both logins run at once: each finds the other's stash, tries it, and waits for the other to try.
        other = wait_for_sibling(root, tmp, "stash")
        other = other and observe(lambda: open(os.path.join(other, "stash")).read())
        stash(os.path.join(tmp, "tried"), "")
        wait_for_sibling(root, tmp, "tried")
    return {
        "globals": list(SEEN),
        "written": written,
        "root": observe(lambda: os.listdir(root)),
        "other": other,
        "tmp": observe(lambda: open("/tmp/hookjail-stash").read()),
        "shm": observe(lambda: open("/dev/shm/hookjail-stash").read()),
    }
"""

_DENIED = {"errno": "EACCES", "type": "PermissionError"}
_MISSING = {"errno": "ENOENT", "type": "FileNotFoundError"}


def _assert_saw_only(value: dict[str, Any], login: str) -> None:
    assert value["globals"] == [login]
    assert value["written"] == {"/tmp": _DENIED, "/dev/shm": _DENIED}
    assert value["root"] == _DENIED
    # The probes of /tmp and /dev/shm are denied too: a stash left there by anyone is out of reach.
    assert value["tmp"] in (_DENIED, _MISSING)
    assert value["shm"] in (_DENIED, _MISSING)


async def test_sequential_logins_dont_share_data(operator_dir: Path) -> None:
    spec = write_hook(operator_dir, _STASHER)
    async with HookRunner(spec, LIMITS, sandbox(operator_dir)) as runner:
        first = await runner.call({"id": "alice"})
        second = await runner.call({"id": "bob"})
    _assert_saw_only(first.value, "alice")
    _assert_saw_only(second.value, "bob")


async def test_concurrent_logins_dont_share_data(operator_dir: Path) -> None:
    spec = write_hook(operator_dir, _STASHER)
    async with HookRunner(spec, LIMITS, sandbox(operator_dir)) as runner:
        first, second = await asyncio.gather(
            runner.call({"id": "alice", "concurrent": True}), runner.call({"id": "bob", "concurrent": True})
        )
    _assert_saw_only(first.value, "alice")
    _assert_saw_only(second.value, "bob")
    # Both ran at once: each found the other's stash and was refused it.
    assert first.value["other"] == _DENIED
    assert second.value["other"] == _DENIED


async def test_cant_forge_result_by_writing_frames_to_stdout(operator_dir: Path) -> None:
    forged = msgspec.msgpack.encode({"type": "result", "value": {"user_role": "proxy_admin"}})
    spec = write_hook(
        operator_dir,
        f"""
        import os, sys
        FRAME = {len(forged).to_bytes(4, "big") + forged!r}
        def handler(info):
            sys.stdout.buffer.write(FRAME)
            sys.stdout.flush()
            os.write(1, FRAME)
            return {{"user_role": "internal_user"}}
        """,
    )
    result = await call_once(spec, sandbox(operator_dir))
    assert result.value == {"user_role": "internal_user"}


async def test_cant_reach_descriptors_beyond_own_channel(operator_dir: Path) -> None:
    # The zygote's control socket, other logins' channels and capture pipes are all closed in the child:
    # guessing descriptor numbers finds stdio and the call's own channel only.
    spec = write_hook(
        operator_dir,
        """
        import os, stat
        def handler(info):
            found = {}
            for fd in range(1024):
                try:
                    mode = os.fstat(fd).st_mode
                except OSError:
                    continue
                found[fd] = "socket" if stat.S_ISSOCK(mode) else "fifo" if stat.S_ISFIFO(mode) else "other"
            return found
        """,
    )
    found = (await call_once(spec, sandbox(operator_dir))).value
    beyond_stdio = {fd: kind for fd, kind in found.items() if int(fd) > 2}
    assert list(beyond_stdio.values()) == ["socket"]


async def test_cant_exhaust_file_descriptors(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        """
        import os
        def handler(info):
            opened = []
            def open_all():
                while True:
                    opened.append(os.open("/dev/null", os.O_RDONLY))
            outcome = observe(open_all)
            return {"outcome": outcome, "opened": len(opened)}
        """,
    )
    async with HookRunner(spec, LIMITS, sandbox(operator_dir)) as runner:
        value = (await runner.call({"id": "u1"})).value
        assert value["outcome"]["errno"] == "EMFILE"
        assert value["opened"] < LIMITS.open_files
        assert (await runner.call({"id": "u2"})).value["outcome"]["errno"] == "EMFILE"  # the proxy is unharmed


async def test_cant_exhaust_disk(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        """
        import os
        def handler(info):
            written = []
            def fill():
                with open(os.path.join(os.environ["TMPDIR"], "big"), "wb") as f:
                    while True:
                        written.append(f.write(b"x" * (1 << 20)))
                        f.flush()
            return {"outcome": observe(fill), "written_mb": len(written)}
        """,
    )
    value = (await call_once(spec, sandbox(operator_dir))).value
    assert value["outcome"]["errno"] == "EFBIG"
    assert value["written_mb"] <= LIMITS.file_size_mb


async def test_cant_exhaust_memory(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        """
        def handler(info):
            hoard = []
            while True:
                hoard.append(bytearray(64 << 20))
        """,
    )
    with pytest.raises(HookLimitExceeded) as caught:
        await call_once(spec, sandbox(operator_dir))
    assert caught.value.limit == "memory"


async def test_cant_fill_disk_with_many_files(operator_dir: Path) -> None:
    # RLIMIT_FSIZE caps each file; the worker's tmpfs caps them all together.
    spec = write_hook(
        operator_dir,
        """
        import os
        def handler(info):
            written = []
            def fill():
                for n in range(1000):
                    with open(os.path.join(os.environ["TMPDIR"], f"chunk-{n}"), "wb") as f:
                        for _ in range(4):
                            f.write(b"x" * (1 << 20))
                            f.flush()
                            written.append(1)
            return {"outcome": observe(fill), "written_mb": len(written)}
        """,
    )
    value = (await call_once(spec, sandbox(operator_dir))).value
    assert value["outcome"]["errno"] == "ENOSPC"
    assert value["written_mb"] <= 64
