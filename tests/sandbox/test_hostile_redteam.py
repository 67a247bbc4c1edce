"""What a red-team pass against the design without hook code in the template found, each as a test: the
template's pre-imports, tasks, memory no rlimit counts, the parent's decoding and the OOM killer's choice."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner import HookLimitExceeded, HookRunner, Limits

from ._hooks import LIMITS, call_once, sandbox, write_hook

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def planted() -> Iterator[tuple[str, Path]]:
    """A module the hook author controls that sits on the template's sys.path (the checkout holding runner/),
    e.g. because the operator granted its directory. Importing it in the template would disable every
    per-call limit for later calls."""
    name = f"_planted_{uuid.uuid4().hex[:8]}"
    directory = REPO / name
    directory.mkdir()
    (directory / "__init__.py").write_text(
        "import sys\n"
        "if 'runner._zygote' in sys.modules:\n"
        "    import runner._child\n"
        "    runner._child.apply_limits = lambda config, vm_bytes: None\n"
    )
    try:
        yield name, directory
    finally:
        shutil.rmtree(directory)


async def test_cant_get_the_template_to_import_hook_controlled_code(
    operator_dir: Path, planted: tuple[str, Path]
) -> None:
    module, directory = planted
    spec = write_hook(
        operator_dir,
        f"""
        import colorsys, resource
        import {module}

        def handler(info):
            return resource.getrlimit(resource.RLIMIT_AS)[0]
        """,
    )
    box = sandbox(operator_dir, read_paths=(str(directory), str(operator_dir / "allowed.csv")))
    async with HookRunner(spec, LIMITS, box) as runner:
        assert runner._template is not None and runner._template.ready is not None
        assert module not in runner._template.ready.preimported
        assert "colorsys" in runner._template.ready.preimported  # what is installed still is
        limit = (await runner.call({})).value
    assert limit != -1  # RLIM_INFINITY: the planted module would have switched the memory limit off


async def test_cant_run_the_host_out_of_process_ids(operator_dir: Path) -> None:
    # Threads are tasks: counted in the worker's own user namespace, they stop at its limit (EAGAIN) whatever
    # way they are made (the red team used raw clone(CLONE_THREAD) shellcode; threading does the same call).
    spec = write_hook(
        operator_dir,
        """
        import threading

        def handler(info):
            stop, made = threading.Event(), 0
            try:
                while made < 100_000:
                    threading.Thread(target=stop.wait, daemon=True).start()
                    made += 1
                error = None
            except RuntimeError as exc:
                error = str(exc)
            stop.set()
            return {"made": made, "error": error}
        """,
    )
    limits = Limits(timeout=20, max_threads=4, max_concurrency=2, prefork=1)
    async with HookRunner(spec, limits, sandbox(operator_dir)) as runner:
        value = (await runner.call({})).value
    assert value["error"] == "can't start new thread"
    assert 0 < value["made"] <= 4 * 2 + 16


async def test_cant_hold_memory_no_rlimit_counts(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        """
        import os

        def handler(info):
            return observe(lambda: os.memfd_create("stash"))
        """,
    )
    assert (await call_once(spec, sandbox(operator_dir))).value == {"errno": "EPERM", "type": "PermissionError"}


async def test_cant_make_the_parent_decode_megabytes_of_host_call_arguments(operator_dir: Path) -> None:
    spec = write_hook(
        operator_dir,
        """
        from runner import host_call

        def handler(info):
            for _ in range(100):
                host_call("user_info", {"x": [0] * 200_000})
        """,
    )
    answered = 0

    async def host(method: str, args: dict[str, Any]) -> None:
        nonlocal answered
        answered += 1

    async with HookRunner(spec, Limits(timeout=20, max_host_calls=1000), sandbox(operator_dir)) as runner:
        with pytest.raises(HookLimitExceeded) as caught:
            await runner.call({}, host=host)
    assert caught.value.limit == "channel"
    assert answered <= 4 * 1024 * 1024 // 200_000  # a few frames' worth (each ~200 KB), not a hundred


async def test_the_oom_killer_picks_a_worker_before_the_proxy(operator_dir: Path) -> None:
    spec = write_hook(operator_dir, "def handler(info):\n    return {}\n")
    async with HookRunner(spec, LIMITS, sandbox(operator_dir)) as runner:
        assert runner._template is not None and runner._template.ready is not None
        template = runner._template.ready.pid
        await runner.call({})
        assert Path(f"/proc/{template}/oom_score_adj").read_text().strip() == "1000"
        await asyncio.sleep(0)
