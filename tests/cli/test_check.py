"""``hookjail check``: ``--openid-file``, the sandbox layers, the JSON contract and the exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proxy import load_config
from proxy.cli._check import CheckReport, judge
from tests.cli.helpers import ECHO_HOOK, RAISING_HOOK, SLEEPING_HOOK, hookjail, hookjail_json, write_config

CONTRACT = {"outcome", "values", "error", "duration_ms", "stdout", "stderr", "run_id", "layers"}

LOOKUP_HOOK = """
from sdk import NotFoundError, OpenID, SSOUserDefinedValues, user_info

async def custom_sso_handler(userIDPInfo: OpenID) -> SSOUserDefinedValues:
    try:
        await user_info(user_id=userIDPInfo.id)
        found = "found"
    except NotFoundError:
        found = "not-found"
    except PermissionError:
        found = "refused"
    return SSOUserDefinedValues(
        models=[], user_id=found, user_email=None, user_role="internal_user", max_budget=1.0, budget_duration=None,
    )
"""


def test_openid_file_is_what_the_hook_sees(tmp_path: Path) -> None:
    config = write_config(tmp_path, ECHO_HOOK)
    openid = tmp_path / "openid.json"
    openid.write_text(json.dumps({"id": "carol", "email": "carol@example.com", "first_name": "Carol"}))
    code, report = hookjail_json("check", "--config", config, "--openid-file", openid)
    assert code == 0, report
    assert report["outcome"] == "ok"
    assert report["values"]["user_id"] == "carol"
    assert report["values"]["user_email"] == "carol@example.com"
    assert "hook saw carol@example.com" in report["stdout"]


def test_json_has_exactly_the_contract_keys(tmp_path: Path) -> None:
    code, report = hookjail_json("check", "--config", write_config(tmp_path, ECHO_HOOK))
    assert code == 0
    assert set(report) == CONTRACT
    assert isinstance(report["run_id"], str)
    assert report["run_id"]
    assert report["duration_ms"] > 0
    assert report["error"] is None
    assert report["stderr"] == ""


def test_json_lists_the_active_layers(tmp_path: Path) -> None:
    code, report = hookjail_json("check", "--config", write_config(tmp_path, ECHO_HOOK))
    assert code == 0
    layers = report["layers"]
    assert {"landlock", "seccomp", "network_namespace", "no_new_privs"} <= set(layers)
    assert all(value not in (False, "", None) for value in layers.values()), layers


def test_text_output_lists_every_layer(tmp_path: Path) -> None:
    config = write_config(tmp_path, ECHO_HOOK)
    _, report = hookjail_json("check", "--config", config)
    result = hookjail("check", "--config", config)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "outcome:  ok" in text
    section = text.split("sandbox layers:\n", 1)[1].split("\n")
    shown = {line.split()[0] for line in section[: len(report["layers"])]}
    assert shown == set(report["layers"])
    assert '"user_id": "check-user"' in text


def test_raising_hook_is_reported_with_exit_1(tmp_path: Path) -> None:
    code, report = hookjail_json("check", "--config", write_config(tmp_path, RAISING_HOOK))
    assert code == 1
    assert set(report) == CONTRACT
    assert report["outcome"] == "raised"
    assert "LookupError" in report["error"] or "not in the HR directory" in report["error"]
    assert report["values"] is None
    assert report["layers"]


def test_timing_out_hook_is_reported_with_exit_1(tmp_path: Path) -> None:
    config = write_config(tmp_path, SLEEPING_HOOK, hook_settings={"timeout": 30})
    code, report = hookjail_json("check", "--config", config, "--hook-timeout", "0.5")
    assert code == 1
    assert report["outcome"] == "timeout"
    assert "0.5" in report["error"]


def test_values_refused_by_policy_exit_1(tmp_path: Path) -> None:
    config = write_config(tmp_path, ECHO_HOOK, hook_settings={"policy": {"max_budget": 1}})
    code, report = hookjail_json("check", "--config", config)
    assert code == 1
    assert report["outcome"] == "refused"
    assert "max_budget" in report["error"]


def test_host_calls_are_answered_by_an_empty_host(tmp_path: Path) -> None:
    code, report = hookjail_json("check", "--config", write_config(tmp_path, LOOKUP_HOOK))
    assert code == 0, report
    assert report["values"]["user_id"] == "not-found"


def test_no_host_refuses_host_calls(tmp_path: Path) -> None:
    code, report = hookjail_json("check", "--config", write_config(tmp_path, LOOKUP_HOOK), "--no-host")
    assert code == 0, report
    assert report["values"]["user_id"] == "refused"


def test_host_calls_not_granted_are_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, LOOKUP_HOOK, hook_settings={"permissions": []})
    code, report = hookjail_json("check", "--config", config)
    assert code == 0, report
    assert report["values"]["user_id"] == "refused"


def test_missing_openid_file_is_a_usage_error(tmp_path: Path) -> None:
    result = hookjail("check", "--config", write_config(tmp_path, ECHO_HOOK), "--openid-file", tmp_path / "nope")
    assert result.returncode == 2
    assert "--openid-file" in result.stderr
    assert result.stdout == ""


def test_openid_file_that_is_not_an_openid_is_a_usage_error(tmp_path: Path) -> None:
    openid = tmp_path / "openid.json"
    openid.write_text('{"email": "not an email"}')
    result = hookjail("check", "--config", write_config(tmp_path, ECHO_HOOK), "--openid-file", openid)
    assert result.returncode == 2
    assert "--openid-file" in result.stderr
    assert "email" in result.stderr


def test_openid_and_openid_file_are_exclusive(tmp_path: Path) -> None:
    openid = tmp_path / "openid.json"
    openid.write_text("{}")
    result = hookjail("check", "--config", write_config(tmp_path, ECHO_HOOK), "--openid", "{}", "--openid-file", openid)
    assert result.returncode == 2
    assert "not allowed with" in result.stderr


#: Prints terminal escapes (clear screen, OSC 52 clipboard write, a bidi override) and a forged report line to
#: both streams, then raises with more of the same in its message.
ESCAPING_HOOK = r"""
import sys

