"""Runaway hooks are stopped by the limit they hit, and the runner says which."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from runner import (
    HookCrashed,
    HookLimitExceeded,
    HookOutputError,
    HookProtocolError,
    HookRunner,
    HookSpec,
    HookTimeout,
    Limits,
)

from .conftest import SANDBOX

pytestmark = pytest.mark.anyio


async def _call(spec: HookSpec, limits: Limits) -> object:
    async with HookRunner(spec, limits, SANDBOX) as runner:
        return (await runner.call({"id": "u1"})).value


async def test_cant_sleep_forever(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        import time
        def handler(info):
            print("going to sleep")
            time.sleep(3600)
        """
    )
    with pytest.raises(HookTimeout) as caught:
        await _call(spec, Limits(timeout=0.5))
    assert "0.5 s" in caught.value.message
    assert caught.value.stdout == "going to sleep\n"  # output up to the kill is kept for the operator
    assert caught.value.run_id


async def test_cant_await_forever(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        import asyncio
        async def handler(info):
            await asyncio.Event().wait()
        """
    )
    with pytest.raises(HookTimeout):
        await _call(spec, Limits(timeout=0.5))


async def test_cant_ignore_the_kill_at_the_deadline(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        import signal, time
        def handler(info):
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            while True:
                time.sleep(0.01)
        """
    )
    with pytest.raises(HookTimeout):
        await _call(spec, Limits(timeout=0.5))


async def test_cant_busy_loop_past_cpu_limit(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        def handler(info):
            while True:
                pass
        """
    )
    with pytest.raises(HookLimitExceeded) as caught:
        await _call(spec, Limits(timeout=30, cpu_seconds=1))
    assert caught.value.limit == "cpu"


async def test_cant_ignore_sigxcpu(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        import signal
        def handler(info):
            signal.signal(signal.SIGXCPU, signal.SIG_IGN)
            while True:
                pass
        """
    )
    with pytest.raises(HookLimitExceeded) as caught:
        await _call(spec, Limits(timeout=30, cpu_seconds=1))
    assert caught.value.limit == "cpu"


async def test_cant_allocate_2gb(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        def handler(info):
            blob = bytearray(2 * 1024 ** 3)
            return {"size": len(blob)}
        """
    )
    with pytest.raises(HookLimitExceeded) as caught:
        await _call(spec, Limits(timeout=30, memory_mb=256))
    assert caught.value.limit == "memory"


async def test_can_allocate_within_memory_budget(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        def handler(info):
            blob = bytearray(64 * 1024 ** 2)
            return {"size": len(blob)}
        """
    )
    assert await _call(spec, Limits(timeout=30, memory_mb=256)) == {"size": 64 * 1024**2}


async def test_cant_abort_silently(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        import os
        def handler(info):
            os.abort()
        """
    )
    with pytest.raises(HookCrashed) as caught:
        await _call(spec, Limits(timeout=10))
    assert caught.value.signal == signal.SIGABRT
    assert "SIGABRT" in caught.value.message


async def test_cant_segfault_silently(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        import ctypes
        def handler(info):
            ctypes.string_at(0)
        """
    )
    with pytest.raises(HookCrashed) as caught:
        await _call(spec, Limits(timeout=10))
    assert caught.value.signal == signal.SIGSEGV


async def test_cant_exit_without_answer(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        import os
        def handler(info):
            os._exit(3)
        """
    )
    with pytest.raises(HookCrashed) as caught:
        await _call(spec, Limits(timeout=10))
    assert caught.value.exit_code == 3


async def test_cant_flood_output(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        import sys
        def handler(info):
            chunk = "x" * (1024 * 1024)
            for _ in range(50):
                sys.stdout.write(chunk)
            return {"done": True}
        """
    )
    limits = Limits(timeout=30, max_output_bytes=1000)
    async with HookRunner(spec, limits, SANDBOX) as runner:
        result = await runner.call({})
    assert result.value == {"done": True}
    assert result.stdout.startswith("x" * 1000)
    assert f"{50 * 1024 * 1024 - 1000} more bytes dropped" in result.stdout


