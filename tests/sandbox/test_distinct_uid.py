"""The worker's outer identity: a uid of its own when the proxy is root and the worker can read what it needs.

The proxy under test runs in a small, world-readable Python environment the fixture builds (Debian's own
python3, with the runner, msgspec and pyseccomp copied in), so that an unprivileged uid can read it wherever
the checkout lives. The test suite's own interpreter may not be readable by that uid (a pyenv build under
/root): that case is the "off, with the reason" test.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner import DEFAULT_WORKER_UID, HookRunner, HookSpec, Limits, Sandbox

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]
DEBIAN_PYTHON = "/usr/bin/python3"


def _copy_module(name: str, site: Path) -> None:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None
    if spec.submodule_search_locations:
        source = Path(spec.origin).parent
        shutil.copytree(source, site / source.name, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        shutil.copy2(spec.origin, site)


@pytest.fixture(scope="module")
def world() -> Iterator[Path]:
    """A world-readable directory holding a venv of Debian's python3 with what the runner needs."""
    assert os.geteuid() == 0, "these tests start the worker as another uid: they need a root proxy"
    assert os.path.exists(DEBIAN_PYTHON), "Debian's python3 is part of the test machine (see .ci/run)"
    root = Path(tempfile.mkdtemp(prefix="hookjail-world-", dir="/tmp"))
    try:
        root.chmod(0o755)
        subprocess.run([DEBIAN_PYTHON, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
        site = next((root / "venv" / "lib").glob("python3*/site-packages"))
        for name in ("runner", "msgspec", "pyseccomp"):
            _copy_module(name, site)
        (root / "hooks").mkdir(mode=0o755)
        subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


# Runs in the world-readable venv as the "proxy": one call whose hook queues real-time signals to itself until
# refused, then waits in a host call while this script reads the pending-signal counts of its own uid (root)
# and of the worker's (SigQ in /proc/PID/status: "queued/limit" for that process's real uid).
_PROXY = """
import asyncio, json, os, sys
from runner import HookRunner, HookSpec, Limits, Sandbox

def sigq(pid):
    line = next(l for l in open(f"/proc/{pid}/status") if l.startswith("SigQ:"))
    return int(line.split()[1].split("/")[0])

def uids(pid):
    line = next(l for l in open(f"/proc/{pid}/status") if l.startswith("Uid:"))
    return sorted(set(int(u) for u in line.split()[1:]))

async def main():
    box = Sandbox(read_paths=tuple(sys.argv[3:]))
    async with HookRunner(HookSpec(sys.argv[1], "handler"), Limits(timeout=20), box) as runner:
        template = runner._template.ready.pid
        seen = {"before_root": sigq(os.getpid())}

        async def host(method, args):
            seen["during_root"] = sigq(os.getpid())
            seen["during_worker"] = sigq(template)
            return None

        result = await runner.call(json.loads(sys.argv[2]), host=host)
        children = [int(c) for c in open(f"/proc/{template}/task/{template}/children").read().split()]
        print(json.dumps({
            "layers": runner.layers, "notes": runner.layer_notes, "value": result.value, **seen,
            "template_uids": uids(template), "children_uids": sorted({u for c in children for u in uids(c)}),
        }))

asyncio.run(main())
"""

_HOOK = """
import ctypes, os, signal
from runner import host_call

libc = ctypes.CDLL(None, use_errno=True)

class _Value(ctypes.Union):
    _fields_ = (("sival_int", ctypes.c_int), ("sival_ptr", ctypes.c_void_p))

def read(path):
    try:
        return open(path).read()
    except OSError as exc:
        return exc.strerror

def handler(info):
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGRTMIN})
    queued = 0
    while queued < 10_000 and libc.sigqueue(os.getpid(), signal.SIGRTMIN, _Value(1)) == 0:
        queued += 1
    refused = os.strerror(ctypes.get_errno())
    host_call("hold", {})
    return {"uid": os.getuid(), "queued": queued, "refused": refused, "secret": read(info.get("secret", "/x"))}
"""


def _run_proxy(world: Path, hook_dir: Path, *read_paths: str, arg: dict[str, Any] | None = None) -> dict[str, Any]:
    hook = hook_dir / "custom_sso.py"
    hook.write_text(textwrap.dedent(_HOOK))
    hook.chmod(0o644)
    done = subprocess.run(
        [str(world / "venv" / "bin" / "python"), "-c", _PROXY, str(hook), json.dumps(arg or {}), *read_paths],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_worker_runs_as_its_own_uid_when_it_can(world: Path) -> None:
    seen = _run_proxy(world, world / "hooks")
    assert seen["layers"]["distinct_uid"] == f"uid {DEFAULT_WORKER_UID}"
    assert seen["notes"] == {}
    assert seen["template_uids"] == [DEFAULT_WORKER_UID]
    assert seen["children_uids"] == [DEFAULT_WORKER_UID]  # its reaper and reserve children
    assert seen["value"]["uid"] == 1000  # inside its user namespace, as always


def test_cant_run_the_proxys_pending_signal_quota_down(world: Path) -> None:
    seen = _run_proxy(world, world / "hooks")
    value = seen["value"]
    # The worker's namespace allows a few dozen queued signals in all, and they count against its own uid.
    assert value["refused"] == "Resource temporarily unavailable"
    assert 0 < value["queued"] <= 64
    assert seen["during_root"] == seen["before_root"]
    assert seen["during_worker"] >= value["queued"]


def test_cant_read_a_root_only_file_inside_a_granted_directory(world: Path) -> None:
    # An operator granted a data directory; one file in it is root's alone (mode 0600). Landlock lets the hook
    # open anything under the grant; the permission bits, now that the worker is not root, do not.
    data = world / "data"
    data.mkdir(mode=0o755)
    (data / "public.csv").write_text("a@example.com\n")
    (data / "public.csv").chmod(0o644)
    secret = data / "secret.env"
    secret.write_text("MASTER_KEY=sk-hookjail\n")
    secret.chmod(0o600)
    seen = _run_proxy(world, world / "hooks", str(data), arg={"secret": str(secret)})
    assert seen["layers"]["distinct_uid"] == f"uid {DEFAULT_WORKER_UID}"
    assert seen["value"]["secret"] == "Permission denied"


async def test_distinct_uid_is_off_with_the_reason_when_the_hook_is_unreadable(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    hook = private / "custom_sso.py"
    hook.write_text("def handler(info):\n    return {}\n")
    async with HookRunner(HookSpec(hook, "handler"), Limits(timeout=5), Sandbox()) as runner:
        assert runner.layers["distinct_uid"] is False
        note = runner.layer_notes["distinct_uid"]
        assert note.startswith(f"off: uid {DEFAULT_WORKER_UID} cannot read /")
        assert (await runner.call({})).value == {}  # and the hook runs as before, as the proxy's uid


async def test_worker_uid_none_keeps_the_proxys_uid(tmp_path: Path) -> None:
    hook = tmp_path / "custom_sso.py"
    hook.write_text("def handler(info):\n    return {}\n")
    async with HookRunner(HookSpec(hook, "handler"), Limits(timeout=5), Sandbox(worker_uid=None)) as runner:
        assert runner.layers["distinct_uid"] is False
        assert runner.layer_notes == {"distinct_uid": "off: no worker uid configured"}


def test_worker_uid_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="worker_uid"):
        Sandbox(worker_uid=0)


async def test_pending_signals_stay_bounded_when_the_worker_shares_the_proxys_uid(tmp_path: Path) -> None:
    hook = tmp_path / "custom_sso.py"
    hook.write_text(textwrap.dedent(_HOOK))
    during: list[int] = []

    def sigq() -> int:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("SigQ:"))
        return int(line.split()[1].split("/")[0])

    async def host(method: str, args: dict[str, Any]) -> None:
        during.append(sigq())

    box = Sandbox(worker_uid=None)
    async with HookRunner(HookSpec(hook, "handler"), Limits(timeout=20), box) as runner:
        before = sigq()
        value = (await runner.call({}, host=host)).value
    # The same uid as the proxy: what the hook queues is counted against it, but only up to the namespace's
    # ceiling (set on the template before its user namespace was made), far below the host's limit.
    assert value["refused"] == "Resource temporarily unavailable"
    assert 0 < value["queued"] <= 64
    assert 0 < during[0] - before <= 64
