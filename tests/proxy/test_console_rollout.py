"""The admin console's safe-rollout pages in-process (httpx against the ASGI app, real hooks in their sandbox):
the candidate page (agreement, the fields and logins it differs on, or how to configure one), the run page's
version and candidate block, the versions page and the diff between two versions; who may see them; bad
parameters."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi import FastAPI

from proxy._db import CandidateRecord, Database, RunRecord, VersionRecord, utcnow
from proxy._hook import HookService
from proxy.web._console_rollout import parse_sha, source_diff
from tests.proxy.harness import write_config, write_hook
from tests.proxy.inprocess import offline_environ, running_app
from tests.proxy.test_console import (
    ALL_GRANTS,
    CONSOLE_HOOK,
    assert_strict_console_page,
    client,
    log_in,
    signed_in,
    text_of,
)

pytestmark = pytest.mark.anyio

#: The live hook's values, but everyone a proxy_admin (and rich@ under the policy's budget).
CANDIDATE_HOOK = """
from sdk import SSOUserDefinedValues


async def custom_sso_handler(userIDPInfo):
    email = userIDPInfo.email or ""
    return SSOUserDefinedValues(
        models=["gpt-4o-mini"],
        user_id=userIDPInfo.id,
        user_email=email or None,
        user_role="proxy_admin",
        max_budget=5.0,
        budget_duration="30d",
    )
"""

PAGES = ["/ui/candidate", "/ui/versions", "/ui/versions/diff"]


async def started(tmp_path: Path, *, candidate: bool) -> AsyncIterator[FastAPI]:
    hook_settings: dict[str, object] = {
        "sandbox": "permissive",
        "permissions": ALL_GRANTS,
        "policy": {"max_budget": 100},
    }
    if candidate:
        write_hook(tmp_path / "candidate_sso.py", CANDIDATE_HOOK)
        hook_settings |= {"candidate": "candidate_sso.custom_sso_handler", "candidate_settings": {"timeout": 3}}
    config = write_config(tmp_path, hook_source=CONSOLE_HOOK, hook_settings=hook_settings)
    async with running_app(config, offline_environ(), allow_weak_sandbox=True) as application:
        yield application


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    """The console's app without a candidate."""
    async for application in started(tmp_path, candidate=False):
        yield application


@pytest.fixture
async def shadowed(tmp_path: Path) -> AsyncIterator[FastAPI]:
    """The console's app with ``hook_settings.candidate`` (everyone a proxy_admin) in the shadow of logins."""
    async for application in started(tmp_path, candidate=True):
        yield application


@pytest.fixture
async def admin(app: FastAPI) -> str:
    return await signed_in(app, "root", "proxy_admin")


def live_sha(app: FastAPI) -> str:
    hook: HookService = app.state.hook
    return hook.describe().sha256


def candidate_sha(app: FastAPI) -> str:
    sha256: str = app.state.shadow.candidate.describe().sha256
    return sha256


async def get(app: FastAPI, token: str, path: str, **params: str) -> httpx.Response:
    async with client(app, token) as http:
        return await http.get(path, params=params)


async def run(app: FastAPI, run_id: str, **fields: object) -> None:
    database: Database = app.state.database
    record = {
        "run_id": run_id,
        "started_at": utcnow(),
        "outcome": "ok",
        "duration_ms": 3.0,
        "subject": run_id.partition("-")[0],
        "provider": "generic",
        "http_status": 303,
    }
    await database.record_run(RunRecord(**(record | fields)))  # type: ignore[arg-type]


async def shadow(app: FastAPI, run_id: str, sha256: str, diff: dict[str, dict[str, object]], **fields: object) -> None:
    database: Database = app.state.database
    record = {
        "run_id": run_id,
        "started_at": utcnow(),
        "sha256": sha256,
        "outcome": "ok",
        "decided": {"user_id": run_id, "user_role": "proxy_admin"},
        "diff": diff,
        "duration_ms": 4.25,
    }
    await database.record_candidate(CandidateRecord(**(record | fields)))  # type: ignore[arg-type]


async def version(app: FastAPI, sha256: str, sources: dict[str, str] | None, loaded_by: str = "reload") -> None:
    database: Database = app.state.database
    await database.record_version(
        VersionRecord(
            sha256=sha256, file="custom_sso.py", function="custom_sso_handler", sources=sources, loaded_by=loaded_by
        )
    )


async def shadow_run_of(app: FastAPI, run_id: str) -> None:
    """Wait (up to 10 s) until the candidate's shadow run of ``run_id`` is recorded."""
    database: Database = app.state.database
    with anyio.fail_after(10):
        while await database.get_candidate(run_id) is None:
            await anyio.sleep(0.02)


