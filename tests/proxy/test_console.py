"""The admin console in-process (httpx against the ASGI app, with a real hook in its sandbox): who may see it,
pages rendered from real runs, the run filters, the latency charts, the dry run (writes nothing, refuses
cross-site posts) and the offline Swagger UI."""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from proxy._db import Database, HookRun, RunRecord, Team, TeamMember, UISession, User, utcnow
from proxy._login import LoginFailed, LoginService
from proxy.web._console import parse_run_filter
from proxy.web._headers import STRICT_CSP
from proxy.web._pages import Pages
from proxy.web._svg import buckets, histogram, latency_chart, percentile, summarize
from tests.proxy.harness import MASTER_KEY, write_config, write_hook
from tests.proxy.inprocess import asgi_client, offline_environ, running_app, session_cookie

pytestmark = pytest.mark.anyio

ALL_GRANTS = ["user_info", "new_user", "add_new_member", "team_info"]

#: Decides by the email's local part: raise@, deny@, rich@ (over the policy's budget), writer@ (creates a user
#: with a host call); anyone else gets plain values. It prints HTML, to show that the pages escape it.
CONSOLE_HOOK = """
from sdk import Deny, NotFoundError, SSOUserDefinedValues, new_user, user_info


async def custom_sso_handler(userIDPInfo):
    email = userIDPInfo.email or ""
    print("<b>hook saw</b>", email)
    local = email.partition("@")[0]
    if local == "raise":
        raise RuntimeError("directory <script>alert(1)</script> is down")
    if local == "deny":
        raise Deny("not on the <i>list</i>")
    if local == "writer":
        await new_user({"user_id": "ghost-" + userIDPInfo.id, "user_role": "internal_user", "max_budget": 1.0})
    try:
        await user_info(user_id=userIDPInfo.id)
    except NotFoundError:
        pass
    return SSOUserDefinedValues(
        models=["gpt-4o-mini"],
        user_id=userIDPInfo.id,
        user_email=email or None,
        user_role="proxy_admin" if email.endswith("@admin.example.com") else "internal_user",
        max_budget=500.0 if local == "rich" else 5.0,
        budget_duration="30d",
    )
"""


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    config = write_config(
        tmp_path,
        hook_source=CONSOLE_HOOK,
        hook_settings={"sandbox": "permissive", "permissions": ALL_GRANTS, "policy": {"max_budget": 100}},
    )
    async with running_app(config, offline_environ(), allow_weak_sandbox=True) as application:
        yield application


def client(app: FastAPI, token: str | None = None) -> httpx.AsyncClient:
    return asgi_client(app, token=token)


async def signed_in(app: FastAPI, user_id: str, role: str) -> str:
    """A session cookie of ``user_id`` with ``role`` (written as a login would)."""
    run = RunRecord(
        run_id=f"seed-{user_id}", started_at=utcnow(), outcome="ok", duration_ms=1, subject=user_id, provider="generic"
    )
    return await session_cookie(
        app, MASTER_KEY, run, user_id=user_id, session_id=f"sess-{user_id}", role=role, models=["gpt-4o"]
    )


@pytest.fixture
async def admin(app: FastAPI) -> str:
    return await signed_in(app, "root", "proxy_admin")


async def log_in(app: FastAPI, email: str) -> str | None:
    """A login through the real hook (the identity provider's part skipped); the run id, failed or not."""
    login: LoginService = app.state.login
    local = email.partition("@")[0]
    try:
        granted = await login.login({"id": local, "email": email, "provider": "generic"})
    except LoginFailed as failed:
        return failed.run_id
    return granted.run_id


