"""``hookjail replay``: a candidate run on the logins a real proxy recorded (real logins through the test IdP,
``hook_settings.record_inputs: true``), compared with what the live hook decided; its exit codes, the table,
``--json``, ``--openids``, a kept version named by its sha256, and the errors."""

from __future__ import annotations

import hashlib
import json
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli.helpers import hookjail, hookjail_on_a_terminal
from tests.idp.provider import IdP, PortPool, idp, proxy_ports
from tests.proxy.harness import DOMAIN_HOOK, login, new_client, proxy_env, start_proxy, write_config

__all__ = ("idp", "proxy_ports")  # the fixtures, used by name

#: The live hook's decisions, as a refactoring that changes nothing (only its text differs).
SAME_HOOK = DOMAIN_HOOK + "\n# refactored: same decisions\n"

#: Demotes example.com users to viewers: a role change for alice, nothing for the others.
DEMOTING_HOOK = DOMAIN_HOOK.replace(
    '"example.com": (LitellmUserRoles.INTERNAL_USER,', '"example.com": (LitellmUserRoles.INTERNAL_USER_VIEW_ONLY,'
)

#: Fails for carol, whom the live hook logged in.
RAISING_FOR_CAROL = DOMAIN_HOOK.replace(
    "async def custom_sso_handler(userIDPInfo: OpenID) -> SSOUserDefinedValues:\n",
    "async def custom_sso_handler(userIDPInfo: OpenID) -> SSOUserDefinedValues:\n"
    "    if userIDPInfo.id == 'carol':\n"
    "        raise LookupError('carol is not in the HR directory')\n",
)

SUMMARY_KEYS = {
    "candidate",
    "candidate_sha256",
    "source",
    "openids",
    "inputs",
    "changed",
    "breaks",
    "outcomes",
    "exit_code",
}
CHANGE_KEYS = {"run_id", "line", "subject", "live_outcome", "candidate_outcome", "breaks", "diff", "candidate_error"}


@dataclass(frozen=True)
class Recorded:
    """A config whose database holds three real logins (alice, boss, carol, in that order) with their inputs."""

    config: Path
    database: Path
    #: run id by user id
    runs: dict[str, str]
    #: the sha256 of the demoting hook, kept by the proxy as its candidate and since deleted from disk
    kept_sha256: str


