"""``hookjail demo``: one command, no environment, and a full login through the embedded development provider."""

from __future__ import annotations

import hashlib
import html
import json
import re
import shlex
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from proxy._errors import ConfigError
from proxy.cli._demo import claims_for, find_example_config, master_key_lines
from tests.cli.demo import Demo, dashboard_values, run_demo, sign_in
from tests.cli.helpers import REPO, free_port, hookjail


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with run_demo(tmp_path_factory.mktemp("demo")) as running:
        yield running


def test_typed_name_lands_on_the_dashboard_with_the_hooks_values(demo: Demo) -> None:
    response = sign_in(demo, "Carol Jones")
    assert response.status_code == 200, response.text
    assert response.url.path == "/ui/"
    assert "Login successful" in response.text
    assert dashboard_values(response.text) == {
        "id": "Carol Jones",
        "email": "carol.jones@example.com",
        "role": "internal_user",  # examples/custom_sso.py: example.com -> internal_user, gpt-4o-mini, 10
        "models": "gpt-4o-mini",
        "max-budget": "10",
        "budget-duration": "30d",
    }


def test_typed_admin_email_gets_the_admin_values(demo: Demo) -> None:
    response = sign_in(demo, "boss@admin.example.com")
    assert response.url.path == "/ui/"
    values = dashboard_values(response.text)
    assert values["id"] == "boss@admin.example.com"
    assert values["role"] == "proxy_admin"
    assert values["models"] == "gpt-4o, gpt-4o-mini, claude-sonnet"
    assert values["max-budget"] == "100"


def test_other_domains_get_the_hooks_default(demo: Demo) -> None:
    values = dashboard_values(sign_in(demo, "eve@elsewhere.org").text)
    assert values["role"] == "internal_user_viewer"
    assert values["models"] == "none"


def test_instructions_say_development_only_and_what_was_started(demo: Demo) -> None:
    banner = demo.banner
    assert "FOR DEVELOPMENT ONLY" in banner
    assert f"Open {demo.url}" in banner
    assert "Log in with SSO" in banner
    assert "oidc-provider-mock" in banner
    assert str(REPO / "examples" / "config.yaml") in banner  # found from the package, not the working directory
    assert "temporary" in banner
    assert demo.database.name == "demo.db"
    assert demo.database.exists()


def test_stopping_removes_the_temporary_database(tmp_path: Path) -> None:
    with run_demo(tmp_path) as running:
        database = running.database
        assert database.exists()
        code = running.stop()
    assert code == 0, running.log()
    assert not database.parent.exists()


def test_sso_settings_in_the_environment_do_not_matter(tmp_path: Path) -> None:
    unrelated = {
        "GOOGLE_CLIENT_ID": "someone-elses",
        "GOOGLE_CLIENT_SECRET": "x",
        "GENERIC_DISCOVERY_URL": "http://192.0.2.1/nowhere",
        "LITELLM_MASTER_KEY": "sk-from-the-shell",
    }
    with run_demo(tmp_path, env=unrelated) as running:
        values = dashboard_values(sign_in(running, "frank@example.com").text)
    assert values["role"] == "internal_user"


def test_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = hookjail("demo", "--port", str(port), timeout=60)
    assert result.returncode == 2
    assert f"--port {port}" in result.stderr
    assert result.stdout == ""


def test_missing_config_is_a_clear_error(tmp_path: Path) -> None:
    result = hookjail("demo", "--port", str(free_port()), "--config", tmp_path / "nope.yaml", timeout=60)
    assert result.returncode == 2
    assert "--config" in result.stderr


def test_examples_are_found_in_the_checkout(tmp_path: Path) -> None:
    assert find_example_config(None, tmp_path) == REPO / "examples" / "config.yaml"


def test_examples_are_found_in_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "config.yaml").write_text("{}\n")
    found = find_example_config(None, tmp_path, checkout=tmp_path / "site-packages")
    assert found == tmp_path / "examples" / "config.yaml"


def test_no_examples_anywhere_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"git checkout.*--config"):
        find_example_config(None, tmp_path, checkout=tmp_path / "site-packages")


@pytest.mark.parametrize(
    ("typed", "email", "name"),
    [
        ("alice@example.com", "alice@example.com", "Alice"),
        ("Bob.Smith@Example.com", "bob.smith@example.com", "Bob Smith"),
        ("Carol Jones", "carol.jones@example.com", "Carol Jones"),
        ("dan", "dan@example.com", "Dan"),
        ("!!!", "user@example.com", "!!!"),
    ],
)
def test_typed_subs_become_usable_claims(typed: str, email: str, name: str) -> None:
    claims = claims_for(typed)
    assert claims["email"] == email
    assert claims["name"] == name
    assert claims["email_verified"] is True


