"""``hookjail demo``: one command, no environment, and a full login through the embedded development provider."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy._demo import claims_for, find_example_config
from proxy._errors import ConfigError
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
