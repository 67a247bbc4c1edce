"""Host calls: the hook asks, the parent's handler answers during the call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from runner import HookLimitExceeded, HookRunner, HookSpec, HostCallError, Limits, in_worker

from .conftest import SANDBOX

pytestmark = pytest.mark.anyio

ASKER = """
from runner import host_call

def handler(info):
    try:
        return {"answer": host_call("lookup", {"user_id": info["id"]})}
    except PermissionError as exc:
        return {"refused": str(exc)}
    except LookupError as exc:
        return {"missing": str(exc)}
"""


async def test_host_call_is_answered_by_the_parent(write_hook: Callable[..., HookSpec]) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    async def host(method: str, args: dict[str, Any]) -> Any:
        seen.append((method, args))
        return {"role": "proxy_admin"}

    async with HookRunner(write_hook(ASKER), Limits(timeout=10), SANDBOX) as runner:
        result = await runner.call({"id": "u1"}, host=host)
    assert result.value == {"answer": {"role": "proxy_admin"}}
    assert seen == [("lookup", {"user_id": "u1"})]
    assert result.host_calls == (("lookup", "ok"),)


async def test_host_call_without_a_host_is_a_permission_error_in_the_hook(
    write_hook: Callable[..., HookSpec],
) -> None:
    async with HookRunner(write_hook(ASKER), Limits(timeout=10), SANDBOX) as runner:
        result = await runner.call({"id": "u1"})
    assert result.value == {"refused": "this hook may not make host calls"}


async def test_host_errors_are_raised_inside_the_hook(write_hook: Callable[..., HookSpec]) -> None:
    async def host(method: str, args: dict[str, Any]) -> Any:
        raise LookupError(f"user {args['user_id']} not found")

    async with HookRunner(write_hook(ASKER), Limits(timeout=10), SANDBOX) as runner:
        result = await runner.call({"id": "u9"}, host=host)
    assert result.value == {"missing": "user u9 not found"}
    assert result.host_calls == (("lookup", "LookupError"),)


async def test_cant_make_endless_host_calls(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        from runner import host_call
        def handler(info):
            for _ in range(10_000):
                host_call("lookup", {})
            return {}
        """
    )

    async def host(method: str, args: dict[str, Any]) -> Any:
        return 1

    async with HookRunner(spec, Limits(timeout=30, max_host_calls=50), SANDBOX) as runner:
        with pytest.raises(HookLimitExceeded) as caught:
            await runner.call({}, host=host)
    assert caught.value.limit == "host_calls"


async def test_cant_ask_for_a_huge_host_reply(write_hook: Callable[..., HookSpec]) -> None:
    async def host(method: str, args: dict[str, Any]) -> Any:
        return "x" * (8 * 1024 * 1024)

    async with HookRunner(write_hook(ASKER), Limits(timeout=30, max_host_reply_bytes=64 * 1024), SANDBOX) as runner:
        with pytest.raises(HookLimitExceeded) as caught:
            await runner.call({"id": "u1"}, host=host)
    assert caught.value.limit == "host_reply"


ERROR_TYPE = """
from runner import HostCallError, host_call

def handler(info):
    try:
        host_call("lookup", {})
    except HostCallError as exc:
        return {"error_type": exc.error_type, "message": str(exc)}
"""


async def test_a_host_call_error_is_answered_under_its_error_type_not_its_class_name(
    write_hook: Callable[..., HookSpec],
) -> None:
    class RenamedOnTheHost(HostCallError):
        pass

    async def host(method: str, args: dict[str, Any]) -> Any:
        raise RenamedOnTheHost("no such user", error_type="NotFound")

    async with HookRunner(write_hook(ERROR_TYPE), Limits(timeout=10), SANDBOX) as runner:
        result = await runner.call({}, host=host)
    assert result.value == {"error_type": "NotFound", "message": "no such user"}
    assert result.host_calls == (("lookup", "NotFound"),)


IN_WORKER = """
import runner

def handler(info):
    return runner.in_worker()
"""


async def test_in_worker_is_true_in_the_hook_and_false_in_the_parent(write_hook: Callable[..., HookSpec]) -> None:
    async with HookRunner(write_hook(IN_WORKER), Limits(timeout=10), SANDBOX) as runner:
        result = await runner.call({})
    assert result.value is True
    assert in_worker() is False