async def counts(app: FastAPI) -> dict[str, int]:
    database: Database = app.state.database
    async with database.session() as session:
        return {
            model.__tablename__: int(await session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (User, HookRun, UISession, Team, TeamMember)
        }


def text_of(response: httpx.Response, element_id: str) -> str:
    """The text of the element with this id (up to its tag's first closing tag: none of them nest here)."""
    match = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', response.text, re.S)
    assert match is not None, f"no #{element_id}: {response.text[:1000]}"
    return html.unescape(re.sub(r"<[^>]+>", "", match.group(2))).strip()


def assert_strict_console_page(response: httpx.Response) -> None:
    """A console page, served under the strict CSP and never cached, with nothing the strict policy would refuse
    (no script, no inline style)."""
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-security-policy"] == STRICT_CSP
    assert response.headers["cache-control"] == "no-store"
    assert "<script" not in response.text
    assert "style=" not in response.text
    assert "<style" not in response.text


CONSOLE_PAGES = ["/ui/hook", "/ui/runs", "/ui/runs/seed-root", "/ui/users", "/ui/hook/try"]


# --- who may see it --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", CONSOLE_PAGES)
async def test_signed_out_is_sent_to_the_login_page(app: FastAPI, admin: str, path: str) -> None:
    async with client(app) as http:
        response = await http.get(path)
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/"


@pytest.mark.parametrize("role", ["internal_user", "internal_user_viewer"])
@pytest.mark.parametrize("path", CONSOLE_PAGES)
async def test_other_roles_get_a_403(app: FastAPI, admin: str, path: str, role: str) -> None:
    token = await signed_in(app, "mallory", role)
    async with client(app, token) as http:
        response = await http.get(path)
    assert response.status_code == 403
    assert "for proxy admins" in response.text
    assert "seed-root" not in response.text


async def test_others_cannot_post_a_dry_run(app: FastAPI) -> None:
    token = await signed_in(app, "mallory", "internal_user")
    before = await counts(app)
    async with client(app, token) as http:
        refused = await http.post("/ui/hook/try", data={"openid": '{"id": "x"}'})
    async with client(app) as http:
        anonymous = await http.post("/ui/hook/try", data={"openid": '{"id": "x"}'})
    assert refused.status_code == 403
    assert (anonymous.status_code, anonymous.headers["location"]) == (303, "/ui/")
    assert await counts(app) == before


@pytest.mark.parametrize("role", ["proxy_admin", "proxy_admin_viewer"])
@pytest.mark.parametrize("path", CONSOLE_PAGES)
async def test_admins_and_viewers_see_every_page_under_the_strict_csp(
    app: FastAPI, admin: str, path: str, role: str
) -> None:
    token = await signed_in(app, "watcher", role)
    async with client(app, token) as http:
        response = await http.get(path)
    assert_strict_console_page(response)
    # the stylesheet from the proxy
    assert '<link rel="stylesheet" href="/static/console.css">' in response.text


async def test_a_demoted_admins_session_no_longer_opens_the_console(app: FastAPI, admin: str) -> None:
    database: Database = app.state.database
    async with database.transaction() as rows:
        user = await rows.user("root")
        assert user is not None
        user.role = "internal_user"
    async with client(app, admin) as http:
        response = await http.get("/ui/runs")
    assert response.status_code == 403


# --- the hook --------------------------------------------------------------------------------------------------


async def test_hook_page_shows_the_loaded_hook(app: FastAPI, admin: str, tmp_path: Path) -> None:
    async with client(app, admin) as http:
        response = await http.get("/ui/hook")
    assert response.status_code == 200
    assert text_of(response, "hook-file") == "custom_sso.py"
    assert text_of(response, "hook-sha256") == hashlib.sha256((tmp_path / "custom_sso.py").read_bytes()).hexdigest()
    assert text_of(response, "hook-handler").startswith("custom_sso.custom_sso_handler")
    assert text_of(response, "hook-import-mode").startswith("per call")
    assert text_of(response, "hook-loaded-at").endswith("UTC")
    assert "ok" in text_of(response, "hook-last-reload")
    assert text_of(response, "hook-permissions") == ", ".join(ALL_GRANTS)
    assert text_of(response, "policy-max-budget") == "100"
    assert text_of(response, "policy-allowed-roles") == "any"
    for layer in app.state.runner.report_layers():
        assert f"<code>{html.escape(layer)}</code>" in response.text
    assert re.search(r"<code>timeout</code></th><td>2(\.0)?</td>", response.text)
    assert re.search(r"<code>memory_mb</code></th><td>256</td>", response.text)


async def test_hook_page_shows_a_failed_reload(app: FastAPI, admin: str, tmp_path: Path) -> None:
    write_hook(tmp_path / "custom_sso.py", "import no_such_module_here\n")
    await app.state.hook.reload_if_changed()
    async with client(app, admin) as http:
        response = await http.get("/ui/hook")
    assert "failed" in text_of(response, "hook-last-reload")
    assert "no_such_module_here" in text_of(response, "hook-reload-error")


# --- runs ------------------------------------------------------------------------------------------------------


async def test_runs_are_listed_newest_first_and_link_to_their_page(app: FastAPI, admin: str) -> None:
    ok = await log_in(app, "alice@example.com")
    raised = await log_in(app, "raise@example.com")
    denied = await log_in(app, "deny@example.com")
    async with client(app, admin) as http:
        response = await http.get("/ui/runs")
    assert response.status_code == 200
    listed = re.findall(r'href="/ui/runs/([0-9a-z-]+)"', response.text)
    assert listed[:3] == [denied, raised, ok]
    assert "seed-root" in listed
    # the hook's words in the list are escaped
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;" in response.text


async def test_a_failed_runs_page_has_everything_recorded_escaped(app: FastAPI, admin: str) -> None:
    run_id = await log_in(app, "raise@example.com")
    async with client(app, admin) as http:
        response = await http.get(f"/ui/runs/{run_id}")
    assert response.status_code == 200
    assert text_of(response, "run-outcome") == "raised"
    assert text_of(response, "run-http-status") == "502"
    assert text_of(response, "run-subject") == "raise"
    assert text_of(response, "run-provider") == "generic"
    assert text_of(response, "run-email") == "raise@example.com"
    assert text_of(response, "run-error") == "RuntimeError: directory <script>alert(1)</script> is down"
    assert "<script>" not in response.text
    assert "<b>hook saw</b>" not in response.text
    assert text_of(response, "run-stdout") == "<b>hook saw</b> raise@example.com"
    assert text_of(response, "run-duration").endswith(" ms")


async def test_a_successful_runs_page_shows_the_user_and_host_calls(app: FastAPI, admin: str) -> None:
    run_id = await log_in(app, "alice@example.com")
    async with client(app, admin) as http:
        response = await http.get(f"/ui/runs/{run_id}")
    assert text_of(response, "run-outcome") == "ok"
    assert text_of(response, "run-http-status").startswith("303")
    assert text_of(response, "run-user-id") == "alice"
    assert text_of(response, "run-user-role") == "internal_user"
    calls = text_of(response, "run-host-calls")
    assert "user_info" in calls
    assert "NotFound" in calls  # alice did not exist yet when the hook looked her up


@pytest.mark.parametrize("run_id", ["nope", "x" * 65, "a%00b", "%E2%80%AEab"])
async def test_an_unknown_or_malformed_run_id_is_a_404_page(app: FastAPI, admin: str, run_id: str) -> None:
    async with client(app, admin) as http:
        response = await http.get(f"/ui/runs/{run_id}")
    assert response.status_code == 404
    assert "No such run" in response.text


async def test_runs_filter_by_outcome_user_and_time(app: FastAPI, admin: str) -> None:
    ok = await log_in(app, "alice@example.com")
    raised = await log_in(app, "raise@example.com")
    bob = await log_in(app, "bob@example.com")

    async def listed(**params: str) -> list[str]:
        async with client(app, admin) as http:
            response = await http.get("/ui/runs", params=params)
        assert response.status_code == 200, response.text[:500]
        return re.findall(r'href="/ui/runs/([0-9a-z-]+)"', response.text)

    assert await listed(outcome="raised") == [raised]
    assert await listed(user="alice") == [ok]
    assert await listed(user="raise") == [raised]  # a failed run is found by its subject
    assert await listed(outcome="ok", user="bob") == [bob]
    assert await listed(limit="2") == [bob, raised]
    future = (utcnow() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert await listed(since=future) == []
    assert await listed(until=future, outcome="raised") == [raised]
    assert set(await listed(since="1h")) == {ok, raised, bob, "seed-root"}
    past = (utcnow() - timedelta(days=1)).isoformat()
    assert await listed(until=past) == []
    assert await listed(since=past, until=future, user="bob") == [bob]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"outcome": "bogus"}, "outcome"),
        ({"outcome": "ok'; drop table hook_runs; --"}, "outcome"),
        ({"user": "x" * 300}, "user"),
        ({"user": "alice\x00"}, "user"),
        ({"user": "admin\u202egpj"}, "user"),
        ({"since": "yesterday"}, "since"),
        ({"since": "0h"}, "since"),
        ({"since": "999999d"}, "since"),
        ({"until": "2025-13-01"}, "until"),
        ({"until": "24h"}, "until"),
        ({"until": "9999-12-31T23:59:59-14:00"}, "until"),
        ({"since": "0001-01-01T00:00:00+14:00"}, "since"),
        ({"since": "2025-01-02", "until": "2025-01-01"}, "until"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "٣"}, "limit"),
        ({"limit": "9" * 5000}, "limit"),
    ],
)
async def test_bad_run_filters_are_a_422_naming_the_field(
    app: FastAPI, admin: str, params: dict[str, str], field: str
) -> None:
    async with client(app, admin) as http:
        response = await http.get("/ui/runs", params=params)
    assert response.status_code == 422, response.text[:500]
    assert text_of(response, "filter-errors").startswith("These filters are not valid")
    errors = re.findall(r"<li>([^<]*)</li>", response.text)
    assert any(html.unescape(error).startswith(f"{field}:") for error in errors), errors
    assert 'href="/ui/runs/' not in response.text


