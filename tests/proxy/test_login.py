"""The whole login over HTTP: the real ``hookjail`` process and OpenID provider, with httpx as the browser."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from proxy._sessions import SessionCodec
from tests.proxy.harness import MASTER_KEY, REPO, ProxyFactory, login, new_client, proxy_env, write_config

#: /health's details (the hook, its sandbox layers, its reload errors) are for the master key only.
OPERATOR = {"Authorization": f"Bearer {MASTER_KEY}"}

RAISING_HOOK = """
async def custom_sso_handler(userIDPInfo):
    print("about to fail for", userIDPInfo.id)
    raise RuntimeError("directory lookup failed")
"""

SLEEPING_HOOK = """
import time

def custom_sso_handler(userIDPInfo):
    time.sleep(30)
"""

CRASHING_HOOK = """
import os

def custom_sso_handler(userIDPInfo):
    os.abort()
"""

INVALID_HOOK = """
async def custom_sso_handler(userIDPInfo):
    return {"models": [], "user_id": userIDPInfo.id, "user_email": userIDPInfo.email,
            "user_role": "superuser", "max_budget": 1.0, "budget_duration": "1d"}
"""

NEW_VALUES_HOOK = """
from sdk import LitellmUserRoles, OpenID, SSOUserDefinedValues

async def custom_sso_handler(userIDPInfo: OpenID) -> SSOUserDefinedValues:
    assert userIDPInfo.model_dump()["email"] == userIDPInfo.email
    return SSOUserDefinedValues(
        models=["claude-sonnet"],
        user_id=userIDPInfo.id,
        user_email=userIDPInfo.email,
        user_role=LitellmUserRoles.INTERNAL_USER_VIEW_ONLY.value,
        max_budget=1.5,
        budget_duration="1mo",
    )
