"""A hook that cannot be imported or called is refused at start, with a reason an operator can act on."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from runner import HookImportError, HookRunner, HookSpec, Limits

from .conftest import SANDBOX

pytestmark = pytest.mark.anyio


async def _start(spec: HookSpec) -> None:
    async with HookRunner(spec, Limits(timeout=5, import_timeout=10), SANDBOX):
        pass


async def test_import_error_names_the_missing_module(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        import not_a_module_anywhere

        def handler(info):
            return {}
        """
    )
    with pytest.raises(HookImportError, match="not_a_module_anywhere"):
        await _start(spec)


async def test_syntax_error_names_the_line(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        def handler(info):
            return {

        x = 1
        """
    )
    with pytest.raises(HookImportError, match=r"syntax error at line 3 of hook\.py"):
        await _start(spec)


async def test_exception_at_import_names_its_line(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        SETTINGS = {}
        TENANT = SETTINGS["tenant"]

        def handler(info):
            return {}
        """
    )
    with pytest.raises(HookImportError, match="KeyError") as caught:
        await _start(spec)
    assert "line 3" in caught.value.message


async def test_missing_function_is_refused(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook("def other(info):\n    return {}\n")
    with pytest.raises(HookImportError, match="no function 'handler'"):
        await _start(spec)


async def test_non_callable_handler_is_refused(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook("handler = {'not': 'a function'}\n")
    with pytest.raises(HookImportError, match="not a function"):
        await _start(spec)


async def test_handler_with_two_parameters_is_refused(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook("def handler(info, request):\n    return {}\n")
    with pytest.raises(HookImportError, match="exactly one argument"):
        await _start(spec)


async def test_handler_with_extra_defaulted_parameters_is_accepted(
    write_hook: Callable[..., HookSpec],
) -> None:
    spec = write_hook("def handler(info, verbose=False):\n    return {'v': verbose}\n")
    async with HookRunner(spec, Limits(timeout=5), SANDBOX) as runner:
        assert (await runner.call({})).value == {"v": False}


async def test_module_body_runs_in_each_calls_own_child(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        import os, threading, time

        IMPORTED_IN = os.getpid()
        threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()  # fine: the child is single-use
        CALLS = [0]

        def handler(info):
            CALLS[0] += 1
            threads = threading.active_count()
            return {"pid": os.getpid(), "imported_in": IMPORTED_IN, "calls": CALLS[0], "threads": threads}
        """
    )
    async with HookRunner(spec, Limits(timeout=5), SANDBOX) as runner:
        first = (await runner.call({})).value
        second = (await runner.call({})).value
    for seen in (first, second):
        assert seen["pid"] == seen["imported_in"]  # the module body ran in the call's own process
        assert seen["calls"] == 1  # module state starts afresh for every call
        assert seen["threads"] == 2
    assert first["pid"] != second["pid"]


async def test_missing_hook_file_is_refused(tmp_path: object) -> None:
    with pytest.raises(HookImportError, match="not found"):
        await _start(HookSpec(path="/nonexistent/custom_sso.py", function="handler"))


async def test_import_output_is_kept_for_the_operator(write_hook: Callable[..., HookSpec]) -> None:
    spec = write_hook(
        """
        print("loading tenant map")
        raise RuntimeError("tenant map missing")
        """
    )
    with pytest.raises(HookImportError, match="tenant map missing") as caught:
        await _start(spec)
    assert "loading tenant map" in caught.value.stdout


async def test_hook_can_be_a_package(tmp_path: object) -> None:
    from pathlib import Path

    package = Path(str(tmp_path)) / "sso_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from .rules import handler\n")
    (package / "rules.py").write_text("def handler(info):\n    return {'from': __name__}\n")
    async with HookRunner(HookSpec(path=package, function="handler"), Limits(timeout=5), SANDBOX) as runner:
        assert (await runner.call({})).value == {"from": "sso_pkg.rules"}
