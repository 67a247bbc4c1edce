"""Handlers of every supported shape run and return plain data."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from runner import MAX_DENIAL_REASON, HookDenied, HookOutputError, HookRaised, HookRunner, HookSpec, Limits

from .conftest import SANDBOX

pytestmark = pytest.mark.anyio


async def _run(spec: HookSpec, arg: object = None) -> object:
    async with HookRunner(spec, Limits(timeout=10), SANDBOX) as runner:
        return (await runner.call(arg if arg is not None else {"id": "u1"})).value


async def test_async_handler_returns_dict(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        async def handler(info):
            return {"user_id": info["id"], "models": ["m1"]}
        """
    )
    assert await _run(spec, {"id": "u7"}) == {"user_id": "u7", "models": ["m1"]}


async def test_sync_handler_returns_dict(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        def handler(info):
            return {"email": info["email"].upper()}
        """
    )
    assert await _run(spec, {"email": "a@example.com"}) == {"email": "A@EXAMPLE.COM"}


async def test_pydantic_model_result_becomes_plain_data(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        import enum
        import pydantic

        class Role(str, enum.Enum):
            ADMIN = "proxy_admin"

        class Values(pydantic.BaseModel):
            user_id: str
            role: Role
            budget: float | None = None

        async def handler(info):
            return Values(user_id=info["id"], role=Role.ADMIN, budget=1.5)
        """
    )
    assert await _run(spec) == {"user_id": "u1", "role": "proxy_admin", "budget": 1.5}


async def test_dataclass_and_typeddict_results_become_plain_data(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        import dataclasses
        from typing import TypedDict

        class Inner(TypedDict):
            models: list[str]

        @dataclasses.dataclass
        class Values:
            user_id: str
            inner: Inner

        def handler(info):
            return Values(user_id=info["id"], inner=Inner(models=["a", "b"]))
        """
    )
    assert await _run(spec) == {"user_id": "u1", "inner": {"models": ["a", "b"]}}


async def test_cant_return_unencodable_value(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        def handler(info):
            return {"when": object()}
        """
    )
    with pytest.raises(HookOutputError, match="object"):
        await _run(spec)


async def test_raised_exception_reports_type_message_and_traceback(
    write_hook: Callable[..., HookSpec],
) -> None:
    spec = write_hook(
        """
        def helper():
            raise ValueError("no such tenant")

        async def handler(info):
            helper()
        """
    )
    with pytest.raises(HookRaised) as caught:
        await _run(spec)
    assert caught.value.type_name == "ValueError"
    assert "no such tenant" in caught.value.message
    assert "helper" in caught.value.traceback
    assert "_child.py" not in caught.value.traceback  # the runner's own frames are not shown


async def test_output_is_captured_separately_from_the_result(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        import sys
        def handler(info):
            print("to stdout")
            print("to stderr", file=sys.stderr)
            return {"ok": True}
        """
    )
    async with HookRunner(spec, Limits(timeout=10), SANDBOX) as runner:
        result = await runner.call({})
    assert result.value == {"ok": True}
    assert result.stdout == "to stdout\n"
    assert result.stderr == "to stderr\n"
    assert len(result.run_id) == 16


async def test_each_call_runs_in_a_fresh_process(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        import os
        seen = []
        def handler(info):
            seen.append(info["n"])
            return {"pid": os.getpid(), "seen": list(seen)}
        """
    )
    async with HookRunner(spec, Limits(timeout=10), SANDBOX) as runner:
        first = (await runner.call({"n": 1})).value
        second = (await runner.call({"n": 2})).value
    assert first["pid"] != second["pid"]
    assert second["seen"] == [2]  # module state from the first call did not survive
    assert os.getpid() not in (first["pid"], second["pid"])


async def test_hook_env_holds_only_the_allowlist_and_its_own_variables(
    write_hook: Callable[..., HookSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOKJAIL_TEST_PARENT_SECRET", "s3cret")
    spec = write_hook(
        """
        import os
        def handler(info):
            return dict(os.environ)
        """
    )
    sandbox = SANDBOX.__class__(**{**SANDBOX.__dict__, "env": {"HR_TOKEN": "abc"}})
    async with HookRunner(spec, Limits(timeout=10), sandbox) as runner:
        env = (await runner.call({})).value
    assert "HOOKJAIL_TEST_PARENT_SECRET" not in env
    assert env["HR_TOKEN"] == "abc"
    assert "s3cret" not in repr(env)


async def test_traceback_excerpt_shows_the_cause_of_a_wrapped_error(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        async def handler(info):
            try:
                {}["tenant"]
            except Exception:
                raise Exception("Failed custom auth")
        """
    )
    with pytest.raises(HookRaised) as caught:
        await _run(spec)
    assert caught.value.message == "Exception: Failed custom auth"
    assert "KeyError: 'tenant'" in caught.value.traceback
    assert caught.value.traceback.index("KeyError") < caught.value.traceback.index("Failed custom auth")


async def test_a_denial_reaches_the_parent_with_its_reason_capped(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        from runner import Denial

        def handler(info):
            raise Denial(info["reason"])
        """
    )
    async with HookRunner(spec, Limits(timeout=5), SANDBOX) as runner:
        with pytest.raises(HookDenied) as caught:
            await runner.call({"reason": "not on the allowlist — ask #it-help"})
        assert caught.value.reason == "not on the allowlist — ask #it-help"
        assert caught.value.outcome == "denied"
        with pytest.raises(HookDenied) as long:
            await runner.call({"reason": "x" * 5000})
        assert len(long.value.reason) <= MAX_DENIAL_REASON + 1


async def test_an_exception_merely_named_like_a_denial_is_a_failure(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        class Denial(Exception):
            pass

        def handler(info):
            raise Denial("secret=sk-123")
        """
    )
    async with HookRunner(spec, Limits(timeout=5), SANDBOX) as runner:
        with pytest.raises(HookRaised):
            await runner.call({})
