"""CI: a newcomer's first commands, on a plain install (``pip install .``, no test extra) in a fresh venv.

Run with that venv's python from the checkout: ``PLAIN/bin/python .ci/first_run.py PLAIN/bin/hookjail``. It runs
``hookjail --help``, ``--version`` and ``check`` on the bundled example, then ``hookjail demo`` until it serves,
and signs in once over HTTP through the demo's provider to the dashboard. A dependency that only the test extra
pulls in (greenlet once was) fails here, not in front of a user.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.cli.demo (stdlib and httpx only: both in a plain install)

from tests.cli.demo import dashboard_values, run_demo, sign_in  # noqa: E402


def _run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def main() -> None:
    hookjail = sys.argv[1]
    assert "usage:" in _run(hookjail, "--help")
    print("hookjail --version:", _run(hookjail, "--version").strip())
    report = _run(hookjail, "check", "--config", "examples/config.yaml")
    assert re.search(r"^outcome:\s+ok$", report, re.MULTILINE), report
    with tempfile.TemporaryDirectory() as tmp, run_demo(Path(tmp), command=[hookjail], cwd=REPO) as demo:
        response = sign_in(demo, "Carol Jones")
        assert response.status_code == 200 and response.url.path == "/ui/", response.text[:2000]
        values = dashboard_values(response.text)
        assert values["email"] == "carol.jones@example.com", values
    print("first run: --help, --version, check and a demo login on a plain install all work")


if __name__ == "__main__":
    main()