"""


def field(response: httpx.Response, name: str) -> str:
    match = re.search(rf'id="{name}">([^<]*)<', response.text)
    assert match is not None, f"no #{name} on {response.url}: {response.text[:800]}"
    return match.group(1)


def run_id_of(response: httpx.Response) -> str:
    return field(response, "run-id")


def token_cookie_set(response: httpx.Response) -> bool:
    return any(
        "token=" in header and "max-age=0" not in header.lower() and 'token=""' not in header
        for r in (*response.history, response)
        for header in r.headers.get_list("set-cookie")
    )


def test_login_maps_email_domain_to_role_and_models(start: ProxyFactory) -> None:
    proxy = start()
    with new_client() as client:
        response = login(client, proxy, "alice@admin.example.com")
        assert response.status_code == 200
        assert response.url.path == "/ui/"
        assert response.url.params["login"] == "success"
        assert field(response, "user-id") == "alice"
        assert field(response, "user-role") == "proxy_admin"
        assert field(response, "user-models") == "gpt-4o, gpt-4o-mini"
        assert field(response, "user-max-budget") == "50"
        assert field(response, "user-budget-duration") == "30d"
    with new_client() as client:
        response = login(client, proxy, "bob@example.com")
        assert field(response, "user-role") == "internal_user"
        assert field(response, "user-models") == "gpt-4o-mini"
    user = proxy.user("alice")
    assert user is not None
    assert (user["email"], user["role"], user["provider"]) == (
        "alice@admin.example.com",
        "proxy_admin",
        "generic",
    )
    runs = proxy.query("SELECT * FROM hook_runs WHERE user_id = 'alice'")
    assert [run["outcome"] for run in runs] == ["ok"]
    assert "hook saw alice@admin.example.com" in runs[0]["stdout"]


def test_session_cookie_is_httponly_lax_and_not_secure_on_http(start: ProxyFactory) -> None:
    proxy = start()
    with new_client() as client:
        response = login(client, proxy, "carol@example.com")
        callback = next(r for r in response.history if r.url.path == "/sso/callback")
        header = next(h for h in callback.headers.get_list("set-cookie") if h.startswith("token="))
        attributes = {part.strip().split("=")[0].lower() for part in header.split(";")}
        assert {"httponly", "max-age", "path", "samesite"} <= attributes
        assert "samesite=lax" in header.lower()
        assert "secure" not in attributes
        assert int(re.search(r"Max-Age=(\d+)", header).group(1)) == 24 * 3600  # type: ignore[union-attr]


def test_changed_hook_applies_on_the_next_login(start: ProxyFactory) -> None:
    proxy = start()
    with new_client() as client:
        assert field(login(client, proxy, "dave@example.com"), "user-role") == "internal_user"
    proxy.write_hook(NEW_VALUES_HOOK)
    with new_client() as client:
        response = login(client, proxy, "dave@example.com")
        assert field(response, "user-role") == "internal_user_viewer"
        assert field(response, "user-models") == "claude-sonnet"
        assert field(response, "user-budget-duration") == "1mo"
    user = proxy.user("dave")
    assert user is not None
    assert (user["role"], user["max_budget"]) == ("internal_user_viewer", 1.5)


def test_hook_that_no_longer_imports_keeps_the_last_good_version(start: ProxyFactory) -> None:
    proxy = start()
    proxy.write_hook("def custom_sso_handler(userIDPInfo):\n    return {\n")
    with new_client() as client:
        assert field(login(client, proxy, "erin@example.com"), "user-role") == "internal_user"
    health = httpx.get(f"{proxy.base_url}/health", headers=OPERATOR).json()
    assert health["status"] == "ok"
    assert "SyntaxError" in health["hook"]["last_reload_error"] or "line" in health["hook"]["last_reload_error"]


def test_raising_hook_shows_run_id_sets_no_cookie_and_keeps_the_user(start: ProxyFactory) -> None:
    proxy = start()
    with new_client() as client:
        login(client, proxy, "frank@example.com")
    before = proxy.user("frank")
    proxy.write_hook(RAISING_HOOK)
    with new_client() as client:
        response = login(client, proxy, "frank@example.com")
        assert response.status_code == 502
        assert "The login hook failed" in response.text
        assert not token_cookie_set(response)
        assert "token" not in client.cookies
    assert proxy.user("frank") == before
    run = proxy.run(run_id_of(response))
    assert run is not None
    assert run["outcome"] == "raised"
    assert "RuntimeError" in run["error"] or "directory lookup failed" in run["error"]
    assert "about to fail for frank" in run["stdout"]
    # the hook's own frames are kept for the operator (the run's console page shows them), never the user
    traceback = json.loads(run["extra"])["traceback"]
    assert 'raise RuntimeError("directory lookup failed")' in traceback
    assert "directory lookup failed" not in response.text and "raise RuntimeError" not in response.text
    assert len(proxy.sessions("frank")) == 1


def test_timing_out_hook_is_a_504_within_the_deadline(start: ProxyFactory) -> None:
    proxy = start(hook_source=SLEEPING_HOOK, hook_settings={"timeout": 1})
    with new_client() as client:
        started = time.monotonic()
        response = login(client, proxy, "grace@example.com")
        assert time.monotonic() - started < 5
        assert response.status_code == 504
        assert not token_cookie_set(response)
    run = proxy.run(run_id_of(response))
    assert run is not None
    assert run["outcome"] == "timeout"
    assert proxy.user("grace") is None


def test_crashing_hook_is_a_502(start: ProxyFactory) -> None:
    proxy = start(hook_source=CRASHING_HOOK)
    with new_client() as client:
        response = login(client, proxy, "heidi@example.com")
    assert response.status_code == 502
    run = proxy.run(run_id_of(response))
    assert run is not None
    assert run["outcome"] == "crashed"
    # the runner replaces what died: the proxy stays healthy
    assert httpx.get(f"{proxy.base_url}/health").status_code == 200


def test_invalid_values_are_a_403_naming_the_field(start: ProxyFactory) -> None:
    proxy = start(hook_source=INVALID_HOOK)
    with new_client() as client:
        response = login(client, proxy, "ivan@example.com")
    assert response.status_code == 403
    assert "(user_role)" in response.text
    run = proxy.run(run_id_of(response))
    assert run is not None
    assert run["outcome"] == "invalid"
    assert "superuser" in run["error"]
    assert proxy.user("ivan") is None


def test_policy_refusal_is_a_403_naming_the_field(start: ProxyFactory) -> None:
    proxy = start(hook_settings={"policy": {"max_budget": 10}})
    with new_client() as client:
        response = login(client, proxy, "judy@admin.example.com")
    assert response.status_code == 403
    assert "(max_budget)" in response.text
    run = proxy.run(run_id_of(response))
    assert run is not None
    assert run["outcome"] == "refused"
    assert proxy.user("judy") is None


def test_admin_only_refuses_a_non_admin(start: ProxyFactory) -> None:
    proxy = start(general_settings={"ui_access_mode": "admin_only"})
    with new_client() as client:
        response = login(client, proxy, "mallory@example.com")
        assert response.status_code == 403
        assert "limited to proxy admins" in response.text
        assert not token_cookie_set(response)
    with new_client() as client:
        assert field(login(client, proxy, "alice@admin.example.com"), "user-role") == "proxy_admin"
    assert proxy.user("mallory") is None


def test_proxy_admin_id_is_always_proxy_admin(start: ProxyFactory) -> None:
    proxy = start(env={"PROXY_ADMIN_ID": "oscar"})
    with new_client() as client:
        assert field(login(client, proxy, "oscar@example.com"), "user-role") == "proxy_admin"


#: A hook limited to viewer roles that claims to be the proxy admin for mallory, and moves eve's email to
#: another domain; everyone else gets their own id.
IMPERSONATING_HOOK = """
async def custom_sso_handler(userIDPInfo):
    user_id, email = userIDPInfo.id, userIDPInfo.email
    if user_id == "mallory":
        user_id = "oscar"
    if user_id == "eve":
        email = "eve@evil.org"
    return {"models": [], "user_id": user_id, "user_email": email, "user_role": "internal_user_viewer",
            "max_budget": 1.0, "budget_duration": "1d"}