# --- who may see them ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
async def test_signed_out_is_sent_to_the_login_page(app: FastAPI, path: str) -> None:
    async with client(app) as http:
        response = await http.get(path)
    assert (response.status_code, response.headers["location"]) == (303, "/ui/")


@pytest.mark.parametrize("role", ["internal_user", "internal_user_viewer"])
@pytest.mark.parametrize("path", PAGES)
async def test_other_roles_get_a_403(shadowed: FastAPI, path: str, role: str) -> None:
    await run(shadowed, "carol-1")
    await shadow(shadowed, "carol-1", candidate_sha(shadowed), {"user_role": {"live": "a", "candidate": "b"}})
    token = await signed_in(shadowed, "mallory", role)
    response = await get(shadowed, token, path)
    assert response.status_code == 403
    assert "for proxy admins" in response.text
    assert "carol-1" not in response.text
    assert "candidate_sso" not in response.text


@pytest.mark.parametrize("role", ["proxy_admin", "proxy_admin_viewer"])
@pytest.mark.parametrize("path", [*PAGES, "/ui/versions/diff?from={live}&to={candidate}", "/ui/runs/carol-1"])
async def test_admins_and_viewers_see_every_page_under_the_strict_csp(shadowed: FastAPI, path: str, role: str) -> None:
    await run(shadowed, "carol-1", hook_sha256=live_sha(shadowed))
    await shadow(shadowed, "carol-1", candidate_sha(shadowed), {"user_role": {"live": "a", "candidate": "b"}})
    token = await signed_in(shadowed, "watcher", role)
    async with client(shadowed, token) as http:
        response = await http.get(path.format(live=live_sha(shadowed), candidate=candidate_sha(shadowed)))
    assert_strict_console_page(response)
    # the navigation names the new pages, the current one marked
    assert '<a href="/ui/candidate"' in response.text
    assert '<a href="/ui/versions"' in response.text
    assert response.text.count('aria-current="page"') == 1


# --- the candidate page ----------------------------------------------------------------------------------------


async def test_without_a_candidate_the_page_says_how_to_set_one(app: FastAPI, admin: str) -> None:
    response = await get(app, admin, "/ui/candidate")
    assert response.status_code == 200
    said = text_of(response, "no-candidate")
    assert "No candidate is configured" in said
    assert "hook_settings.candidate" in said
    assert 'aria-current="page">Candidate</a>' in response.text


async def test_candidate_page_shows_agreement_fields_and_differing_logins(shadowed: FastAPI) -> None:
    admin = await signed_in(shadowed, "root", "proxy_admin")
    sha = candidate_sha(shadowed)
    start = utcnow() - timedelta(minutes=10)
    for index in range(3):  # three logins decided alike
        await run(shadowed, f"same{index}-run", started_at=start)
        await shadow(shadowed, f"same{index}-run", sha, {}, started_at=start + timedelta(seconds=index))
    await run(shadowed, "bob-run", user_id="bob", started_at=start)
    await shadow(
        shadowed,
        "bob-run",
        sha,
        {"user_role": {"live": "internal_user", "candidate": "proxy_admin"}},
        started_at=start + timedelta(minutes=1),
    )
    await run(shadowed, "eve-run", outcome="raised", http_status=502, started_at=start)
    await shadow(
        shadowed,
        "eve-run",
        sha,
        {
            "user_role": {"live": None, "candidate": "<b>proxy_admin</b>"},
            "outcome": {"live": "raised", "candidate": "ok"},
        },
        started_at=start + timedelta(minutes=2),
    )
    # an earlier candidate version's run: not counted
    await run(shadowed, "old-run", started_at=start)
    await shadow(shadowed, "old-run", "ee" * 32, {"models": {"live": [], "candidate": ["x"]}}, started_at=start)
    shadowed.state.shadow.skipped = 3

    response = await get(shadowed, admin, "/ui/candidate")
    assert response.status_code == 200
    assert text_of(response, "candidate-handler") == "candidate_sso.custom_sso_handler"
    assert text_of(response, "candidate-file") == "candidate_sso.py"
    assert text_of(response, "candidate-sha256") == sha[:12]
    assert f'href="/ui/versions/diff?from={live_sha(shadowed)}&amp;to={sha}"' in response.text
    assert text_of(response, "candidate-skipped").startswith("3 logins since start-up")
    assert re.search(r"<code>timeout</code></th><td>3(\.0)?</td>", response.text)
    assert text_of(response, "candidate-rate") == "60.0 %"
    assert (text_of(response, "candidate-agree"), text_of(response, "candidate-runs")) == ("3", "5")
    assert text_of(response, "candidate-differ") == "2"
    assert text_of(response, "candidate-others").startswith("1 shadow run of other candidate versions")
    fields = re.findall(
        r'<tr class="candidate-field"><td><code>(\w+)</code></td><td class="num">(\d+)</td>', response.text
    )
    assert fields == [("user_role", "2"), ("outcome", "1")]
    assert re.findall(r'href="/ui/runs/([\w-]+)"', response.text) == ["eve-run", "bob-run"]
    table = text_of(response, "candidate-differing")
    assert 'user_role: "internal_user" → "proxy_admin"' in table
    assert 'outcome: "raised" → "ok"' in table
    assert "<b>proxy_admin</b>" not in response.text  # escaped
    assert "&lt;b&gt;proxy_admin&lt;/b&gt;" in response.text
    assert "old-run" not in response.text


