"""One login never sees another's data, sequential or concurrent; a hook cannot forge its result or
exhaust the host."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from runner import HookLimitExceeded, HookRunner

from ._hooks import LIMITS, call_once, sandbox, write_hook

pytestmark = pytest.mark.anyio

# A hook that stashes each login's id everywhere it can, then looks for what earlier or concurrent logins
# stashed: module globals, its own and sibling temp dirs, /tmp and /dev/shm. Temp dir names are random and
# the temp root cannot be listed, so a sibling's dir cannot be found; to prove it could not be read either,
# the test's host hands each concurrent call the other's path (as if the attacker had learnt it).
_STASHER = """
import os
from runner import host_call

SEEN = []

def stash(path, text):
    with open(path, "w") as f:
        f.write(text)

def guess_sibling(root, tmp):
    # The names the worker used before they were random: stat is not a read, Landlock would let it through.
    return [n for n in range(64) if os.path.exists(os.path.join(root, f"call-{n}"))]

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
        # Both logins run at once: each is told the other's dir, tries its stash, and waits for the other.
        sibling = host_call("swap", {"mine": tmp})
        other = observe(lambda: open(os.path.join(sibling, "stash")).read())
        host_call("tried", {})
    return {
        "guessed": guess_sibling(root, tmp),
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


class _Exchange:
    """The concurrent test's host: a barrier that hands each of two calls the other's temp dir."""

    def __init__(self) -> None:
        self.dirs: list[str] = []
        self.both_in = asyncio.Event()
        self.tried = 0
        self.both_tried = asyncio.Event()

    def for_call(self) -> Callable[[str, dict[str, Any]], Awaitable[Any]]:
        async def host(method: str, args: dict[str, Any]) -> Any:
            if method == "swap":
                self.dirs.append(args["mine"])
                if len(self.dirs) == 2:
                    self.both_in.set()
                await self.both_in.wait()
                return next(d for d in self.dirs if d != args["mine"])
            self.tried += 1
            if self.tried == 2:
                self.both_tried.set()
            await self.both_tried.wait()
            return None

        return host


def _assert_saw_only(value: dict[str, Any], login: str) -> None:
    assert value["guessed"] == []
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
        exchange = _Exchange()
        first, second = await asyncio.gather(
            runner.call({"id": "alice", "concurrent": True}, host=exchange.for_call()),
            runner.call({"id": "bob", "concurrent": True}, host=exchange.for_call()),
        )
    _assert_saw_only(first.value, "alice")
    _assert_saw_only(second.value, "bob")
    # Both ran at once: each was given the other's stash and was refused it.
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
    # guessing descriptor numbers finds stdio, the call's own channel and the child's own event loop only.
    spec = write_hook(
        operator_dir,
        """
        import asyncio, os, stat
        from runner import _hostcall

        def handler(info):
            loop = asyncio.get_event_loop()
            own = {
                _hostcall._channel.fileno(): "channel",
                loop._selector.fileno(): "loop",
                loop._ssock.fileno(): "loop",
                loop._csock.fileno(): "loop",
            }
            found = {}
            for fd in range(1024):
                try:
                    mode = os.fstat(fd).st_mode
                except OSError:
                    continue
                kind = "socket" if stat.S_ISSOCK(mode) else "fifo" if stat.S_ISFIFO(mode) else "other"
                found[fd] = own.get(fd, kind)
            return found
        """,
    )
    found = (await call_once(spec, sandbox(operator_dir))).value
    beyond_stdio = {fd: kind for fd, kind in found.items() if int(fd) > 2}
    assert sorted(beyond_stdio.values()) == ["channel", "loop", "loop", "loop"]


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
