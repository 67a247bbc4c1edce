"""A hook refusing a login on purpose (``raise sdk.Deny(reason)``): a 403 whose page shows the hook's reason,
recorded as ``denied``, never replaced by ``on_failure: idp_defaults``; and any other exception's text never
reaching the browser.

In-process with a stand-in hook for every path of the decision, then the whole login over HTTP with the real
``hookjail`` process, sandbox and OpenID provider.
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from proxy._db import Database
from proxy._login import LoginFailed
from runner import HookDenied, HookRaised, HostHandler
from tests.proxy.harness import ProxyFactory, login, new_client
from tests.proxy.inprocess import sqlite_database
from tests.proxy.test_login import field, run_id_of, token_cookie_set
from tests.proxy.test_login_transaction import OPENID, ScriptedHook, nothing_written, service, write_then

#: Has markup, quotes and an ampersand: the page must show them as text.
REASON = 'Your account <b>is not</b> on the "allowlist" & <script>alert(1)</script> — ask #it-help'

DENYING_HOOK = f"""
from sdk import Deny

def custom_sso_handler(userIDPInfo):
    print("denying", userIDPInfo.id)
    raise Deny({REASON!r})
"""

SECRET_HOOK = """
def custom_sso_handler(userIDPInfo):
    raise RuntimeError("db password=hunter2")
"""

#: The reason depends on the user: a very long one, a blank one.
ODD_REASONS_HOOK = """
from sdk import Deny

def custom_sso_handler(userIDPInfo):
    raise Deny({"long": "x" * 5000, "blank": "   "}[userIDPInfo.id])
"""


# --- in-process ------------------------------------------------------------------------------------------------

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    async with sqlite_database(tmp_path, teams=("eng",)) as db:
        yield db


def denying(reason: str) -> ScriptedHook:
    """A stand-in hook that stages writes through its host calls, then denies with ``reason``."""
    hook = ScriptedHook()

    async def script(host: HostHandler) -> dict[str, Any]:
        await write_then(host)
        raise HookDenied(reason)

    hook.script = script
    return hook


@pytest.mark.parametrize("on_failure", ["deny", "idp_defaults"])
async def test_a_denial_is_a_403_with_the_hooks_reason_and_drops_the_writes(
    database: Database, tmp_path: Path, on_failure: str
) -> None:
    login = service(database, denying("not on the allowlist — ask #it-help"), tmp_path, on_failure=on_failure)
    with pytest.raises(LoginFailed) as caught:
        await login.login(OPENID)
    failed = caught.value
    assert (failed.status, failed.outcome, failed.reason) == (403, "denied", "not on the allowlist — ask #it-help")
    assert failed.run_id
    await nothing_written(database)  # with idp_defaults too: a denial is a decision, not a failure to cover
    run = await database.get_run(failed.run_id)
    assert run is not None
    assert (run.outcome, run.http_status, run.error, run.fallback) == (
        "denied",
        403,
        "not on the allowlist — ask #it-help",
        None,
    )
    assert run.subject == "bob"
    assert [c["method"] for c in run.host_calls or []] == ["new_user", "add_new_member"]


async def test_a_blank_denial_shows_a_generic_refusal(database: Database, tmp_path: Path) -> None:
    with pytest.raises(LoginFailed) as caught:
        await service(database, denying("  "), tmp_path).login(OPENID)
    assert (caught.value.status, caught.value.reason) == (403, "The login hook refused this login.")


async def test_an_ordinary_exceptions_text_is_never_the_reason(database: Database, tmp_path: Path) -> None:
    hook = ScriptedHook()

    async def script(host: HostHandler) -> dict[str, Any]:
        raise HookRaised("RuntimeError: db password=hunter2", type_name="RuntimeError", traceback="Traceback ...")

    hook.script = script
    with pytest.raises(LoginFailed) as caught:
        await service(database, hook, tmp_path).login(OPENID)
    failed = caught.value
    assert (failed.status, failed.outcome, failed.reason) == (502, "raised", "The login hook failed with an error.")
    run = await database.get_run(failed.run_id or "")
    assert run is not None
    assert run.error == "RuntimeError: db password=hunter2"  # the operator's, in the run record


# --- over HTTP, with the real proxy, sandbox and identity provider --------------------------------------------


def test_a_denying_hook_shows_its_reason_escaped_with_the_run_id(start: ProxyFactory) -> None:
    proxy = start()
    with new_client() as client:
        assert login(client, proxy, "frank@example.com").status_code == 200
    before = proxy.user("frank")
    assert before is not None
    proxy.write_hook(DENYING_HOOK)
    with new_client() as client:
        response = login(client, proxy, "frank@example.com")
        assert response.status_code == 403
        assert response.url.path == "/sso/callback"
        assert not token_cookie_set(response)
        assert "token" not in client.cookies
    # the reason as text: escaped by the template, so no markup of the hook's reaches the page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    assert "&lt;b&gt;is not&lt;/b&gt;" in response.text
    assert "<script>alert" not in response.text
    assert "<b>is not</b>" not in response.text
    assert html.unescape(field(response, "reason")) == REASON
    run = proxy.run(run_id_of(response))
    assert run is not None
    assert (run["outcome"], run["http_status"], run["error"], run["fallback"]) == ("denied", 403, REASON, None)
    assert "denying frank" in run["stdout"]
    assert proxy.user("frank") == before
    assert len(proxy.sessions("frank")) == 1  # the first login's only


def test_idp_defaults_do_not_turn_a_denial_into_a_login(start: ProxyFactory) -> None:
    proxy = start(hook_source=DENYING_HOOK, hook_settings={"on_failure": "idp_defaults"})
    with new_client() as client:
        response = login(client, proxy, "mallory@example.com")
        assert response.status_code == 403
        assert not token_cookie_set(response)
    assert html.unescape(field(response, "reason")) == REASON
    run = proxy.run(run_id_of(response))
    assert run is not None
    assert (run["outcome"], run["fallback"]) == ("denied", None)
    assert proxy.user("mallory") is None
    assert proxy.sessions("mallory") == []


def test_long_and_blank_reasons(start: ProxyFactory) -> None:
    proxy = start(hook_source=ODD_REASONS_HOOK)
    with new_client() as client:
        response = login(client, proxy, "long@example.com")
    assert response.status_code == 403
    reason = field(response, "reason")
    assert reason.startswith("x" * 300)
    assert len(reason) <= 301  # the runner's cap, with its ellipsis
    run = proxy.run(run_id_of(response))
    assert run is not None
    assert run["error"] == reason
    with new_client() as client:
        response = login(client, proxy, "blank@example.com")
    assert response.status_code == 403
    assert field(response, "reason") == "The login hook refused this login."


def test_an_ordinary_exception_shows_only_the_generic_text(start: ProxyFactory) -> None:
    proxy = start(hook_source=SECRET_HOOK, hook_settings={"on_failure": "deny"})
    with new_client() as client:
        response = login(client, proxy, "grace@example.com")
    assert response.status_code == 502
    assert field(response, "reason") == "The login hook failed with an error."
    for secret in ("hunter2", "password", "RuntimeError", "Traceback", "custom_sso.py"):
        assert secret not in response.text, secret
    run = proxy.run(run_id_of(response))
    assert run is not None
    assert run["outcome"] == "raised"
    assert "db password=hunter2" in run["error"]  # the operator still has it