async def test_a_real_login_is_shadowed_and_listed_as_differing(shadowed: FastAPI) -> None:
    admin = await signed_in(shadowed, "root", "proxy_admin")
    run_id = await log_in(shadowed, "alice@example.com")
    assert run_id is not None
    await shadow_run_of(shadowed, run_id)
    response = await get(shadowed, admin, "/ui/candidate")
    assert re.findall(r'href="/ui/runs/([\w-]+)"', response.text) == [run_id]
    assert text_of(response, "candidate-rate") == "0.0 %"
    assert 'user_role: "internal_user" → "proxy_admin"' in text_of(response, "candidate-differing")
    # the login got the live hook's values
    user = await shadowed.state.database.get_user("alice")
    assert user is not None
    assert user.role == "internal_user"

    page = await get(shadowed, admin, f"/ui/runs/{run_id}")
    assert text_of(page, "run-version") == live_sha(shadowed)[:12]
    assert f'href="/ui/versions#version-{live_sha(shadowed)[:12]}"' in page.text
    assert '"user_role": "internal_user"' in text_of(page, "run-granted")
    assert text_of(page, "candidate-outcome") == "ok"
    assert text_of(page, "candidate-verdict") == "differs on user_role"
    assert text_of(page, "candidate-version") == candidate_sha(shadowed)[:12]
    assert re.search(
        r'<td><code>user_role</code></td><td class="diff-live">&#34;internal_user&#34;</td>'
        r'<td class="diff-candidate">&#34;proxy_admin&#34;</td>',
        page.text,
    ), page.text
    assert '"user_role": "proxy_admin"' in text_of(page, "candidate-values")
    assert text_of(page, "candidate-duration").endswith(" ms")


# --- the run page ----------------------------------------------------------------------------------------------


async def test_run_page_shows_a_failed_candidate_run(app: FastAPI, admin: str) -> None:
    await run(app, "dan-run", hook_sha256="ab" * 32, decided={"user_id": "dan", "user_role": "internal_user"})
    await shadow(
        app,
        "dan-run",
        "cd" * 32,
        {"outcome": {"live": "ok", "candidate": "raised"}},
        outcome="raised",
        decided=None,
        error="RuntimeError: <script>alert(1)</script>\u202e",
        duration_ms=12.5,
    )
    response = await get(app, admin, "/ui/runs/dan-run")
    assert response.status_code == 200
    assert text_of(response, "run-version") == "abababababab (not kept)"
    assert text_of(response, "candidate-outcome") == "raised"
    assert text_of(response, "candidate-verdict") == "differs on outcome"
    assert text_of(response, "candidate-duration") == "12.5 ms"
    assert text_of(response, "candidate-no-values").startswith("none")
    assert text_of(response, "candidate-error") == "RuntimeError: <script>alert(1)</script>\\u202e"
    assert "<script>" not in response.text
    assert "\u202e" not in response.text


async def test_run_page_without_candidate_or_version(app: FastAPI, admin: str) -> None:
    await run(app, "old-run")
    response = await get(app, admin, "/ui/runs/old-run")
    assert text_of(response, "run-version") == "— (not recorded)"
    assert 'id="run-candidate"' not in response.text
    assert 'id="run-granted"' not in response.text


# --- versions --------------------------------------------------------------------------------------------------