FORGED = "\x1b[2J\x1b]52;c;ZXZpbA==\x07outcome: ok"

def custom_sso_handler(userIDPInfo):
    print(FORGED)
    print("\noutcome: ok\r\noutcome: ok\u202egnp.exe\x9b2J")
    print(FORGED, file=sys.stderr)
    raise RuntimeError(FORGED + "\noutcome: ok\r")
"""

#: Returns values of types that are not plain data: bytes (msgpack carries them), a set, a datetime, a
#: bytes key, and a string full of escapes.
ODD_VALUES_HOOK = r"""
import datetime

def custom_sso_handler(userIDPInfo):
    return {
        "models": ["gpt-4o"], "user_id": b"admin", "user_email": None, "user_role": "internal_user",
        "max_budget": 1.0, "budget_duration": datetime.datetime(2020, 1, 1),
        "\x1b]52;c;ZXZpbA==\x07": {1, 2}, b"raw": {"nested": [b"\x1b[2J", {3}]},
    }
"""


def report_lines_are_the_reports_own(text: str, outcome: str) -> None:
    """No raw terminal control reaches the output, and no line but the first starts like a report line."""
    for raw in ("\x1b", "\x07", "\r", "\x9b", "\u202e"):
        assert raw not in text, repr(raw)
    assert [line for line in text.splitlines() if line.startswith("outcome")] == [f"outcome:  {outcome}"]


def test_hook_output_cannot_drive_the_terminal(tmp_path: Path) -> None:
    config = write_config(tmp_path, ESCAPING_HOOK)
    result = hookjail("check", "--config", config)
    assert result.returncode == 1, result.stderr
    report_lines_are_the_reports_own(result.stdout, "raised")
    assert "\\x1b[2J\\x1b]52;c;ZXZpbA==\\x07outcome: ok" in result.stdout  # shown, escaped
    assert "\\u202egnp.exe" in result.stdout
    sections = [line for line in result.stdout.splitlines() if not line.startswith(("  ", "\t"))]
    assert {"stdout:", "stderr:", "traceback:"} <= set(sections)
    # --json: the same text, intact and escaped as JSON
    result = hookjail("check", "--config", config, "--json")
    assert "\x1b" not in result.stdout
    report = json.loads(result.stdout)
    assert report["outcome"] == "raised"
    assert report["stdout"].startswith("\x1b[2J\x1b]52;c;ZXZpbA==\x07outcome: ok\n")
    assert "\x1b[2J" in report["error"]


def test_values_that_are_not_plain_data_are_invalid(tmp_path: Path) -> None:
    config = write_config(tmp_path, ODD_VALUES_HOOK)
    result = hookjail("check", "--config", config, "--json")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "\x1b" not in result.stdout
    report = json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"not JSON: {name}"))
    assert set(report) == CONTRACT
    assert report["outcome"] == "invalid"
    assert report["error"] == "user_id: must be a string, got bytes"
    values = report["values"]
    assert values["user_id"] == "<bytes: b'admin'>"
    assert values["<bytes: b'raw'>"] == {"nested": ["<bytes: b'\\x1b[2J'>", [3]]}
    assert values["\x1b]52;c;ZXZpbA==\x07"] == [1, 2]  # the runner sends a set as a list
    result = hookjail("check", "--config", config)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    report_lines_are_the_reports_own(result.stdout, "invalid")
    assert "error:    user_id: must be a string, got bytes" in result.stdout


def test_bytes_in_models_name_the_model_and_the_report_stays_json(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, ECHO_HOOK))
    value = {
        "models": ["gpt-4o", b"gpt"],
        "user_id": "u",
        "user_email": None,
        "user_role": "internal_user",
        "max_budget": float("nan"),
        "budget_duration": None,
    }
    verdict = judge(value, config)
    assert (verdict.outcome, verdict.error) == ("invalid", "models.1: must be a string, got bytes")
    report = CheckReport(outcome=verdict.outcome, values=verdict.values, error=verdict.error)
    json.dumps(report.as_dict(), allow_nan=False)
    assert '"max_budget": "<float: nan>"' in report.as_text()


#: Refuses the user on purpose; the reason carries terminal escapes and a forged report line.
DENYING_HOOK = r"""
from sdk import Deny

