"""The management API in-process: master-key auth, LiteLLM's shapes, 422 naming the field, OpenAPI docs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest
from fastapi import FastAPI

from proxy._db import CandidateRecord, Database, RunRecord, utcnow
from tests.proxy import harness
from tests.proxy.harness import ProxyFactory, login, new_client
from tests.proxy.inprocess import asgi_client, bare_app
from tests.proxy.test_login import RAISING_HOOK, run_id_of

pytestmark = pytest.mark.anyio

MASTER_KEY = "sk-management"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    async with bare_app(tmp_path, MASTER_KEY) as application:
        yield application


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(app, headers={"Authorization": f"Bearer {MASTER_KEY}"}) as client:
        yield client


async def post(api: httpx.AsyncClient, path: str, body: dict[str, Any], status: int = 200) -> Any:
    response = await api.post(path, json=body)
    assert response.status_code == status, response.text
    return response.json()


async def get(api: httpx.AsyncClient, path: str, status: int = 200, **params: Any) -> Any:
    response = await api.get(path, params=params)
    assert response.status_code == status, response.text
    return response.json()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/user/new"),
        ("GET", "/user/info?user_id=alice"),
        ("GET", "/user/list"),
        ("POST", "/team/new"),
        ("POST", "/team/member_add"),
        ("GET", "/team/info?team_id=eng"),
        ("GET", "/hook/runs"),
        ("GET", "/hook/runs/0123456789abcdef"),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer sk-wrong", f"Basic {MASTER_KEY}", MASTER_KEY])
async def test_cant_use_the_api_without_the_master_key(
    app: FastAPI, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hookjail.test") as client:
        response = await client.request(method, path, headers=headers, json={"user_id": "x"})
    assert response.status_code == 401
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("auth_error", "401")
    assert "master key" in error["message"] or "Bearer" in error["message"]


async def test_new_user_then_user_info_has_litellm_shape(api: httpx.AsyncClient) -> None:
    created = await post(
        api,
        "/user/new",
        {
            "user_id": "alice",
            "user_email": "alice@example.com",
            "user_role": "internal_user",
            "models": ["gpt-4o"],
            "max_budget": 10,
            "budget_duration": "30d",
            "metadata": {"team": "research"},
            "send_invite_email": False,  # a LiteLLM field hookjail does not store: accepted, ignored
        },
    )
    assert created["key"] is None
    assert (created["user_id"], created["user_role"], created["max_budget"]) == ("alice", "internal_user", 10.0)
    info = await get(api, "/user/info", user_id="alice")
    assert info["user_id"] == "alice"
    assert info["keys"] == []
    assert info["teams"] == []
    assert info["user_info"] == {
        "user_id": "alice",
        "user_email": "alice@example.com",
        "user_alias": None,
        "user_role": "internal_user",
        "models": ["gpt-4o"],
        "max_budget": 10.0,
        "budget_duration": "30d",
        "spend": 0.0,
        "teams": [],
        "metadata": {"team": "research"},
    }


async def test_new_user_without_id_or_role_gets_a_fresh_id_and_the_viewer_role(api: httpx.AsyncClient) -> None:
    created = await post(api, "/user/new", {"user_email": "nobody@example.com"})
    assert len(created["user_id"]) == 36
    assert created["user_role"] == "internal_user_viewer"


async def test_unknown_user_is_a_404_like_litellm(api: httpx.AsyncClient) -> None:
    error = (await get(api, "/user/info", 404, user_id="ghost"))["error"]
    assert error == {"message": "User ghost not found", "type": "not_found", "param": None, "code": "404"}


async def test_duplicate_user_is_a_409(api: httpx.AsyncClient) -> None:
    await post(api, "/user/new", {"user_id": "bob"})
    error = (await post(api, "/user/new", {"user_id": "bob"}, 409))["error"]
    assert "already exists" in error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "x", "user_role": "superuser"}, "user_role"),
        ({"user_id": "x", "max_budget": -1}, "max_budget"),
        ({"user_id": "x", "budget_duration": "forever"}, "budget_duration"),
        ({"user_id": "x", "models": "gpt-4o"}, "models"),
        ({"user_id": ""}, "user_id"),
    ],
)
async def test_bad_user_fields_are_a_422_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    detail = (await post(api, "/user/new", body, 422))["detail"]
    assert field in detail[0]["loc"]


async def test_missing_query_parameter_is_a_422_naming_it(api: httpx.AsyncClient) -> None:
    detail = (await get(api, "/user/info", 422))["detail"]
    assert detail[0]["loc"] == ["query", "user_id"]


async def test_oversized_metadata_is_a_422_naming_metadata(api: httpx.AsyncClient) -> None:
    error = (await post(api, "/user/new", {"user_id": "x", "metadata": {"blob": "x" * 70_000}}, 422))["error"]
    assert error["param"] == "metadata"


async def test_team_new_member_add_and_team_info(api: httpx.AsyncClient) -> None:
    await post(api, "/user/new", {"user_id": "carol", "user_email": "carol@example.com"})
    team = await post(
        api,
        "/team/new",
        {
            "team_id": "eng",
            "team_alias": "Engineering",
            "models": ["gpt-4o"],
            "members_with_roles": [{"user_id": "carol", "role": "admin"}],
            "tpm_limit": 1000,  # LiteLLM field, ignored
        },
    )
    assert team["members_with_roles"] == [{"user_id": "carol", "user_email": "carol@example.com", "role": "admin"}]
    added = await post(
        api,
        "/team/member_add",
        {"team_id": "eng", "member": {"user_email": "dave@example.com", "role": "user"}, "max_budget_in_team": 2},
    )
    assert [m["role"] for m in added["members_with_roles"]] == ["admin", "user"]
    (new_member,) = added["updated_users"]
    assert (new_member["user_email"], new_member["user_role"], new_member["teams"]) == (
        "dave@example.com",
        "internal_user",
        ["eng"],
    )
    assert added["updated_team_memberships"][0]["max_budget_in_team"] == 2.0
    info = await get(api, "/team/info", team_id="eng")
    assert info["team_info"]["team_alias"] == "Engineering"
    assert {m["user_id"] for m in info["team_memberships"]} == {"carol", new_member["user_id"]}
    carol = await get(api, "/user/info", user_id="carol")
    assert carol["user_info"]["teams"] == ["eng"]
    assert carol["teams"][0]["team_id"] == "eng"


async def test_member_add_by_email_finds_the_existing_user(api: httpx.AsyncClient) -> None:
    await post(api, "/user/new", {"user_id": "erin", "user_email": "Erin@Example.com"})
    await post(api, "/team/new", {"team_id": "ops"})
    added = await post(api, "/team/member_add", {"team_id": "ops", "member": [{"user_email": "erin@example.com"}]})
    assert added["updated_users"][0]["user_id"] == "erin"


async def test_member_add_twice_is_a_409_and_to_a_missing_team_a_404(api: httpx.AsyncClient) -> None:
    await post(api, "/team/new", {"team_id": "ops", "members_with_roles": [{"user_id": "frank"}]})
    await post(api, "/team/member_add", {"team_id": "ops", "member": {"user_id": "frank"}}, 409)
    await post(api, "/team/member_add", {"team_id": "nope", "member": {"user_id": "frank"}}, 404)
    detail = (await post(api, "/team/member_add", {"team_id": "ops", "member": {"role": "user"}}, 422))["detail"]
    assert "a user_id or a user_email" in detail[0]["msg"]


async def test_duplicate_team_is_a_409(api: httpx.AsyncClient) -> None:
    await post(api, "/team/new", {"team_id": "ops"})
    await post(api, "/team/new", {"team_id": "ops"}, 409)
    assert (await get(api, "/team/info", 404, team_id="nope"))["error"]["message"] == "Team nope not found"


async def test_user_list_pages_and_filters(api: httpx.AsyncClient) -> None:
    for index in range(5):
        role = "proxy_admin" if index % 2 else "internal_user"
        await post(api, "/user/new", {"user_id": f"u{index}", "user_role": role})
    await post(api, "/team/new", {"team_id": "t", "members_with_roles": [{"user_id": "u1"}, {"user_id": "u4"}]})
    page = await get(api, "/user/list", page=2, page_size=2)
    assert [u["user_id"] for u in page["users"]] == ["u2", "u3"]
    assert (page["total"], page["page"], page["page_size"], page["total_pages"]) == (5, 2, 2, 3)
    admins = await get(api, "/user/list", role="proxy_admin")
    assert [u["user_id"] for u in admins["users"]] == ["u1", "u3"]
    members = await get(api, "/user/list", team="t")
    assert [(u["user_id"], u["teams"]) for u in members["users"]] == [("u1", ["t"]), ("u4", ["t"])]
    chosen = await get(api, "/user/list", user_ids="u4,u0,nobody")
    assert [u["user_id"] for u in chosen["users"]] == ["u0", "u4"]
    await get(api, "/user/list", 422, page_size=1000)


async def test_openapi_docs_are_served(app: FastAPI) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hookjail.test") as client:
        docs = await client.get("/docs")
        schema = (await client.get("/openapi.json")).json()
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    for path in (
        "/user/new",
        "/user/info",
        "/user/list",
        "/team/new",
        "/team/member_add",
        "/team/info",
        "/hook/runs",
        "/hook/runs/{run_id}",
    ):
        assert path in schema["paths"]
    assert "404" in schema["paths"]["/hook/runs/{run_id}"]["get"]["responses"]
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    assert "/sso/callback" not in schema["paths"]


# --- hook runs --------------------------------------------------------------------------------------------------


async def record_runs(app: FastAPI, *runs: tuple[str, str, str | None, str | None]) -> None:
    """Record runs ``(run_id, outcome, subject, user_id)``, each a minute after the one before."""
    database: Database = app.state.database
    start = utcnow() - timedelta(hours=1)
    for index, (run_id, outcome, subject, user_id) in enumerate(runs):
        await database.record_run(
            RunRecord(
                run_id=run_id,
                started_at=start + timedelta(minutes=index),
                outcome=outcome,
                duration_ms=12.5,
                subject=subject,
                provider="generic",
                user_id=user_id,
                error=None if outcome == "ok" else f"{outcome} in {run_id}",
                http_status=303 if outcome == "ok" else 502,
            )
        )


async def test_hook_runs_are_listed_newest_first_and_filtered(app: FastAPI, api: httpx.AsyncClient) -> None:
    await record_runs(
        app,
        ("r1", "ok", "alice", "alice"),
        ("r2", "raised", "bob", None),  # failed before naming a user: only the subject
        ("r3", "timeout", "alice", None),
        ("r4", "ok", "bob-idp", "bob"),  # the hook mapped the IdP's subject to another user id
        ("r5", "raised", "carol", None),
    )
    listed = await get(api, "/hook/runs")
    assert [run["run_id"] for run in listed["runs"]] == ["r5", "r4", "r3", "r2", "r1"]
    assert [run["run_id"] for run in (await get(api, "/hook/runs", outcome="raised"))["runs"]] == ["r5", "r2"]
    assert [run["run_id"] for run in (await get(api, "/hook/runs", user_id="alice"))["runs"]] == ["r3", "r1"]
    assert [run["run_id"] for run in (await get(api, "/hook/runs", user_id="bob"))["runs"]] == ["r4", "r2"]
    both = await get(api, "/hook/runs", outcome="raised", user_id="bob")
    assert [run["run_id"] for run in both["runs"]] == ["r2"]
    assert [run["run_id"] for run in (await get(api, "/hook/runs", limit=2))["runs"]] == ["r5", "r4"]
    assert (await get(api, "/hook/runs", outcome="crashed"))["runs"] == []
    assert listed["runs"][0] == {
        "run_id": "r5",
        "started_at": listed["runs"][0]["started_at"],
        "outcome": "raised",
        "duration_ms": 12.5,
        "http_status": 502,
        "subject": "carol",
        "user_id": None,
        "email": None,
        "provider": "generic",
        "error": "raised in r5",
        "fallback": None,
        "host_call_count": 0,
    }


@pytest.mark.parametrize("limit", [0, 201, "many"])
async def test_hook_runs_limit_is_at_most_200(api: httpx.AsyncClient, limit: object) -> None:
    detail = (await get(api, "/hook/runs", 422, limit=limit))["detail"]
    assert detail[0]["loc"] == ["query", "limit"]


async def test_hook_run_has_everything_recorded(app: FastAPI, api: httpx.AsyncClient) -> None:
    database: Database = app.state.database
    calls: list[dict[str, Any]] = [
        {"method": "user_info", "args": {"user_id": "dan"}, "outcome": "NotFound", "error": "User dan not found"},
        {"unrecorded": 3},
    ]
    await database.record_run(
        RunRecord(
            run_id="0123456789abcdef",
            started_at=utcnow(),
            outcome="invalid",
            duration_ms=3.25,
            subject="dan",
            provider="generic",
            error="user_role: must be one of the LitellmUserRoles values (got 'root')",
            fallback="idp_defaults",
            stdout="looking up dan\n",
            stderr="warning\n",
            http_status=303,
            user_id="dan",
            extra={"email": "dan@example.com"},
            host_calls=calls,
            hook_sha256="ab" * 32,
            decided={"user_id": "dan", "user_role": "internal_user_viewer"},
        )
    )
    await database.record_candidate(
        CandidateRecord(
            run_id="0123456789abcdef",
            started_at=utcnow(),
            sha256="cd" * 32,
            outcome="ok",
            decided={"user_id": "dan", "user_role": "internal_user"},
            diff={"outcome": {"live": "invalid", "candidate": "ok"}},
            duration_ms=1.5,
        )
    )
    run = await get(api, "/hook/runs/0123456789abcdef")
    assert run["started_at"].endswith(("Z", "+00:00"))
    del run["started_at"]
    assert run == {
        "run_id": "0123456789abcdef",
        "outcome": "invalid",
        "duration_ms": 3.25,
        "http_status": 303,
        "subject": "dan",
        "user_id": "dan",
        "email": "dan@example.com",
        "provider": "generic",
        "error": "user_role: must be one of the LitellmUserRoles values (got 'root')",
        "fallback": "idp_defaults",
        "host_call_count": 4,
        "stdout": "looking up dan\n",
        "stderr": "warning\n",
        "host_calls": calls,
        "extra": {"email": "dan@example.com"},
        "hook_sha256": "ab" * 32,
        "values": {"user_id": "dan", "user_role": "internal_user_viewer"},
        "candidate": {
            "outcome": "ok",
            "values": {"user_id": "dan", "user_role": "internal_user"},
            "diff": {"outcome": {"live": "invalid", "candidate": "ok"}},
            "duration_ms": 1.5,
            "error": None,
            "sha256": "cd" * 32,
        },
    }


async def test_unknown_hook_run_is_a_404(api: httpx.AsyncClient) -> None:
    error = (await get(api, "/hook/runs/ffffffffffffffff", 404))["error"]
    assert error == {
        "message": "Hook run ffffffffffffffff not found",
        "type": "not_found",
        "param": None,
        "code": "404",
    }


async def test_failed_logins_run_id_resolves_to_its_outcome_and_error(start: ProxyFactory) -> None:
    """The run id on a failed login's error page is all the operator needs: the API has the rest."""
    proxy = start(hook_source=RAISING_HOOK)

    def failed_login() -> httpx.Response:
        with new_client() as client:
            return login(client, proxy, "frank@example.com")

    response = await anyio.to_thread.run_sync(failed_login)
    assert response.status_code == 502
    run_id = run_id_of(response)
    async with httpx.AsyncClient(base_url=proxy.base_url, timeout=10.0) as client:
        assert (await client.get(f"/hook/runs/{run_id}")).status_code == 401
        client.headers["Authorization"] = f"Bearer {harness.MASTER_KEY}"
        run = await get(client, f"/hook/runs/{run_id}")
        listed = await get(client, "/hook/runs", outcome="raised", user_id="frank")
    assert (run["run_id"], run["outcome"], run["http_status"]) == (run_id, "raised", 502)
    assert "directory lookup failed" in run["error"]
    assert "about to fail for frank" in run["stdout"]
    assert (run["subject"], run["user_id"], run["email"]) == ("frank", None, "frank@example.com")
    assert [r["run_id"] for r in listed["runs"]] == [run_id]


