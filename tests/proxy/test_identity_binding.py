"""Who may become a stored user: the identity provider's ``email_verified`` and the binding of each user to the
provider account (issuer and ``sub``) that first signed in as it.

Through real HTTP with the real ``hookjail`` process and the real OpenID provider (tests/idp: a login
``"name;claim=value"`` overrides that account's claims; its ``sub`` is the whole login), plus the store and the
migration in-process.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine

from proxy._db import Database, IdentityMismatch, LoginRecord, RunRecord, normalize_url, utcnow
from proxy._db._store import MIGRATIONS
from tests.idp.provider import IdP
from tests.proxy.harness import MASTER_KEY, ProxyFactory, login, new_client
from tests.proxy.inprocess import login_record

VERIFIED_HOOK = """
from sdk import OpenID, SSOUserDefinedValues

def custom_sso_handler(userIDPInfo: OpenID) -> SSOUserDefinedValues:
    verified = userIDPInfo.email_verified
    print("email_verified", type(verified).__name__, verified)
    return SSOUserDefinedValues(
        models=[], user_id=f"{userIDPInfo.id}-verified-{verified}", user_email=userIDPInfo.email,
        user_role="internal_user_viewer", max_budget=None, budget_duration=None,
    )
"""


def reason(response: httpx.Response) -> str:
    start = response.text.index('id="reason">') + len('id="reason">')
    return response.text[start : response.text.index("<", start)]


def run_id_of(response: httpx.Response) -> str:
    start = response.text.index('id="run-id">') + len('id="run-id">')
    return response.text[start : response.text.index("<", start)]


# --- email_verified ------------------------------------------------------------------------------------------


def test_allowed_email_domains_refuses_an_email_the_idp_did_not_verify(start: ProxyFactory) -> None:
    proxy = start(env={"ALLOWED_EMAIL_DOMAINS": "admin.example.com"})
    with new_client() as client:
        response = login(client, proxy, "boss@admin.example.com;email_verified=false")
    assert response.status_code == 403
    assert response.url.path == "/sso/callback"
    assert reason(response) == "Your email address is not verified by the identity provider."
    assert "token" not in client.cookies
    assert proxy.user("boss") is None
    assert proxy.query("SELECT * FROM ui_sessions") == []
    assert "its email boss@admin.example.com is not verified" in proxy.log()
    # the same address, verified, passes the same rule (the domain's hook role: proxy_admin)
    with new_client() as client:
        response = login(client, proxy, "boss@admin.example.com")
    assert response.status_code == 200
    assert response.url.params["login"] == "success"
    user = proxy.user("boss")
    assert user is not None
    assert (user["email"], user["role"]) == ("boss@admin.example.com", "proxy_admin")


def test_the_hook_sees_email_verified(start: ProxyFactory) -> None:
    proxy = start(hook_source=VERIFIED_HOOK)
    for account, user_id in (
        ("carol;email_verified=false", "carol-verified-False"),
        ("dave", "dave-verified-True"),
        ("erin;email_verified=unknown", "erin-verified-None"),  # not a boolean: the provider did not say
    ):
        with new_client() as client:
            response = login(client, proxy, account)
        assert response.status_code == 200, response.text
        assert proxy.user(user_id) is not None, user_id
    runs = proxy.query("SELECT stdout FROM hook_runs ORDER BY started_at")
    assert [run["stdout"].strip() for run in runs] == [
        "email_verified bool False",
        "email_verified bool True",
        "email_verified NoneType None",
    ]


# --- the binding to the provider's account ----------------------------------------------------------------


def test_another_account_claiming_a_users_preferred_username_is_refused(start: ProxyFactory, idp: IdP) -> None:
    proxy = start()  # LiteLLM's default user id: preferred_username, which the user may edit
    assert "GENERIC_USER_ID_ATTRIBUTE is preferred_username (LiteLLM's default)" in proxy.log()
    with new_client() as client:
        assert login(client, proxy, "alice").status_code == 200
    alice = proxy.user("alice")
    assert alice is not None
    assert (alice["idp_issuer"], alice["idp_subject"], alice["email"]) == (idp.issuer, "alice", "alice@example.com")

    with new_client() as client:
        response = login(client, proxy, "mallory;preferred_username=alice")
    assert response.status_code == 403
    assert reason(response) == "Login refused by policy (user_id)."
    assert "token" not in client.cookies
    assert proxy.user("alice") == alice  # untouched: email, role, binding, last login
    assert len(proxy.sessions("alice")) == 1
    run = proxy.run(run_id_of(response))
    assert run is not None
    assert (run["outcome"], run["http_status"], run["user_id"], run["subject"]) == ("refused", 403, None, "alice")
    assert "bound to another identity-provider account" in run["error"]
    assert "(subject 'mallory;preferred_username=alice')" in run["error"]
    assert "user alice is bound to another identity-provider account" in proxy.log()


def test_the_same_account_logs_in_again(start: ProxyFactory, idp: IdP) -> None:
    proxy = start()
    for _ in range(2):
        with new_client() as client:
            response = login(client, proxy, "frank@admin.example.com")
        assert response.status_code == 200
        assert response.url.params["login"] == "success"
    frank = proxy.user("frank")
    assert frank is not None
    assert (frank["idp_issuer"], frank["idp_subject"], frank["role"]) == (
        idp.issuer,
        "frank@admin.example.com",
        "proxy_admin",
    )
    assert len(proxy.sessions("frank")) == 2


def test_a_user_made_by_the_management_api_is_bound_by_its_first_login(start: ProxyFactory, idp: IdP) -> None:
    proxy = start(env={"GENERIC_USER_ID_ATTRIBUTE": "sub"})
    assert "GENERIC_USER_ID_ATTRIBUTE is" not in proxy.log()  # sub: no warning
    created = httpx.post(
        f"{proxy.base_url}/user/new",
        json={"user_id": "grace", "user_email": "grace@example.com"},
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
    )
    assert created.status_code == 200, created.text
    grace = proxy.user("grace")
    assert grace is not None
    assert (grace["idp_issuer"], grace["idp_subject"]) == (None, None)
    with new_client() as client:
        assert login(client, proxy, "grace").status_code == 200
    grace = proxy.user("grace")
    assert grace is not None
    assert (grace["idp_issuer"], grace["idp_subject"]) == (idp.issuer, "grace")
    # the user id comes from sub here: another account whose preferred_username is grace is another user
    with new_client() as client:
        assert login(client, proxy, "heidi;preferred_username=grace").status_code == 200
    heidi = proxy.user("heidi;preferred_username=grace")
    assert heidi is not None
    assert heidi["idp_subject"] == "heidi;preferred_username=grace"
    assert proxy.user("grace") == grace


# --- the store and the migration ------------------------------------------------------------------------------


def record(user_id: str, session_id: str, subject: str | None, issuer: str | None = "https://idp") -> LoginRecord:
    return login_record(user_id, session_id, email=f"{session_id}@example.com", idp_issuer=issuer, idp_subject=subject)


def run(run_id: str) -> RunRecord:
    return RunRecord(run_id=run_id, started_at=utcnow(), outcome="ok", duration_ms=1.0, subject="x", provider="g")


@pytest.mark.anyio
async def test_the_store_binds_once_and_refuses_other_accounts(tmp_path: Path) -> None:
    database = Database(normalize_url("sqlite:///hj.db", tmp_path))
    await database.upgrade()
    try:
        await database.complete_login(record("ivan", "s1", "sub-ivan"), run("r1"))
        await database.complete_login(record("ivan", "s2", "sub-ivan"), run("r2"))
        for other in (
            record("ivan", "s3", "sub-judy"),  # another subject
            record("ivan", "s3", "sub-ivan", issuer="https://other-idp"),  # the same subject at another issuer
            record("ivan", "s3", None),  # no subject: cannot prove it is the bound account
        ):
            with pytest.raises(IdentityMismatch):
                await database.complete_login(other, run("r3"))
        user = await database.get_user("ivan")
        assert user is not None
        assert (user.email, user.idp_issuer, user.idp_subject) == ("s2@example.com", "https://idp", "sub-ivan")
        assert await database.get_session("s3") is None
        assert await database.get_run("r3") is None
        # a login without a subject neither binds an unbound user nor is refused by it
        await database.complete_login(record("kim", "s4", None), run("r4"))
        kim = await database.get_user("kim")
        assert kim is not None
        assert kim.idp_subject is None
    finally:
        await database.close()


@pytest.mark.anyio
async def test_users_from_before_the_migration_are_unbound_until_their_next_login(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
    engine.dispose()
    now = utcnow().isoformat()
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO users (id, email, role, models, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            ("leo", "leo@example.com", "proxy_admin", "[]", now, now),
        )
    database = Database(normalize_url(f"sqlite:///{path}", tmp_path))
    await database.upgrade()
    try:
        leo = await database.get_user("leo")
        assert leo is not None
        assert (leo.role, leo.idp_issuer, leo.idp_subject) == ("proxy_admin", None, None)
        await database.complete_login(record("leo", "s1", "sub-leo"), run("r1"))
        leo = await database.get_user("leo")
        assert leo is not None
        assert (leo.idp_issuer, leo.idp_subject) == ("https://idp", "sub-leo")
    finally:
        await database.close()