async def test_versions_page_lists_versions_with_runs_and_marks_live_and_candidate(shadowed: FastAPI) -> None:
    admin = await signed_in(shadowed, "root", "proxy_admin")
    live, candidate = live_sha(shadowed), candidate_sha(shadowed)
    await version(shadowed, "12" * 32, None)  # kept without its source, loaded last
    for index, outcome in enumerate(["ok", "ok", "ok", "raised"]):
        await run(shadowed, f"live{index}-run", outcome=outcome, hook_sha256=live)
    await run(shadowed, "x-run", hook_sha256="12" * 32, outcome="timeout")
    await shadow(shadowed, "live0-run", candidate, {})
    await shadow(shadowed, "live1-run", candidate, {"user_role": {"live": "a", "candidate": "b"}})

    response = await get(shadowed, admin, "/ui/versions")
    assert response.status_code == 200
    listed = re.findall(r'<tr class="version" id="version-([0-9a-f]{12})">', response.text)
    assert listed[0] == "12" * 6  # newest load first
    assert set(listed) == {live[:12], candidate[:12], "12" * 6}

    def row(sha: str) -> str:
        match = re.search(rf'<tr class="version" id="version-{sha[:12]}">(.*?)</tr>', response.text, re.S)
        assert match is not None
        return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(1)))).strip()

    marked = dict(re.findall(r'id="version-([0-9a-f]{12})">.*?<td class="version-now">(.*?)</td>', response.text, re.S))
    assert {sha: re.sub(r"<[^>]+>", "", text) for sha, text in marked.items()} == {
        live[:12]: "live",
        candidate[:12]: "candidate",
        "12" * 6: "",
    }
    assert "start" in row(live)  # loaded by
    assert "4 75.0 % ok 3 · raised 1" in row(live)
    assert "2 (50.0 % agree)" in row(candidate)
    assert "not kept" in row("12" * 32)
    assert "0.0 % timeout 1" in row("12" * 32)
    assert f'href="/ui/versions/diff?from={candidate}&amp;to={live}">diff with live' in response.text
    # the form to compare two: the newest two picked
    assert re.search(rf'<select name="to" id="diff-to">\s*<option value="{"12" * 32}" selected>', response.text)
    assert re.search(r'<select name="from" id="diff-from">\s*<option value="[0-9a-f]{64}">', response.text)


async def test_versions_page_without_versions(tmp_path: Path) -> None:
    config = write_config(tmp_path, hook_source=None)
    async with running_app(config, offline_environ(), allow_weak_sandbox=True) as application:
        admin = await signed_in(application, "root", "proxy_admin")
        versions = await get(application, admin, "/ui/versions")
        diff = await get(application, admin, "/ui/versions/diff")
        candidate = await get(application, admin, "/ui/candidate")
    assert text_of(versions, "no-versions") == "No versions kept yet."
    assert (diff.status_code, text_of(diff, "no-versions")) == (200, "No versions kept yet.")
    assert "No candidate is configured" in text_of(candidate, "no-candidate")


OLD_SOURCE = "def handler(info):\n    role = 'internal_user'\n    return role\n"
NEW_SOURCE = "def handler(info):\n    role = 'proxy_admin'  # <b>\u202etxt.exe\n    return role\n"


async def test_diff_of_two_versions_styles_added_and_removed_lines(app: FastAPI, admin: str) -> None:
    await version(app, "aa" * 32, {"custom_sso.py": OLD_SOURCE})
    await version(app, "bb" * 32, {"custom_sso.py": NEW_SOURCE, "helpers.py": "X = 1\n"})
    response = await get(app, admin, "/ui/versions/diff", **{"from": "AAAAAAAA", "to": "bb" * 32})
    assert response.status_code == 200, response.text[:800]
    assert (text_of(response, "diff-old"), text_of(response, "diff-new")) == ("aa" * 6, "bb" * 6)
    lines = re.findall(r'<span class="diff-(\w+)">(.*?)</span>', response.text)
    shown = [(kind, html.unescape(text)) for kind, text in lines]
    assert shown[:2] == [("file", f"--- {'aa' * 6}/custom_sso.py"), ("file", f"+++ {'bb' * 6}/custom_sso.py")]
    assert ("del", "-    role = 'internal_user'") in shown
    assert ("add", "+    role = 'proxy_admin'  # <b>\\u202etxt.exe") in shown
    assert ("same", "     return role") in shown
    assert ("file", "--- /dev/null") in shown
    assert ("add", "+X = 1") in shown
    assert "\u202e" not in response.text  # the bidi override is shown as an escape, not obeyed
    assert "<b>" not in response.text
    # the form keeps what was picked
    assert f'<option value="{"aa" * 32}" selected>' in response.text
    assert f'<option value="{"bb" * 32}" selected>' in response.text