# --- auth before the body, and input bounds ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/user/new", "/team/new", "/team/member_add"])
@pytest.mark.parametrize("body", [b"{not json", b"[" * 100_000, b'{"user_id": "x", "max_budget": 1e309}'])
async def test_unauthenticated_body_is_a_401_and_never_parsed(app: FastAPI, path: str, body: bytes) -> None:
    """Malformed JSON is a 401, not FastAPI's 422: the key is checked before the body is read."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hookjail.test") as client:
        response = await client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 401, response.text
    assert response.json()["error"]["type"] == "auth_error"


#: NUL, CR/LF, LF, ESC, DEL, a C1 control; bidi overrides and embeddings, isolates, a right-to-left mark.
UNSAFE_IDS = [
    "a\x00b",
    "a\r\nb",
    "a\nb",
    "\x1b[31mred",
    "a\x7fb",
    "a\x85b",
    "admin\u202egpj.exe",
    "a\u202ab",
    "a\u2066b",
    "a\u2069",
    "a\u200fb",
]


def _body_with(path: str, field: str, value: Any) -> dict[str, Any]:
    """A valid body of ``path`` except that ``field`` (``a.b`` for nested) is ``value``."""
    bodies: dict[str, dict[str, Any]] = {
        "/user/new": {"user_id": "x"},
        "/team/new": {"team_id": "t", "members_with_roles": [{"user_id": "m"}]},
        "/team/member_add": {"team_id": "t", "member": {"user_id": "m"}},
    }
    body = bodies[path]
    head, _, tail = field.partition(".")
    if tail:
        member = body[head][0] if isinstance(body[head], list) else body[head]
        member[tail] = value
    else:
        body[head] = value
    return body


@pytest.mark.parametrize("value", UNSAFE_IDS)
@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/user/new", "user_id"),
        ("/user/new", "user_alias"),
        ("/user/new", "models"),
        ("/user/new", "teams"),
        ("/team/new", "team_id"),
        ("/team/new", "team_alias"),
        ("/team/new", "models"),
        ("/team/new", "members_with_roles.user_id"),
        ("/team/member_add", "team_id"),
        ("/team/member_add", "member.user_id"),
    ],
)
async def test_ids_with_control_or_bidi_characters_are_a_422_naming_the_field(
    api: httpx.AsyncClient, path: str, field: str, value: str
) -> None:
    leaf = field.rpartition(".")[2]
    body = _body_with(path, field, [value] if leaf in {"models", "teams"} else value)
    detail = (await post(api, path, body, 422))["detail"]
    assert leaf in detail[0]["loc"], detail
    assert "control characters" in detail[0]["msg"]


@pytest.mark.parametrize(
    "email",
    [
        "not an email",
        "alice",
        "alice@",
        "@example.com",
        "alice@example",
        "alice@@example.com",
        "a b@example.com",
        "alice@exa mple.com",
        "alice@-example.com",
        "alice@example..com",
        "alice@127.0.0.1",
        "alice.@example.com",
        '"alice"@example.com',
        "alice@example.com\r\nBcc: eve@example.com",
        "alice@example.com\x00",
        "alice\u202e@example.com",
        "x" * 65 + "@example.com",
    ],
)
@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/user/new", "user_email"),
        ("/team/new", "members_with_roles.user_email"),
        ("/team/member_add", "member.user_email"),
    ],
)
async def test_bad_emails_are_a_422_naming_the_field(api: httpx.AsyncClient, path: str, field: str, email: str) -> None:
    detail = (await post(api, path, _body_with(path, field, email), 422))["detail"]
    assert "user_email" in detail[0]["loc"], detail


@pytest.mark.parametrize(
    "email", ["Erin@Example.com", "o'brien+tag@mail.example.co.uk", "jörg@bücher.de", "ops@intranet.local"]
)
async def test_real_emails_are_accepted(api: httpx.AsyncClient, email: str) -> None:
    assert (await post(api, "/user/new", {"user_email": email}))["user_email"] == email


@pytest.mark.parametrize("number", ["1e309", "-1e309", "NaN", "Infinity", "-Infinity", "-1", "-0.01", "1" + "0" * 400])
@pytest.mark.parametrize(
    ("path", "prefix", "field"),
    [
        ("/user/new", '{"user_id": "x", "max_budget": ', "max_budget"),
        ("/team/new", '{"team_id": "t", "max_budget": ', "max_budget"),
        (
            "/team/member_add",
            '{"team_id": "t", "member": {"user_id": "m"}, "max_budget_in_team": ',
            "max_budget_in_team",
        ),
    ],
)
async def test_budgets_that_are_not_finite_or_negative_are_a_422_not_a_500(
    api: httpx.AsyncClient, path: str, prefix: str, field: str, number: str
) -> None:
    response = await api.post(path, content=f"{prefix}{number}}}", headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"][0]["loc"]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/user/list", {"page": 2**63}, "page"),
        ("/user/list", {"page": 2**62}, "page"),
        ("/user/list", {"page": 1_000_001}, "page"),
        ("/user/list", {"page": 0}, "page"),
        ("/user/list", {"page": -1}, "page"),
        ("/user/list", {"page": "1e3"}, "page"),
        ("/user/list", {"page_size": 2**63}, "page_size"),
        ("/user/list", {"page_size": 10**30}, "page_size"),
        ("/user/list", {"page_size": 0}, "page_size"),
        ("/user/list", {"team": "eng\x00"}, "team"),
        ("/user/list", {"role": "proxy_admin\r\n"}, "role"),
        ("/user/list", {"user_ids": "a,b\u202e"}, "user_ids"),
        ("/user/info", {"user_id": "alice\x00"}, "user_id"),
        ("/user/info", {"user_id": "x" * 257}, "user_id"),
        ("/team/info", {"team_id": "eng\u2066"}, "team_id"),
        ("/team/info", {"team_id": "x" * 257}, "team_id"),
        ("/hook/runs", {"user_id": "alice\n"}, "user_id"),
        ("/hook/runs", {"outcome": "raised\x00"}, "outcome"),
        ("/hook/runs", {"limit": 2**63}, "limit"),
        ("/hook/runs/ab%00cd", {}, "run_id"),
    ],
)
async def test_bad_query_numbers_and_ids_are_a_422_naming_them(
    api: httpx.AsyncClient, path: str, params: dict[str, Any], field: str
) -> None:
    detail = (await get(api, path, 422, **params))["detail"]
    assert detail[0]["loc"][-1] == field, detail


async def test_the_last_page_served_is_empty_not_a_500(api: httpx.AsyncClient) -> None:
    page = await get(api, "/user/list", page=1_000_000, page_size=100)
    assert (page["users"], page["page"]) == ([], 1_000_000)