@pytest.fixture(scope="module")
def recorded(idp: IdP, proxy_ports: PortPool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    directory = tmp_path_factory.mktemp("replay")
    (directory / "custom_sso_next.py").write_text(textwrap.dedent(DEMOTING_HOOK))
    config = write_config(
        directory,
        hook_settings={"record_inputs": True, "candidate": "custom_sso_next.custom_sso_handler"},
    )
    port = proxy_ports.take()
    proxy = start_proxy(config, port, proxy_env(idp))
    try:
        for user in ("alice@example.com", "boss@admin.example.com", "carol@other.example.net"):
            with new_client() as client:
                assert login(client, proxy, user).status_code == 200, proxy.log()
        runs = {row["user_id"]: row["run_id"] for row in proxy.query("SELECT run_id, user_id FROM hook_runs")}
        assert len(proxy.query("SELECT run_id FROM login_inputs")) == 3
    finally:
        proxy.stop()
        proxy_ports.give_back(port)
    # the candidate is gone from disk and from the config: only its kept version remains
    kept = hashlib.sha256((directory / "custom_sso_next.py").read_bytes()).hexdigest()
    (directory / "custom_sso_next.py").unlink()
    settings = yaml.safe_load(config.read_text())
    del settings["hook_settings"]["candidate"]
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
    yield Recorded(config=config, database=proxy.db_path, runs=runs, kept_sha256=kept)


def candidate_file(tmp_path: Path, source: str, name: str = "candidate.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def replay(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return hookjail("replay", *args)


def replay_json(*args: str | Path) -> tuple[int, dict[str, Any]]:
    result = replay(*args, "--json")
    assert result.stdout, result.stderr
    report = json.loads(result.stdout)
    assert isinstance(report, dict)
    return result.returncode, report


def test_a_candidate_that_agrees_exits_0(recorded: Recorded, tmp_path: Path) -> None:
    candidate = candidate_file(tmp_path, SAME_HOOK)
    result = replay("--config", recorded.config, "--candidate", f"{candidate}:custom_sso_handler")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "replayed 3 recorded logins" in result.stdout
    assert "would change:" not in result.stdout
    assert "exit 0: no login would change" in result.stdout
    ok_row = next(line for line in result.stdout.splitlines() if line.split()[:1] == ["ok"])
    assert ok_row.split() == ["ok", "3", "3"]
    assert result.stderr == ""  # not a terminal: no progress bar


def test_a_role_change_exits_1_and_the_table_names_user_role(recorded: Recorded, tmp_path: Path) -> None:
    candidate = candidate_file(tmp_path, DEMOTING_HOOK)
    result = replay("--config", recorded.config, "--candidate", candidate)  # the live hook's function by default
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "1 of 3 logins would change:" in out
    row = next(line for line in out.splitlines() if recorded.runs["alice"] in line)
    assert "alice" in row
    assert "user_role:" in row
    assert '"internal_user"' in row
    assert '"internal_user_viewer"' in row
    assert recorded.runs["boss"] not in out
    assert recorded.runs["carol"] not in out
    assert "exit 1:" in out


def test_a_candidate_failing_a_logged_in_user_exits_2(recorded: Recorded, tmp_path: Path) -> None:
    candidate = candidate_file(tmp_path, RAISING_FOR_CAROL)
    result = replay("--config", recorded.config, "--candidate", f"{candidate}:custom_sso_handler")
    assert result.returncode == 2, result.stdout + result.stderr
    row = next(line for line in result.stdout.splitlines() if recorded.runs["carol"] in line)
    assert "raised" in row.split("error:")[0]
    assert "carol is not in the HR directory" in row
    assert "exit 2:" in result.stdout


def test_json_has_a_summary_and_the_changes(recorded: Recorded, tmp_path: Path) -> None:
    candidate = candidate_file(tmp_path, RAISING_FOR_CAROL)
    code, report = replay_json("--config", recorded.config, "--candidate", f"{candidate}:custom_sso_handler")
    assert code == 2
    assert set(report) == {"summary", "changes"}
    summary = report["summary"]
    assert set(summary) == SUMMARY_KEYS
    assert (summary["source"], summary["openids"], summary["inputs"]) == ("recorded", None, 3)
    assert summary["changed"] == summary["breaks"] == 1
    assert summary["exit_code"] == 2
    assert summary["outcomes"] == {"live": {"ok": 3}, "candidate": {"ok": 2, "raised": 1}}
    assert summary["candidate_sha256"] == hashlib.sha256(candidate.read_bytes()).hexdigest()
    [change] = report["changes"]
    assert set(change) == CHANGE_KEYS
    assert change["run_id"] == recorded.runs["carol"]
    assert change["line"] is None
    assert change["subject"] == "carol"
    assert (change["live_outcome"], change["candidate_outcome"], change["breaks"]) == ("ok", "raised", True)
    assert change["diff"] == {"outcome": {"live": "ok", "candidate": "raised"}}
    assert "carol is not in the HR directory" in change["candidate_error"]


def test_last_takes_the_newest_logins(recorded: Recorded, tmp_path: Path) -> None:
    candidate = candidate_file(tmp_path, DEMOTING_HOOK)
    code, report = replay_json("--config", recorded.config, "--candidate", candidate, "--last", "2")
    assert code == 0, report  # carol and boss, the newest two: alice (whom it demotes) is not among them
    assert report["summary"]["inputs"] == 2
    assert report["changes"] == []


def test_openids_file_is_compared_with_the_live_hook_run_on_each(recorded: Recorded, tmp_path: Path) -> None:
    candidate = candidate_file(tmp_path, DEMOTING_HOOK)
    openids = tmp_path / "openids.jsonl"
    lines = [
        {"id": "dave", "email": "dave@example.com", "provider": "generic"},
        {"id": "erin", "email": "erin@elsewhere.org"},
    ]
    openids.write_text(json.dumps(lines[0]) + "\n\n" + json.dumps(lines[1]) + "\n")
    code, report = replay_json(
        "--config", recorded.config, "--candidate", f"{candidate}:custom_sso_handler", "--openids", openids
    )
    assert code == 1, report
    assert report["summary"]["inputs"] == 2
    assert (report["summary"]["source"], report["summary"]["openids"]) == ("openids", str(openids))
    assert report["summary"]["outcomes"]["live"] == {"ok": 2}
    [change] = report["changes"]
    assert (change["line"], change["run_id"], change["subject"]) == (1, None, "dave")
    assert change["diff"] == {"user_role": {"live": "internal_user", "candidate": "internal_user_viewer"}}


def test_candidate_by_kept_sha256_prefix(recorded: Recorded) -> None:
    prefix = recorded.kept_sha256[:10]
    code, report = replay_json("--config", recorded.config, "--candidate", prefix)
    assert code == 1, report
    assert report["summary"]["candidate_sha256"] == recorded.kept_sha256  # rebuilt byte for byte
    assert report["summary"]["candidate"] == f"sha256:{recorded.kept_sha256[:12]}:custom_sso_handler"
    [change] = report["changes"]
    assert change["run_id"] == recorded.runs["alice"]
    assert set(change["diff"]) == {"user_role"}


def test_a_candidate_that_does_not_import_is_a_clear_error(recorded: Recorded, tmp_path: Path) -> None:
    candidate = candidate_file(tmp_path, "import no_such_module_for_replay\n", name="broken.py")
    result = replay("--config", recorded.config, "--candidate", f"{candidate}:custom_sso_handler")
    assert result.returncode == 4, result.stdout + result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"hookjail replay: the candidate {candidate}:custom_sso_handler cannot be used:")
    assert "no_such_module_for_replay" in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--candidate", "deadbeef00"], "no kept hook version whose sha256 starts with deadbeef00"),
        (["--candidate", "/nowhere/candidate.py:handler"], "no file /nowhere/candidate.py"),
        (["--candidate", "x.py:not-a-name"], "expected PATH.py:FUNCTION"),
        (["--candidate", "x.py", "--last", "0"], "--last: must be a positive integer"),
        (["--candidate", "x.py", "--last", "3", "--openids", "f"], "not allowed with argument"),
        (["--candidate", "x.py", "--database-url", "sqlite:////nowhere/h.db"], "no SQLite file /nowhere/h.db"),
    ],
)
def test_bad_arguments_exit_3_naming_the_problem(recorded: Recorded, args: list[str], expected: str) -> None:
    result = replay("--config", recorded.config, *args)
    assert result.returncode == 3, result.stdout + result.stderr
    assert expected in result.stderr
    assert result.stdout == ""