def test_run_filter_parsing() -> None:
    now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    found, errors = parse_run_filter(
        {"outcome": "raised", "user": " bob ", "since": "90m", "until": "2025-03-01T13:00", "limit": "7"}, now
    )
    assert errors == []
    assert found.outcome == "raised"
    assert found.user == "bob"
    assert found.since == datetime(2025, 3, 1, 10, 30, tzinfo=UTC)
    assert found.until == datetime(2025, 3, 1, 13, 0, tzinfo=UTC)
    assert found.limit == 7
    offset, errors = parse_run_filter({"since": "2025-03-01T14:00+02:00"}, now)
    assert (offset.since, errors) == (datetime(2025, 3, 1, 12, 0, tzinfo=UTC), [])
    empty, errors = parse_run_filter({"outcome": "", "user": "", "since": " ", "limit": ""}, now)
    assert (empty.outcome, empty.user, empty.since, empty.limit, errors) == (None, None, None, 50, [])


async def test_runs_page_draws_the_latency_charts(app: FastAPI, admin: str) -> None:
    database: Database = app.state.database
    start = utcnow() - timedelta(hours=2)
    for index in range(40):
        await database.record_run(
            RunRecord(
                run_id=f"t{index:02d}",
                started_at=start + timedelta(minutes=3 * index),
                outcome="ok",
                duration_ms=10.0 + index,
                subject="timer",
                provider="generic",
            )
        )
    async with client(app, admin) as http:
        response = await http.get("/ui/runs", params={"user": "timer"})
        nothing = await http.get("/ui/runs", params={"user": "nobody-at-all"})
    assert response.status_code == 200
    assert '<svg xmlns="http://www.w3.org/2000/svg" id="latency-chart"' in response.text
    assert '<svg xmlns="http://www.w3.org/2000/svg" id="latency-histogram"' in response.text
    assert 'class="svg-p50"' in response.text
    assert 'class="svg-p99"' in response.text
    assert text_of(response, "latency-p50") == "29.0 ms"  # nearest rank: the 20th of 10..49
    assert text_of(response, "latency-p99") == "49.0 ms"
    assert nothing.status_code == 200
    assert "latency-chart" not in nothing.text
    assert text_of(nothing, "no-latency") == "No runs match: nothing to chart."


