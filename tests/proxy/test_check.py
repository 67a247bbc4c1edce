"""``hookjail check``: runs the configured hook once through the sandbox and reports the outcome."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.proxy.harness import DOMAIN_HOOK, REPO, write_config

KEYS = {"outcome", "values", "error", "duration_ms", "stdout", "stderr", "run_id", "layers"}


def check(directory: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = subprocess.run(  # noqa: PLW1510 (the exit code is the subject)
        [sys.executable, "-m", "proxy", "check", "--config", str(directory / "config.yaml"), "--json", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_example_config_checks_ok() -> None:
    result = subprocess.run(  # noqa: PLW1510 (the exit code is the subject)
        [sys.executable, "-m", "proxy", "check", "--config", "examples/config.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "outcome:  ok" in result.stdout
    assert "internal_user" in result.stdout
    assert "sandbox layers:" in result.stdout


def test_ok_prints_validated_values_and_layers(tmp_path: Path) -> None:
    write_config(tmp_path, hook_source=DOMAIN_HOOK)
    code, report = check(tmp_path, "--openid", '{"id": "alice", "email": "alice@admin.example.com"}')
    assert code == 0
    assert set(report) == KEYS
    assert report["outcome"] == "ok"
    assert report["values"]["user_role"] == "proxy_admin"
    assert report["values"]["user_id"] == "alice"
    assert "hook saw alice@admin.example.com" in report["stdout"]
    assert report["layers"]
    assert report["duration_ms"] > 0


def test_raising_hook_exits_non_zero(tmp_path: Path) -> None:
    write_config(tmp_path, hook_source="def custom_sso_handler(u):\n    raise KeyError('nope')\n")
    code, report = check(tmp_path)
    assert code == 1
    assert report["outcome"] == "raised"
    assert "KeyError" in report["error"] or "nope" in report["error"]
    assert report["run_id"]


def test_import_error_is_reported(tmp_path: Path) -> None:
    write_config(tmp_path, hook_source="import does_not_exist_anywhere\n")
    code, report = check(tmp_path)
    assert code == 1
    assert report["outcome"] == "import_error"


def test_invalid_values_are_reported_with_the_field(tmp_path: Path) -> None:
    write_config(tmp_path, hook_source="def custom_sso_handler(u):\n    return {'user_id': u.id}\n")
    code, report = check(tmp_path)
    assert code == 1
    assert report["outcome"] == "invalid"
    assert "models" in report["error"]


def test_hook_timeout_flag_overrides_config(tmp_path: Path) -> None:
    source = "import time\n\ndef custom_sso_handler(u):\n    time.sleep(20)\n"
    write_config(tmp_path, hook_source=source, hook_settings={"timeout": 30})
    code, report = check(tmp_path, "--hook-timeout", "0.5")
    assert code == 1
    assert report["outcome"] == "timeout"
    assert report["duration_ms"] < 5000


def test_bad_openid_is_a_usage_error(tmp_path: Path) -> None:
    write_config(tmp_path, hook_source=DOMAIN_HOOK)
    result = subprocess.run(  # noqa: PLW1510 (the exit code is the subject)
        [
            sys.executable,
            "-m",
            "proxy",
            "check",
            "--config",
            str(tmp_path / "config.yaml"),
            "--openid",
            "[1]",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert "--openid" in result.stderr


SNOOPING_HOOK = """
import os

def custom_sso_handler(userIDPInfo):
    found = sorted(os.environ)
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("config.yaml", "hookjail.db", "data.csv"):
        try:
            with open(os.path.join(here, name)) as f:
                f.read()
            found.append("read:" + name)
        except OSError:
            found.append("denied:" + name)
    return {"models": found, "user_id": "snoop", "user_email": None, "user_role": "internal_user",
            "max_budget": None, "budget_duration": None}
"""


def test_hook_sees_only_its_env_and_files(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        hook_source=SNOOPING_HOOK,
        hook_settings={"env": {"HR_TOKEN": "os.environ/HR_TOKEN"}, "files": ["data.csv"]},
    )
    (tmp_path / "data.csv").write_text("alice@example.com\n")
    (tmp_path / "hookjail.db").write_text("not really a database")
    secrets = {"LITELLM_MASTER_KEY": "sk-secret", "GENERIC_CLIENT_SECRET": "s3cret", "HR_TOKEN": "hr-token"}
    result = subprocess.run(  # noqa: PLW1510 (the exit code is the subject)
        [sys.executable, "-m", "proxy", "check", "--config", str(tmp_path / "config.yaml"), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **secrets},
    )
    report = json.loads(result.stdout)
    assert report["outcome"] == "ok", report
    seen = report["values"]["models"]
    assert "HR_TOKEN" in seen
    assert "LITELLM_MASTER_KEY" not in seen
    assert "GENERIC_CLIENT_SECRET" not in seen
    assert "read:data.csv" in seen
    assert "denied:config.yaml" in seen
    assert "denied:hookjail.db" in seen