async def test_cant_return_a_100mb_string(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        def handler(info):
            return {"blob": "x" * (100 * 1024 * 1024)}
        """
    )
    with pytest.raises(HookOutputError, match="bytes"):
        await _call(spec, Limits(timeout=30, memory_mb=1024))


async def test_cant_send_an_oversized_frame(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        import time
        from runner import _hostcall
        def handler(info):
            # Claim a 1 GiB frame on the channel directly, bypassing the runner's encoder.
            _hostcall._channel.sendall((1 << 30).to_bytes(4, "big") + b"x" * 100)
            time.sleep(3600)
        """
    )
    with pytest.raises(HookProtocolError, match="oversized"):
        await _call(spec, Limits(timeout=10))


async def test_cant_send_a_malformed_frame(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        import time
        from runner import _hostcall
        def handler(info):
            _hostcall._channel.sendall((5).to_bytes(4, "big") + b"\\xc1junk")
            time.sleep(3600)
        """
    )
    with pytest.raises(HookProtocolError, match="malformed"):
        await _call(spec, Limits(timeout=10))


async def test_extra_calls_wait_for_a_slot_inside_their_deadline(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        import time
        def handler(info):
            time.sleep(3600)
        """
    )
    import asyncio

    async with HookRunner(spec, Limits(timeout=1.0, max_concurrency=1), SANDBOX) as runner:
        results = await asyncio.gather(runner.call({}), runner.call({}), return_exceptions=True)
    assert all(isinstance(r, HookTimeout) for r in results)
    assert sum("waited for a free worker slot" in str(r) for r in results) == 1


async def test_cant_crash_the_parent_with_deeply_nested_data(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        import time
        from runner import _hostcall
        def handler(info):
            # A result frame whose value is 100,000 nested one-element arrays: fine for msgpack, fatal for a
            # recursive decoder in the parent if it were not caught.
            body = b"\\x82\\xa4type\\xa6result\\xa5value" + b"\\x91" * 100_000 + b"\\xc0"
            _hostcall._channel.sendall(len(body).to_bytes(4, "big") + body)
            time.sleep(3600)
        """
    )
    with pytest.raises(HookProtocolError, match="malformed"):
        await _call(spec, Limits(timeout=10))


async def test_cant_hold_the_event_loop_by_flooding_the_channel(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        import time
        from runner import _hostcall
        def handler(info):
            started = b"\\x00\\x00\\x00\\x0e\\x81\\xa4type\\xa7started"
            while True:
                _hostcall._channel.sendall(started * 65536)
        """
    )
    with pytest.raises(HookProtocolError, match="unexpected started frame"):
        await _call(spec, Limits(timeout=10))


async def test_cant_raise_its_own_cpu_priority_above_limits_nice(write_hook: Callable[..., HookSpec]) -> None:
    """Limits.nice is the worker's niceness (the proxy's event loop wins the CPU against spinning hooks); the
    hook cannot lower it again: the kernel wants CAP_SYS_NICE on the host for that."""
    spec = write_hook(
        """
        import errno, os
        def handler(info):
            before = os.getpriority(os.PRIO_PROCESS, 0)
            try:
                os.setpriority(os.PRIO_PROCESS, 0, 0)
                raised = "raised"
            except OSError as exc:
                raised = errno.errorcode[exc.errno]
            return {"nice": before, "raise": raised, "after": os.getpriority(os.PRIO_PROCESS, 0)}
        """
    )
    assert await _call(spec, Limits(nice=7)) == {"nice": 7, "raise": "EACCES", "after": 7}
    assert (await _call(spec, Limits()))["nice"] == 0
    with pytest.raises(ValueError, match="nice"):
        Limits(nice=20)
