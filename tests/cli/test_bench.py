"""``hookjail bench``: the figures it prints are consistent, failures are counted, the progress bar stays on a
terminal; and the arithmetic behind them."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from proxy.cli._bench import histogram, percentile, round_up_timeout, suggest_timeout
from tests.cli.helpers import (
    ECHO_HOOK,
    RAISING_HOOK,
    SLEEPING_HOOK,
    hookjail,
    hookjail_json,
    hookjail_on_a_terminal,
    write_config,
)

FLAKY_HOOK = """
import os
from sdk import OpenID, SSOUserDefinedValues

def custom_sso_handler(userIDPInfo: OpenID) -> SSOUserDefinedValues:
    if os.urandom(1)[0] % 2:
        raise RuntimeError("coin came up tails")
    return SSOUserDefinedValues(
        models=[], user_id=userIDPInfo.id, user_email=None, user_role="internal_user", max_budget=1.0,
        budget_duration=None,
    )
"""


def check_figures(report: dict[str, Any], calls: int) -> None:
    assert report["error"] is None
    assert report["calls"] == calls
    assert sum(report["outcomes"].values()) == calls
    latency = report["latency_ms"]
    assert 0 < latency["min"] <= latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert latency["min"] <= latency["mean"] <= latency["max"]
    assert sum(bucket["count"] for bucket in report["histogram"]) == calls
    assert report["histogram"][0]["low_ms"] == latency["min"]
    assert report["histogram"][-1]["high_ms"] == latency["max"]
    suggested = report["suggested_timeout"]
    assert suggested["p99_ms"] == latency["p99"]
    assert suggested["seconds"] >= suggested["floor_seconds"]
    assert suggested["seconds"] >= latency["p99"] / 1000 * suggested["safety_factor"] - 1e-6  # float noise
    assert suggested["reasoning"]


def test_json_figures_are_consistent(tmp_path: Path) -> None:
    config = write_config(tmp_path, ECHO_HOOK)
    code, report = hookjail_json("bench", "--config", config, "-n", "60", "--concurrency", "3")
    assert code == 0, report
    check_figures(report, 60)
    assert report["outcomes"]["ok"] == 60
    assert report["concurrency"] == 3
    assert report["calls_per_second"] > 0
    assert report["layers"]["landlock"]
    assert report["suggested_timeout"]["floor_seconds"] == 1.0
    assert report["suggested_timeout"]["safety_factor"] == 3.0


def test_every_outcome_is_listed(tmp_path: Path) -> None:
    _, report = hookjail_json("bench", "--config", write_config(tmp_path, ECHO_HOOK), "-n", "5")
    assert {"ok", "timeout", "limit", "crashed", "raised", "invalid", "refused"} <= set(report["outcomes"])


def test_failing_hook_shows_in_outcome_counts(tmp_path: Path) -> None:
    config = write_config(tmp_path, RAISING_HOOK)
    code, report = hookjail_json("bench", "--config", config, "-n", "20", "--concurrency", "4")
    assert code == 1
    check_figures(report, 20)
    assert report["outcomes"]["raised"] == 20
    assert report["outcomes"]["ok"] == 0
    assert "not in the HR directory" in report["errors"]["raised"]


def test_mixed_outcomes_add_up(tmp_path: Path) -> None:
    code, report = hookjail_json("bench", "--config", write_config(tmp_path, FLAKY_HOOK), "-n", "40")
    check_figures(report, 40)
    assert report["outcomes"]["ok"] + report["outcomes"]["raised"] == 40
    assert code == (0 if report["outcomes"]["raised"] == 0 else 1)


def test_timeouts_are_counted_and_flagged(tmp_path: Path) -> None:
    config = write_config(tmp_path, SLEEPING_HOOK)
    code, report = hookjail_json("bench", "--config", config, "-n", "4", "--concurrency", "2", "--hook-timeout", "0.3")
    assert code == 1
    check_figures(report, 4)
    assert report["outcomes"]["timeout"] == 4
    assert report["current_timeout"] == 0.3
    assert "hit the current timeout" in report["suggested_timeout"]["reasoning"]


def test_floor_and_safety_factor_flags(tmp_path: Path) -> None:
    config = write_config(tmp_path, ECHO_HOOK)
    code, report = hookjail_json(
        "bench", "--config", config, "-n", "10", "--timeout-floor", "2.5", "--safety-factor", "2"
    )
    assert code == 0
    check_figures(report, 10)
    assert report["suggested_timeout"]["floor_seconds"] == 2.5
    assert report["suggested_timeout"]["safety_factor"] == 2.0
    assert report["suggested_timeout"]["seconds"] >= 2.5


def test_openid_file_is_used(tmp_path: Path) -> None:
    config = write_config(tmp_path, ECHO_HOOK, hook_settings={"policy": {"allowed_roles": ["proxy_admin"]}})
    openid = tmp_path / "openid.json"
    openid.write_text(json.dumps({"id": "dave", "email": "dave@example.com"}))
    code, report = hookjail_json("bench", "--config", config, "-n", "3", "--openid-file", openid)
    assert code == 1
    assert report["outcomes"]["refused"] == 3
    assert "user_role" in report["errors"]["refused"]


def test_text_report_has_percentiles_histogram_and_suggestion(tmp_path: Path) -> None:
    result = hookjail("bench", "--config", write_config(tmp_path, ECHO_HOOK), "-n", "30")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for expected in ("p50", "p90", "p99", "max", "histogram (ms)", "suggested --hook-timeout: 1 ", "ok", "30"):
        assert expected in text, expected
    rows = [line for line in text.splitlines() if line.count("│") == 2]
    assert rows
    assert sum(int(row.rsplit("│", 1)[1]) for row in rows) == 30
    assert result.stderr == ""  # not a terminal: no progress bar


def test_import_error_is_reported(tmp_path: Path) -> None:
    code, report = hookjail_json("bench", "--config", write_config(tmp_path, "import nowhere_to_be_found\n"))
    assert code == 1
    assert report["error"].startswith("import_error")
    assert report["latency_ms"] is None


def test_progress_bar_goes_to_a_terminal_and_json_stays_clean(tmp_path: Path) -> None:
    config = write_config(tmp_path, ECHO_HOOK)
    code, out, drawn = hookjail_on_a_terminal("bench", "--config", config, "-n", "40", "--json")
    assert code == 0
    report = json.loads(out)
    check_figures(report, 40)
    assert b"40/40" in drawn
    assert b"\r" in drawn


def test_no_progress_flag_keeps_the_terminal_quiet(tmp_path: Path) -> None:
    config = write_config(tmp_path, ECHO_HOOK)
    code, out, drawn = hookjail_on_a_terminal("bench", "--config", config, "-n", "5", "--json", "--no-progress")
    assert code == 0
    assert json.loads(out)["calls"] == 5
    assert b"/5" not in drawn


# --- the arithmetic -------------------------------------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)


def test_histogram_counts_every_value_once() -> None:
    values = [1.0, 1.1, 1.2, 2.0, 3.5, 9.0, 40.0, 40.0]
    buckets = histogram(values, bins=6)
    assert len(buckets) == 6
    assert sum(b.count for b in buckets) == len(values)
    assert buckets[0].low_ms == 1.0
    assert buckets[-1].high_ms == 40.0
    assert all(a.high_ms == b.low_ms for a, b in itertools.pairwise(buckets))


def test_histogram_of_equal_values_is_one_row() -> None:
    assert [b.count for b in histogram([3.0, 3.0, 3.0])] == [3]


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0.031, 0.1), (0.1, 0.1), (1.0, 1.0), (1.01, 1.5), (1.5, 1.5), (9.9, 10.0), (12.2, 13.0), (61.0, 65.0)],
)
def test_timeouts_round_up_to_steps_people_write(seconds: float, expected: float) -> None:
    assert round_up_timeout(seconds) == expected


def test_fast_hook_gets_the_floor() -> None:
    suggestion = suggest_timeout(0.004, safety_factor=3, floor=1.0, current=5.0, calls=500)
    assert suggestion.seconds == 1.0
    assert "below the floor" in suggestion.reasoning[0]


def test_slow_hook_gets_p99_times_the_factor_rounded_up() -> None:
    suggestion = suggest_timeout(1.73, safety_factor=3, floor=1.0, current=2.0, calls=500)
    assert suggestion.seconds == 5.5
    assert any("shorter" in sentence for sentence in suggestion.reasoning)


def test_hook_errors_are_escaped_in_the_text_report(tmp_path: Path) -> None:
    hook = r"""
