"""A worker that writes as fast as it can never holds the parent's event loop: every pipe and socket from the
worker is read a bounded amount per wake-up, and every string it reports is capped."""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from collections.abc import Callable

import pytest

from runner import HookRaised, HookRunner, HookSpec, HookTimeout, Limits
from runner._capture import Capture

from .conftest import SANDBOX

pytestmark = pytest.mark.anyio

#: The longest the parent's event loop may be held while a worker floods it.
MAX_STALL = 0.050


async def _ticker(gaps: list[float], stop: asyncio.Event) -> None:
    """Ticks every 2 ms and records, for each tick, the CPU time the event loop's thread spent in between: the
    time the loop was held by work (reading the flood), not the time the machine had it waiting for a core,
    which on a shared 2-core machine says nothing about this code."""
    last = time.thread_time()
    while not stop.is_set():
        await asyncio.sleep(0.002)
        now = time.thread_time()
        gaps.append(now - last)
        last = now


async def test_cant_stall_the_event_loop_by_flooding_stdout_stderr_and_the_channel(
    write_hook: Callable[..., HookSpec],
) -> None:
    spec = write_hook(
        """
        import fcntl, os, threading, time
        from runner import _hostcall

        CHUNK = b"x" * 65536

        def flood(fd):
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                os.write(fd, CHUNK)

        def handler(info):
            for fd in (1, 2):
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1 << 20)  # a deep pipe: each wake-up finds it full
                for _ in range(3):
                    threading.Thread(target=flood, args=(fd,), daemon=True).start()
            # and host calls as fast as the parent answers them, from the main thread
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                _hostcall.host_call("ping", {})
            time.sleep(3600)
        """
    )

    async def host(method: str, args: dict[str, object]) -> str:
        return "pong"

    gaps: list[float] = []
    stop = asyncio.Event()
    async with HookRunner(spec, Limits(timeout=2.5, cpu_seconds=10, max_host_calls=10**6), SANDBOX) as runner:
        ticker = asyncio.create_task(_ticker(gaps, stop))
        with pytest.raises(HookTimeout) as caught:
            await runner.call({}, host=host)
        stop.set()
        await ticker
    assert len(gaps) > 100  # the ticker really ran during the flood
    assert max(gaps) < MAX_STALL, f"the event loop was held for {max(gaps) * 1000:.1f} ms of CPU"
    # what was kept of the flood is bounded
    assert len(caught.value.stdout) < 70_000 and len(caught.value.stderr) < 70_000


def test_one_wake_up_reads_a_bounded_amount() -> None:
    read_end, write_end = os.pipe2(os.O_NONBLOCK)
    os.set_blocking(write_end, True)
    try:
        fcntl_size = 1 << 20
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, fcntl_size)
        os.write(write_end, b"y" * fcntl_size)
        capture = Capture(read_end, limit=1 << 30)
        assert capture.read_available() is True  # more is waiting: the caller's loop comes back for it
        first = len(capture.text())
        assert 0 < first <= 4 << 16
        while capture.read_available() and len(capture.text()) < fcntl_size:
            pass
        assert len(capture.text()) == fcntl_size  # nothing lost, only spread over several wake-ups
    finally:
        os.close(write_end)
        os.close(read_end)


async def test_cant_send_the_parent_a_huge_exception_type_name(write_hook: Callable[..., HookSpec]) -> None:
    # The hook forges the child's Failure frame itself, past the child's own caps: a 900 KB type name,
    # message and traceback (under the 1 MiB frame limit) must reach the operator capped.
    spec = write_hook(
        """
        import time
        from runner import _hostcall
        from runner._framing import FrameEncoder
        from runner._protocol import Failure

        def handler(info):
            frame = FrameEncoder().encode(
                Failure(kind="raised", type_name="E" * 300_000, message="m" * 300_000, traceback="t" * 300_000)
            )
            _hostcall._channel.sendall(frame)
            time.sleep(3600)
        """
    )
    async with HookRunner(spec, Limits(timeout=5), SANDBOX) as runner:
        with pytest.raises(HookRaised) as caught:
            await runner.call({})
    error = caught.value
    assert len(error.type_name) <= 201
    assert len(error.message) <= 201 + 2 + 1001
    assert len(error.traceback) <= 4000