# --- the charts ------------------------------------------------------------------------------------------------


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7
    summary = summarize([3.0, 1.0, 2.0])
    assert summary is not None
    assert (summary.count, summary.p50, summary.max) == (3, 2.0, 3.0)
    assert summarize([]) is None


def test_buckets_split_the_time_range_and_skip_empty_ones() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    samples = [(start, 1.0), (start + timedelta(minutes=1), 3.0), (start + timedelta(hours=1), 100.0)]
    found = buckets(samples, 4)
    assert [b.count for b in found] == [2, 1]
    assert (found[0].p50, found[0].p99) == (1.0, 3.0)
    assert found[-1].p99 == 100.0
    assert [b.count for b in buckets([(start, 5.0), (start, 6.0)], 4)] == [2]
    assert buckets([], 4) == []


def test_charts_are_plain_svg_with_tooltips() -> None:
    start = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)
    samples = [(start + timedelta(minutes=i), float(i % 7) * 30) for i in range(60)]
    chart = str(latency_chart(samples))
    assert chart.startswith('<svg xmlns="http://www.w3.org/2000/svg" id="latency-chart"')
    assert chart.endswith("</svg>")
    assert "09:00" in chart
    assert "<title>2025-01-01 09:00 to" in chart
    assert "style=" not in chart
    assert "<script" not in chart
    bars = str(histogram([0.5, 1.5, 1.7, 12.0, 15000.0]))
    assert "<title>&lt;1 ms: 1 run</title>" in bars
    assert "<title>1-2 ms: 2 runs</title>" in bars
    assert "<title>10-20 ms: 1 run</title>" in bars
    assert "<title>≥10k ms: 1 run</title>" in bars
    assert str(latency_chart([])) == ""
    assert str(histogram([])) == ""