def test_a_bad_openids_line_exits_3_naming_the_line(recorded: Recorded, tmp_path: Path) -> None:
    openids = tmp_path / "openids.jsonl"
    openids.write_text('{"id": "dave", "email": "dave@example.com"}\n["not", "an", "object"]\n')
    result = replay("--config", recorded.config, "--candidate", "x.py:handler", "--openids", openids)
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stderr == f"hookjail replay: --openids {openids} line 2: expected a JSON object, got list\n"


def test_bad_config_exits_3(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("hook_setings: {}\n")
    result = replay("--config", config, "--candidate", "x.py:handler")
    assert result.returncode == 3
    assert "hook_setings" in result.stderr


def test_help_lists_the_exit_codes() -> None:
    result = replay("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: hookjail replay")
    for code in (
        "0  no replayed login",
        "1  values would change",
        "2  a login that succeeded",
        "3  usage",
        "4  a hook",
    ):
        assert code in result.stdout


def test_progress_bar_goes_to_a_terminal_and_json_stays_clean(recorded: Recorded, tmp_path: Path) -> None:
    candidate = candidate_file(tmp_path, SAME_HOOK)
    code, out, drawn = hookjail_on_a_terminal(
        "replay", "--config", recorded.config, "--json", "--candidate", f"{candidate}:custom_sso_handler"
    )
    assert code == 0
    assert json.loads(out)["summary"]["inputs"] == 3
    assert b"3/3" in drawn
    assert b"\r" in drawn