# --- which hook decided, and looking its run up -----------------------------------------------------------------


def hook_values(page: str) -> dict[str, str]:
    """The dashboard's facts about the hook run (``<dd id="hook-...">`` and ``<dd id="run-id">``)."""
    pattern = r'<dd id="(hook-[a-z0-9-]+|run-id)"[^>]*>([^<]*)</dd>'
    return {name: html.unescape(value) for name, value in re.findall(pattern, page)}


def session_cookie(response: httpx.Response) -> str:
    """The session cookie the login's callback set (``sign_in`` followed its redirects)."""
    for step in (*response.history, response):
        if "token" in step.cookies:
            return step.cookies["token"]
    raise AssertionError("no session cookie was set")


def test_dashboard_says_which_hook_decided_and_its_run(demo: Demo) -> None:
    response = sign_in(demo, "alice@example.com")
    assert response.url.path == "/ui/"
    facts = hook_values(response.text)
    assert facts["hook-file"] == "custom_sso.py"
    source = (REPO / "examples" / "custom_sso.py").read_bytes()
    assert facts["hook-sha256"] == hashlib.sha256(source).hexdigest()[:12]
    assert float(facts["hook-duration-ms"]) > 0
    assert re.fullmatch(r"[0-9a-f]{16}", facts["run-id"]), facts
    assert 'id="hook-decided"' in response.text
    assert 'id="run-link"' not in response.text  # not an admin
    # ... and a non-admin's session does not read runs
    cookie = {"token": session_cookie(response)}
    looked_up = httpx.get(urljoin(demo.url, f"/hook/runs/{facts['run-id']}"), cookies=cookie, timeout=30)
    assert looked_up.status_code == 401


def test_banner_prints_the_master_key_and_a_curl_line_that_looks_a_run_up(demo: Demo) -> None:
    key = re.search(r"^\s*master key\s+(sk-\S+)", demo.banner, re.MULTILINE)
    assert key, demo.banner
    line = re.search(r"^\s*look up a run\s+(curl .*)$", demo.banner, re.MULTILINE)
    assert line, demo.banner
    run_id = hook_values(sign_in(demo, "Grace Hopper").text)["run-id"]
    command = shlex.split(line.group(1).replace("<run_id>", run_id))
    assert command[:3] == ["curl", "-H", f"Authorization: Bearer {key.group(1)}"]
    assert command[3] == urljoin(demo.url, f"/hook/runs/{run_id}")
    curl = shutil.which("curl")
    if curl is not None:
        result = subprocess.run([curl, "-sS", *command[1:]], capture_output=True, text=True, timeout=30, check=True)
        record = json.loads(result.stdout)
    else:  # the same request without curl
        record = httpx.get(command[3], headers={"Authorization": command[2].partition(": ")[2]}, timeout=30).json()
    assert record["run_id"] == run_id
    assert record["outcome"] == "ok"
    assert record["user_id"] == "Grace Hopper"
    assert record["stdout"].startswith("inside custom sso handler")


def test_an_admins_dashboard_links_the_run_and_the_session_opens_it(demo: Demo) -> None:
    response = sign_in(demo, "boss@admin.example.com")
    link = re.search(r'<a id="run-link" href="([^"]+)"', response.text)
    assert link, response.text
    run_id = hook_values(response.text)["run-id"]
    assert link.group(1) == f"/hook/runs/{run_id}"
    opened = httpx.get(urljoin(demo.url, link.group(1)), cookies={"token": session_cookie(response)}, timeout=30)
    assert opened.status_code == 200, opened.text
    assert opened.json()["run_id"] == run_id
    assert opened.json()["user_id"] == "boss@admin.example.com"
    anonymous = httpx.get(urljoin(demo.url, link.group(1)), timeout=30)
    assert anonymous.status_code == 401


def test_a_master_key_the_demo_did_not_make_is_not_printed() -> None:
    lines = "\n".join(master_key_lines("http://127.0.0.1:4000/", "sk-operators-own", generated=False))
    assert "sk-operators-own" not in lines
    assert "curl -H 'Authorization: Bearer <master_key>' http://127.0.0.1:4000/hook/runs/<run_id>" in lines