async def test_diff_of_a_version_with_itself_or_without_source(app: FastAPI, admin: str) -> None:
    await version(app, "aa" * 32, {"custom_sso.py": OLD_SOURCE})
    await version(app, "cc" * 32, None)
    same = await get(app, admin, "/ui/versions/diff", **{"from": "aa" * 32, "to": "aa" * 4})
    assert (same.status_code, text_of(same, "diff-same")) == (
        200,
        "No differences: the two versions' sources are the same.",
    )
    missing = await get(app, admin, "/ui/versions/diff", **{"from": "aa" * 32, "to": "cc" * 32})
    assert missing.status_code == 200
    assert text_of(missing, "diff-no-source").startswith(f"Version {'cc' * 6} was kept without its source")
    assert 'id="diff"' not in missing.text


async def test_diff_page_without_parameters_is_the_form(app: FastAPI, admin: str) -> None:
    response = await get(app, admin, "/ui/versions/diff")
    assert response.status_code == 200
    assert 'id="diff-form"' in response.text  # the live hook's version, kept at start
    assert 'id="diff-errors"' not in response.text


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"from": "aa" * 32}, 400, "to"),
        ({"to": "aa" * 32}, 400, "from"),
        ({"from": "xyz12345", "to": "aa" * 32}, 400, "from"),
        ({"from": "aa" * 32, "to": "abc"}, 400, "to"),
        ({"from": "aa" * 32, "to": "a" * 65}, 400, "to"),
        ({"from": "aa" * 32, "to": "aaaaaaa\u202e"}, 400, "to"),
        ({"from": "aa" * 32, "to": "٣" * 8}, 400, "to"),
        ({"from": "aa' or 1=1 --", "to": "aa" * 32}, 400, "from"),
        ({"from": "dd" * 32, "to": "aa" * 32}, 404, "from"),
        ({"from": "aa" * 32, "to": "dddddddd"}, 404, "to"),
    ],
)
async def test_bad_or_unknown_versions_are_a_400_or_404_naming_the_parameter(
    app: FastAPI, admin: str, params: dict[str, str], status: int, field: str
) -> None:
    await version(app, "aa" * 32, {"custom_sso.py": OLD_SOURCE})
    response = await get(app, admin, "/ui/versions/diff", **params)
    assert response.status_code == status, response.text[:800]
    errors = [html.unescape(error) for error in re.findall(r"<li>([^<]*)</li>", response.text)]
    assert len(errors) == 1 and errors[0].startswith(f"{field}:"), errors
    assert "\u202e" not in response.text
    assert 'id="diff"' not in response.text


def test_parse_sha() -> None:
    assert parse_sha({"v": " ABCDEF12 "}, "v") == ("abcdef12", None)
    assert parse_sha({}, "v")[1] == "v: required (a version's SHA-256, or at least its first 8 hex digits)"
    for bad in ("abcdef1", "g" * 8, "a" * 65, "abcdef12\x00", "\uff10" * 8):
        assert parse_sha({"v": bad}, "v")[0] is None


def test_source_diff_by_file_and_its_limit() -> None:
    old = {"pkg/a.py": "1\n2\n3\n", "pkg/gone.py": "x\n"}
    new = {"pkg/a.py": "1\n2\n4\n", "pkg/new.py": "y\n"}
    lines, cut = source_diff(old, new, "old", "new")
    assert not cut
    assert [(line.kind, line.text) for line in lines] == [
        ("file", "--- old/pkg/a.py"),
        ("file", "+++ new/pkg/a.py"),
        ("hunk", "@@ -1,3 +1,3 @@"),
        ("same", " 1"),
        ("same", " 2"),
        ("del", "-3"),
        ("add", "+4"),
        ("file", "--- old/pkg/gone.py"),
        ("file", "+++ /dev/null"),
        ("hunk", "@@ -1 +0,0 @@"),
        ("del", "-x"),
        ("file", "--- /dev/null"),
        ("file", "+++ new/pkg/new.py"),
        ("hunk", "@@ -0,0 +1 @@"),
        ("add", "+y"),
    ]
    # two single modules are compared with one another, whatever their names
    lines, _ = source_diff({"custom_sso.py": "a\nb\n"}, {"candidate_sso.py": "a\nc\n"}, "old", "new")
    assert [line.text for line in lines] == [
        "--- old/custom_sso.py",
        "+++ new/candidate_sso.py",
        "@@ -1,2 +1,2 @@",
        " a",
        "-b",
        "+c",
    ]
    # a removed line that itself starts with "--" is a removal, not a file header
    lines, _ = source_diff({"f": "-- x\n"}, {"f": ""}, "o", "n")
    assert [line.kind for line in lines] == ["file", "file", "hunk", "del"]
    lines, cut = source_diff({"f": "a\n" * 100}, {"f": "b\n" * 100}, "o", "n", limit=10)
    assert (len(lines), cut) == (10, True)