"""


def test_a_viewer_limited_hook_cannot_log_anyone_in_as_proxy_admin_id(start: ProxyFactory) -> None:
    proxy = start(
        hook_source=IMPERSONATING_HOOK,
        hook_settings={"policy": {"allowed_roles": ["internal_user_viewer"]}},
        general_settings={"ui_access_mode": "admin_only"},
        env={"PROXY_ADMIN_ID": "oscar"},
    )
    with new_client() as client:
        response = login(client, proxy, "mallory@example.com")
        assert response.status_code == 403
        assert "(user_id)" in response.text
        assert not token_cookie_set(response)
    run = proxy.run(run_id_of(response))
    assert run is not None
    assert (run["outcome"], run["subject"], run["user_id"]) == ("refused", "mallory", None)
    assert "PROXY_ADMIN_ID" in run["error"]
    # nothing was written for the admin, nor for mallory
    assert proxy.user("oscar") is None
    assert proxy.user("mallory") is None
    assert proxy.query("SELECT * FROM ui_sessions") == []
    assert proxy.query("SELECT * FROM hook_runs WHERE user_id = 'oscar'") == []
    # admin_only still refuses a non-admin the hook leaves alone
    with new_client() as client:
        response = login(client, proxy, "bob@example.com")
        assert response.status_code == 403
        assert "limited to proxy admins" in response.text
    assert proxy.user("bob") is None
    # the identity provider's admin is proxy_admin, although the policy allows the hook viewer roles only
    with new_client() as client:
        response = login(client, proxy, "oscar@example.com")
        assert field(response, "user-id") == "oscar"
        assert field(response, "user-role") == "proxy_admin"
    user = proxy.user("oscar")
    assert user is not None
    assert user["role"] == "proxy_admin"
    assert len(proxy.sessions("oscar")) == 1


def test_the_hooks_email_cannot_leave_allowed_email_domains(start: ProxyFactory) -> None:
    proxy = start(hook_source=IMPERSONATING_HOOK, env={"ALLOWED_EMAIL_DOMAINS": "example.com"})
    with new_client() as client:
        response = login(client, proxy, "eve@example.com")
        assert response.status_code == 403
        assert "(user_email)" in response.text
    assert proxy.user("eve") is None
    with new_client() as client:
        assert field(login(client, proxy, "bob@example.com"), "user-id") == "bob"


LOG_FORGING_HOOK = """
def custom_sso_handler(userIDPInfo):
    print("\\x1b[2J" * 3 + "printed" + "y" * 100_000)
    raise RuntimeError("boom\\nINFO:     hookjail.login: forged line\\x1b[2J" + "x" * 10_000)