def custom_sso_handler(userIDPInfo):
    raise RuntimeError("\x1b[2J\x1b]52;c;ZXZpbA==\x07\noutcome: ok\r\u202e")
"""
    result = hookjail("bench", "--config", write_config(tmp_path, hook), "-n", "2", "--concurrency", "1")
    assert result.returncode == 1, result.stderr
    for raw in ("\x1b", "\x07", "\r", "\u202e"):
        assert raw not in result.stdout, repr(raw)
    assert not any(line.startswith("outcome: ok") for line in result.stdout.splitlines())
    assert "first: RuntimeError: \\x1b[2J\\x1b]52;c;ZXZpbA==\\x07 outcome: ok \\u202e" in result.stdout


DENYING_HOOK = """
from sdk import Deny

def custom_sso_handler(userIDPInfo):
    raise Deny("Your account is not on the allowlist — ask #it-help")
"""


def test_denials_are_counted_apart_with_their_reason(tmp_path: Path) -> None:
    config = write_config(tmp_path, DENYING_HOOK)
    code, report = hookjail_json("bench", "--config", config, "-n", "6", "--concurrency", "2")
    assert code == 1
    check_figures(report, 6)
    assert (report["outcomes"]["denied"], report["outcomes"]["raised"]) == (6, 0)
    assert report["errors"] == {"denied": "Your account is not on the allowlist — ask #it-help"}
    result = hookjail("bench", "--config", config, "-n", "3")
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if line.strip().startswith("denied"))
    assert "first: Your account is not on the allowlist — ask #it-help" in line