# --- users -----------------------------------------------------------------------------------------------------


async def test_users_page_lists_users_and_teams_paged(app: FastAPI, admin: str) -> None:
    await log_in(app, "alice@example.com")
    database: Database = app.state.database
    now = utcnow()
    async with database.transaction() as rows:
        await rows.add(Team(id="eng", alias="Engineering", models=["gpt-4o"], max_budget=25.0, created_at=now))
        await rows.add(TeamMember(team_id="eng", user_id="alice", role="admin", created_at=now))
        for index in range(55):
            await rows.add(
                User(
                    id=f"bulk{index:02d}",
                    role="internal_user_viewer",
                    models=[],
                    created_at=now + timedelta(seconds=index + 1),
                    updated_at=now,
                )
            )
    async with client(app, admin) as http:
        first = await http.get("/ui/users")
        second = await http.get("/ui/users", params={"page": "2"})
        beyond = await http.get("/ui/users", params={"page": "99"})
        bad = await http.get("/ui/users", params={"page": "0"})
        worse = await http.get("/ui/users", params={"teams_page": "x" * 20})
    assert first.status_code == 200
    assert "57 in all" in first.text
    row = re.search(r'<td class="user-id">alice</td>(.*?)</tr>', first.text, re.S)
    assert row is not None
    assert '<td class="user-role">internal_user</td>' in row.group(1)
    assert '<td class="user-models">gpt-4o-mini</td>' in row.group(1)
    assert '<td class="user-budget">5 / 30d</td>' in row.group(1)
    assert '<td class="user-teams">eng</td>' in row.group(1)
    assert "UTC" in row.group(1)  # alice's last login
    assert 'id="users-next"' in first.text
    assert first.text.count('<tr class="user">') == 50
    assert second.text.count('<tr class="user">') == 7
    assert "page 2 of 2" in second.text
    assert 'id="no-users"' in beyond.text
    assert '<td class="team-id">eng</td>' in first.text
    assert "1: alice (admin)" in first.text
    assert (bad.status_code, worse.status_code) == (422, 422)


# --- try the hook ----------------------------------------------------------------------------------------------


async def dry_run(app: FastAPI, token: str, openid: str, **headers: str) -> httpx.Response:
    async with client(app, token) as http:
        return await http.post("/ui/hook/try", data={"openid": openid}, headers=headers)


async def test_try_page_is_prefilled_with_the_sample(app: FastAPI, admin: str) -> None:
    async with client(app, admin) as http:
        response = await http.get("/ui/hook/try")
    assert response.status_code == 200
    assert '"id": "check-user"' in html.unescape(text_of(response, "openid"))
    assert '<form method="post" action="/ui/hook/try"' in response.text


