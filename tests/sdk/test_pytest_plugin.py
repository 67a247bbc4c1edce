"""The ``hook_runner`` fixture of sdk.pytest_plugin."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sdk.pytest_plugin import HookTester
from sdk.testing import FakeHost

from .conftest import HOOKS, hook

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.anyio
async def test_fixture_runs_hooks_with_its_host(hook_runner: HookTester) -> None:
    hook_runner.host = FakeHost(users=[{"user_id": "bob", "user_role": "proxy_admin"}])
    await hook_runner.run(hook("host_api", "lookup_user"), {"id": "bob"})
    assert [(c.method, c.outcome) for c in hook_runner.host.calls] == [("user_info", "ok")]


def test_fixture_runs_hooks_from_plain_tests(hook_runner: HookTester) -> None:
    result = hook_runner.run_sync(hook("values", "returns_good_values"), {"id": "carol"})
    assert result.value["user_id"] == "carol"


def test_plugin_loads_through_its_entry_point(tmp_path: Path) -> None:
    test_file = tmp_path / "test_hook.py"
    test_file.write_text(
        textwrap.dedent(
            f"""
            def test_hook(hook_runner):
                result = hook_runner.run_sync({str(HOOKS / "values.py") + ":returns_good_values"!r}, {{"id": "dan"}})
                assert result.value["user_id"] == "dan"
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/local/bin:/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