def custom_sso_handler(userIDPInfo):
    print("checked", userIDPInfo.email)
    if userIDPInfo.email == "mallory@example.com":
        raise Deny("\x1b[2Jnot on the allowlist\noutcome: ok")
    raise Deny("Your account is not on the allowlist — ask #it-help")
"""


def test_denying_hook_is_reported_as_denied_with_its_reason(tmp_path: Path) -> None:
    config = write_config(tmp_path, DENYING_HOOK)
    code, report = hookjail_json("check", "--config", config)
    assert code == 1
    assert set(report) == CONTRACT
    assert report["outcome"] == "denied"
    assert report["error"] == "Your account is not on the allowlist — ask #it-help"  # the reason, as a user reads it
    assert report["values"] is None
    assert report["run_id"]
    assert "checked check-user@example.com" in report["stdout"]
    result = hookjail("check", "--config", config)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert "outcome:  denied" in lines
    assert "reason:   Your account is not on the allowlist — ask #it-help" in lines
    assert any("HTTP 403" in line for line in lines)
    assert not any(line.startswith("error:") for line in lines)
    assert "traceback:" not in lines


def test_a_denials_reason_cannot_drive_the_terminal(tmp_path: Path) -> None:
    config = write_config(tmp_path, DENYING_HOOK)
    result = hookjail("check", "--config", config, "--openid", '{"id": "mal", "email": "mallory@example.com"}')
    assert result.returncode == 1, result.stderr
    report_lines_are_the_reports_own(result.stdout, "denied")
    assert "reason:   \\x1b[2Jnot on the allowlist" in result.stdout
    assert "  | outcome: ok" in result.stdout


def test_denied_report_as_text_and_dict() -> None:
    report = CheckReport(outcome="denied", error="ask #it-help", run_id="r1")
    assert report.as_dict()["error"] == "ask #it-help"
    assert not report.ok
    assert "reason:   ask #it-help" in report.as_text().splitlines()


# --- configuration errors with --json ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["check", "bench"])
def test_check_json_prints_config_errors_as_json(tmp_path: Path, command: str) -> None:
    config = write_config(tmp_path, ECHO_HOOK, hook_settings={"timout": 3})
    code, report = hookjail_json(command, "--config", config)
    assert code == 2
    assert report == {
        "outcome": "config_error",
        "error": "config.yaml: hook_settings.timout: unknown key; did you mean 'timeout'?",
        "key": "hook_settings.timout",
        "keys": ["hook_settings.timout"],
    }


def test_check_json_config_error_lists_every_key(tmp_path: Path) -> None:
    config = write_config(tmp_path, ECHO_HOOK, hook_settings={"memory_mb": 0, "policy": {"allowed_roles": ["boss"]}})
    config.write_text(config.read_text().replace("hook_settings:", "hook_setings: {}\nhook_settings:"))
    code, report = hookjail_json("check", "--config", config)
    assert code == 2
    assert report["outcome"] == "config_error"
    assert report["key"] == "hook_setings"  # a near miss of a key hookjail reads: an error, not an ignored key
    assert report["keys"] == ["hook_setings"]
    config.write_text(config.read_text().replace("hook_setings: {}\n", ""))
    code, report = hookjail_json("check", "--config", config)
    assert code == 2
    assert report["keys"] == ["hook_settings.memory_mb", "hook_settings.policy.allowed_roles[0]"]
    assert "'boss' is not a role; the valid roles are proxy_admin," in report["error"]


def test_config_errors_without_json_stay_text_on_stderr(tmp_path: Path) -> None:
    result = hookjail("check", "--config", write_config(tmp_path, ECHO_HOOK, hook_settings={"timout": 3}))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "hookjail: configuration error: config.yaml: hook_settings.timout: unknown key; did you mean 'timeout'?\n"
    )