async def test_a_dry_run_shows_the_judged_values_and_writes_nothing(app: FastAPI, admin: str) -> None:
    await log_in(app, "alice@example.com")
    before = await counts(app)
    response = await dry_run(
        app, admin, '{"id": "newbie", "email": "writer@admin.example.com"}', **{"Sec-Fetch-Site": "same-origin"}
    )
    assert response.status_code == 200, response.text[:800]
    assert text_of(response, "try-outcome") == "ok"
    assert text_of(response, "try-http-status").startswith("HTTP 303")
    values = text_of(response, "try-values")
    assert '"user_role": "proxy_admin"' in values
    assert '"max_budget": 5.0' in values
    assert "new_user" in response.text
    assert "ghost-newbie" in text_of(response, "try-staged")
    assert text_of(response, "try-stdout") == "<b>hook saw</b> writer@admin.example.com"
    # nothing written: no user (not the hook's new one either), no run, no session
    assert await counts(app) == before
    database: Database = app.state.database
    assert await database.get_user("newbie") is None
    assert await database.get_user("ghost-newbie") is None


async def test_a_dry_run_reads_the_database(app: FastAPI, admin: str) -> None:
    await log_in(app, "alice@example.com")
    response = await dry_run(app, admin, '{"id": "alice", "email": "alice@example.com", "provider": "generic"}')
    assert text_of(response, "try-outcome") == "ok"
    assert "user_info" in text_of(response, "try-host-calls")
    assert "NotFound" not in response.text  # alice exists: the lookup found her


async def test_a_dry_run_applies_the_identity_binding(app: FastAPI, admin: str) -> None:
    await log_in(app, "alice@example.com")  # binds alice to the account (generic, alice)
    response = await dry_run(
        app, admin, '{"id": "alice", "email": "alice@example.com", "issuer": "https://other.example", "subject": "x"}'
    )
    assert text_of(response, "try-outcome") == "refused"
    assert "bound to another identity-provider account" in text_of(response, "try-error")


@pytest.mark.parametrize(
    ("email", "outcome", "status", "error"),
    [
        ("raise@example.com", "raised", "502", "RuntimeError: directory <script>alert(1)</script> is down"),
        ("deny@example.com", "denied", "403", "not on the <i>list</i>"),
        ("rich@example.com", "refused", "403", "max_budget"),
    ],
)
async def test_a_dry_run_shows_failures_as_a_login_would_judge_them(
    app: FastAPI, admin: str, email: str, outcome: str, status: str, error: str
) -> None:
    before = await counts(app)
    response = await dry_run(app, admin, f'{{"id": "someone", "email": "{email}"}}')
    assert response.status_code == 200
    assert text_of(response, "try-outcome") == outcome
    assert text_of(response, "try-http-status") == f"HTTP {status}"
    assert error in text_of(response, "try-error")
    assert "<script>alert" not in response.text
    assert "<i>list" not in response.text
    if outcome == "raised":
        assert "custom_sso.py" in text_of(response, "try-traceback")
    assert await counts(app) == before


async def test_a_viewer_may_dry_run_too(app: FastAPI) -> None:
    token = await signed_in(app, "watcher", "proxy_admin_viewer")
    before = await counts(app)
    response = await dry_run(app, token, '{"id": "v", "email": "v@example.com"}')
    assert text_of(response, "try-outcome") == "ok"
    assert await counts(app) == before