"""


def test_a_hook_cannot_forge_log_lines_and_its_text_is_bounded(start: ProxyFactory) -> None:
    proxy = start(hook_source=LOG_FORGING_HOOK)
    with new_client() as client:
        response = login(client, proxy, "walt@example.com")
    assert response.status_code == 502
    log = proxy.log()
    assert "boom\\nINFO:     hookjail.login: forged line" in log
    assert not any(line.startswith("INFO:     hookjail.login: forged") for line in log.splitlines())
    assert "\x1b" not in log
    run = proxy.run(run_id_of(response))
    assert run is not None
    assert run["error"].startswith("RuntimeError: boom\nINFO:")
    assert len(run["error"]) <= 2000
    assert len(run["stdout"]) <= 64 * 1024


def test_allowed_email_domains_refuse_other_domains(start: ProxyFactory) -> None:
    proxy = start(env={"ALLOWED_EMAIL_DOMAINS": "admin.example.com"})
    with new_client() as client:
        response = login(client, proxy, "peggy@example.com")
        assert response.status_code == 403
        assert "email domain" in response.text
    with new_client() as client:
        assert login(client, proxy, "alice@admin.example.com").status_code == 200
    assert proxy.query("SELECT * FROM hook_runs WHERE subject = 'peggy'") == []


def test_on_failure_idp_defaults_logs_in_with_litellm_defaults(start: ProxyFactory) -> None:
    proxy = start(hook_source=RAISING_HOOK, hook_settings={"on_failure": "idp_defaults"})
    with new_client() as client:
        response = login(client, proxy, "rupert@example.com")
        assert response.status_code == 200
        assert field(response, "user-role") == "internal_user_viewer"
        assert field(response, "user-models") == "none"
    runs = proxy.query("SELECT * FROM hook_runs WHERE subject = 'rupert'")
    assert [(r["outcome"], r["fallback"]) for r in runs] == [("raised", "idp_defaults")]
    assert "directory lookup failed" in runs[0]["error"]


def test_logout_revokes_the_session(start: ProxyFactory) -> None:
    proxy = start()
    with new_client() as client:
        login(client, proxy, "sybil@example.com")
        stolen = client.cookies["token"]
        assert client.get(f"{proxy.base_url}/ui/logout").status_code == 200
        response = client.post(f"{proxy.base_url}/ui/logout", follow_redirects=True)
        assert 'id="logged-out"' in response.text
        assert 'id="login"' in response.text
        assert "token" not in client.cookies
    assert proxy.sessions("sybil") == []
    replay = httpx.get(f"{proxy.base_url}/ui/", cookies={"token": stolen})
    assert 'id="user-id"' not in replay.text


def test_tampered_expired_and_revoked_cookies_are_rejected(start: ProxyFactory) -> None:
    proxy = start()
    with new_client() as client:
        login(client, proxy, "trent@example.com")
        token = client.cookies["token"]
    ui = f"{proxy.base_url}/ui/"
    assert 'id="user-id"' in httpx.get(ui, cookies={"token": token}).text
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}AAAA"
    assert 'id="user-id"' not in httpx.get(ui, cookies={"token": tampered}).text
    session_id = proxy.sessions("trent")[0]["id"]
    expired, _ = SessionCodec(MASTER_KEY, timedelta(minutes=1)).issue(
        session_id=session_id, user_id="trent", now=datetime.now(UTC) - timedelta(hours=1)
    )
    assert 'id="user-id"' not in httpx.get(ui, cookies={"token": expired}).text
    proxy.query("DELETE FROM ui_sessions WHERE id = ?", session_id)
    response = httpx.get(ui, cookies={"token": token})
    assert 'id="user-id"' not in response.text
    assert "token=" in response.headers.get("set-cookie", "")  # the dead cookie is cleared


def test_denied_consent_is_a_401(start: ProxyFactory) -> None:
    proxy = start()
    with new_client() as client:
        response = login(client, proxy, "victor@example.com", abort=True)
    assert response.status_code == 401
    assert "access_denied" in response.text


def test_forged_state_is_a_401(start: ProxyFactory) -> None:
    proxy = start()
    with new_client() as client:
        client.get(f"{proxy.base_url}/sso/key/generate")
        response = client.get(f"{proxy.base_url}/sso/callback", params={"code": "forged", "state": "forged"})
    assert response.status_code == 401


def test_wrong_client_secret_is_a_401_not_a_500(start: ProxyFactory) -> None:
    proxy = start(env={"GENERIC_CLIENT_SECRET": "wrongSecret0"})
    with new_client() as client:
        response = login(client, proxy, "walter@example.com")
    assert response.status_code == 401
    assert "Sign-in with the identity provider failed" in response.text


def test_explicit_generic_endpoints_work_without_discovery(start: ProxyFactory) -> None:
    proxy = start(
        env={
            "GENERIC_DISCOVERY_URL": "",
            "GENERIC_AUTHORIZATION_ENDPOINT": f"{start.idp.issuer}/auth",
            "GENERIC_TOKEN_ENDPOINT": f"{start.idp.issuer}/token",
            "GENERIC_USERINFO_ENDPOINT": f"{start.idp.issuer}/me",
            "GENERIC_USER_ID_ATTRIBUTE": "email",
            "GENERIC_CLIENT_USE_PKCE": "false",
        }
    )
    with new_client() as client:
        assert field(login(client, proxy, "xena@example.com"), "user-id") == "xena@example.com"


def test_health_reports_the_runner(start: ProxyFactory) -> None:
    proxy = start()
    health = httpx.get(f"{proxy.base_url}/health", headers=OPERATOR).json()
    assert health["status"] == "ok"
    assert health["database"] == "ok"
    assert health["hook"]["healthy"] is True
    assert health["hook"]["handler"] == "custom_sso.custom_sso_handler"
    assert health["hook"]["layers"]


def test_hook_import_failure_is_a_clear_startup_error(start: ProxyFactory) -> None:
    directory = start.base / "broken"
    write_config(directory, hook_source="def custom_sso_handler(:\n")
    result = subprocess.run(  # noqa: PLW1510 (the exit code is the subject)
        [
            sys.executable,
            "-m",
            "proxy",
            "--config",
            str(directory / "config.yaml"),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ],
        env=proxy_env(start.idp),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "hookjail: cannot start: general_settings.custom_sso" in result.stderr


def test_example_config_serves_a_login(start: ProxyFactory, tmp_path: Path) -> None:
    proxy = start.serve(REPO / "examples" / "config.yaml", work_dir=tmp_path)
    assert "ignoring LiteLLM settings hookjail does not use: model_list[].litellm_params" in proxy.log()
    with new_client() as client:
        response = login(client, proxy, "root@admin.example.com")
        assert field(response, "user-role") == "proxy_admin"
        assert field(response, "user-models") == "gpt-4o, gpt-4o-mini, claude-sonnet"
    with new_client() as client:
        response = login(client, proxy, "quinn@example.com")
        assert field(response, "user-role") == "internal_user"
    assert not (REPO / "examples" / "hookjail.db").exists()


def test_without_custom_sso_logins_get_litellm_defaults(start: ProxyFactory) -> None:
    proxy = start(hook_source=None)
    assert httpx.get(f"{proxy.base_url}/health", headers=OPERATOR).json()["hook"] is None
    with new_client() as client:
        response = login(client, proxy, "yara@example.com")
        assert field(response, "user-role") == "internal_user_viewer"
        assert field(response, "user-models") == "none"


def test_hook_timeout_flag_wins_over_the_config(start: ProxyFactory) -> None:
    proxy = start(hook_source=SLEEPING_HOOK, hook_settings={"timeout": 60}, extra_args=("--hook-timeout", "0.5"))
    with new_client() as client:
        started = time.monotonic()
        response = login(client, proxy, "zed@example.com")
    assert response.status_code == 504
    assert time.monotonic() - started < 5


def test_concurrent_logins_each_get_their_own_values(start: ProxyFactory) -> None:
    proxy = start()
    users = ["ann@example.com", "ben@admin.example.com", "cat@example.com", "dan@admin.example.com", "eve@x.org"]

    def sign_in(user: str) -> str:
        with new_client() as client:
            return field(login(client, proxy, user), "user-role")

    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        roles = list(pool.map(sign_in, users))
    assert roles == ["internal_user", "proxy_admin", "internal_user", "proxy_admin", "internal_user_viewer"]
    assert len(proxy.query("SELECT * FROM ui_sessions")) == len(users)
