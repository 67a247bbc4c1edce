"""A layer the host cannot provide: strict mode refuses to start (before confining anything); permissive
mode runs without it and says so."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from runner._landlock import abi_version

from ._jail import REPO, python_read_paths

# Each case makes one layer look unavailable, the way a host without it would answer.
_MISSING = {
    "landlock": "import runner._confine as c; c.landlock_abi = lambda: 0",
    "landlock_scoping": "import runner._confine as c; c.landlock_abi = lambda: 5",
    "seccomp": "import runner._seccomp as s; s.filter_mode_available = lambda: False",
}

_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
exec(sys.argv[2])
from runner._confine import Confinement
from runner._errors import SandboxUnavailable
try:
    read_paths = json.loads(sys.argv[3])
    conf = Confinement.prepare(network=False, read_paths=read_paths, tmp_root=None, strict=sys.argv[4] == "1")
except SandboxUnavailable as exc:
    layers = {"error": exc.message}
else:
    layers = conf.layers
try:
    open("/etc/shadow", "rb").close()
    layers["shadow"] = "readable"
except OSError as exc:
    layers["shadow"] = exc.errno
print(json.dumps(layers))
"""


def _prepare(missing: str, *, strict: bool) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-I", "-c", _SCRIPT, REPO, _MISSING[missing], json.dumps(python_read_paths()), "01"[strict]],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize("missing", ["landlock", "seccomp"])
def test_strict_mode_refuses_before_confining(missing: str) -> None:
    result = _prepare(missing, strict=True)
    assert str(result["error"]).startswith(f"{missing} is not available on this host")
    assert result["shadow"] == "readable"  # nothing was applied: the caller can report and exit cleanly


def test_strict_mode_refuses_landlock_without_signal_scoping() -> None:
    result = _prepare("landlock_scoping", strict=True)
    assert result["error"].startswith("landlock is not available on this host: ABI 5 has no signal scoping (needs 6). ")
    assert "Linux 6.12" in result["error"]  # and what to do about it


def test_permissive_mode_runs_without_landlock_and_reports_it() -> None:
    result = _prepare("landlock", strict=False)
    assert result["landlock"] is False
    assert result["seccomp"] is True
    assert result["user_namespace"] == "uid 1000 in ns"


def test_permissive_mode_uses_older_landlock_and_reports_it() -> None:
    result = _prepare("landlock_scoping", strict=False)
    assert result["landlock"] == "abi 5 (no scoping)"
    assert result["shadow"] == 13  # EACCES: the filesystem part still holds


def test_permissive_mode_runs_without_seccomp_and_reports_it() -> None:
    result = _prepare("seccomp", strict=False)
    assert result["seccomp"] is False
    assert result["landlock"] == f"abi {abi_version()}"