@pytest.mark.parametrize(
    ("openid", "message"),
    [
        ("", "openid: required"),
        ("{not json", "openid: not valid JSON"),
        ("[1, 2]", "openid: expected a JSON object, got list"),
        ('{"id": 5}', "openid: id: Input should be a valid string"),
        ('{"id": "x", "emial": "typo@example.com"}', "emial: Extra inputs are not permitted"),
        ('{"id": "' + "x" * 20000 + '"}', "openid: at most"),
        ("[" * 8000 + "]" * 8000, "openid: not valid JSON"),
        ('{"id": "x", "email": "not an email"}', "openid: email"),
    ],
)
async def test_a_bad_openid_is_a_422_and_runs_nothing(app: FastAPI, admin: str, openid: str, message: str) -> None:
    before = await counts(app)
    response = await dry_run(app, admin, openid)
    assert response.status_code == 422
    assert message in text_of(response, "try-errors")
    assert 'id="try-result"' not in response.text
    assert await counts(app) == before


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://evil.example"},
        {"Origin": "http://hookjail.test:8080"},
        {"Origin": "null"},
    ],
)
async def test_a_cross_site_dry_run_is_refused(
    app: FastAPI, admin: str, headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    before = await counts(app)
    with caplog.at_level("INFO", logger="hookjail"):
        response = await dry_run(app, admin, '{"id": "x", "email": "writer@example.com"}', **headers)
    assert response.status_code == 403
    assert "came from another site" in response.text
    assert 'id="try-result"' not in response.text
    assert "refused a cross-site dry run" in caplog.text
    assert "dry run " not in caplog.text.replace("cross-site dry run", "")
    assert await counts(app) == before


async def test_a_same_origin_post_is_accepted(app: FastAPI, admin: str) -> None:
    response = await dry_run(app, admin, '{"id": "x"}', Origin="http://hookjail.test")
    assert response.status_code == 200
    assert text_of(response, "try-outcome") == "ok"


# --- the error page, /docs and the static files -----------------------------------------------------------------


def test_the_error_pages_run_id_links_to_the_run_only_for_admins() -> None:
    pages = Pages()
    linked = pages.error("The login hook failed.", status=502, run_id="abc123", run_link=True).body.decode()
    plain = pages.error("The login hook failed.", status=502, run_id="abc123").body.decode()
    assert '<a id="run-link" href="/ui/runs/abc123"><code id="run-id">abc123</code></a>' in linked
    assert 'href="/ui/runs/' not in plain
    assert '<code id="run-id">abc123</code>' in plain


async def test_the_dashboard_links_admins_to_the_console(app: FastAPI, admin: str) -> None:
    token = await signed_in(app, "mallory", "internal_user")
    async with client(app, admin) as http:
        admin_page = await http.get("/ui/")
    async with client(app, token) as http:
        user_page = await http.get("/ui/")
    assert 'id="console-link" href="/ui/hook"' in admin_page.text
    assert "console-link" not in user_page.text


async def test_docs_are_swagger_ui_served_by_the_proxy(app: FastAPI) -> None:
    async with client(app) as http:
        docs = await http.get("/docs")
        script = await http.get("/static/swagger-ui/swagger-ui-bundle.js")
        css = await http.get("/static/swagger-ui/swagger-ui.css")
        console_css = await http.get("/static/console.css")
        schema = await http.get("/openapi.json")
    assert docs.status_code == 200
    assert 'src="/static/swagger-ui/swagger-ui-bundle.js"' in docs.text
    assert 'href="/static/swagger-ui/swagger-ui.css"' in docs.text
    assert "cdn.jsdelivr.net" not in docs.text
    assert "https://" not in docs.text
    policy = docs.headers["content-security-policy"]
    script_src = next(d for d in policy.split("; ") if d.startswith("script-src"))
    assert "'sha256-" in script_src
    assert "unsafe-inline" not in script_src
    assert "http" not in policy
    assert "frame-ancestors 'none'" in policy
    assert (script.status_code, script.headers["content-type"]) == (200, "text/javascript; charset=utf-8")
    assert "SwaggerUIBundle" in script.text
    assert (css.status_code, css.headers["content-type"]) == (200, "text/css; charset=utf-8")
    assert console_css.status_code == 200
    assert ".svg-p50" in console_css.text
    assert "/docs" not in schema.json()["paths"]


@pytest.mark.parametrize(
    "path", ["/static/nope.css", "/static/../_app.py", "/static/%2e%2e/_console.py", "/static/swagger-ui/index.html"]
)
async def test_only_the_known_static_files_are_served(app: FastAPI, path: str) -> None:
    async with client(app) as http:
        response = await http.get(path)
    assert response.status_code == 404
    assert "import" not in response.text
