"""``--log-format json``: one JSON object per line, a line per login and per hook run, and no secret in any line."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from proxy._logging import JsonFormatter, RedactQuery, redact_query
from tests.idp.provider import IdP
from tests.local_server import LocalServer
from tests.proxy.harness import MASTER_KEY, ProxyFactory, login, new_client

OPERATOR = {"Authorization": f"Bearer {MASTER_KEY}"}

#: Refuses users named fail*; prints what it got (never logged by the proxy, kept in the run record).
HOOK = """
from sdk import SSOUserDefinedValues

async def custom_sso_handler(userIDPInfo):
    print("hook saw", userIDPInfo.model_dump())
    if userIDPInfo.id.startswith("fail"):
        raise RuntimeError("refused on purpose")
    return SSOUserDefinedValues(
        models=[], user_id=userIDPInfo.id, user_email=userIDPInfo.email,
        user_role="internal_user_viewer", max_budget=1.0, budget_duration="1d",
    )
"""


def record(message: str, *args: Any, **extra: Any) -> logging.LogRecord:
    entry = logging.LogRecord("hookjail.login", logging.INFO, __file__, 1, message, args, None)
    entry.__dict__.update(extra)
    return entry


def test_a_json_line_is_one_object_with_the_event_fields() -> None:
    line = JsonFormatter().format(
        record(
            "hook run %s ok\nforged line\u2028",
            "r1",
            event="hook_run",
            run_id="r1",
            outcome="ok",
            duration_ms=3.5,
            subject="alice",
            provider="generic",
            cookie="not copied",
        )
    )
    assert "\n" not in line
    assert "\u2028" not in line
    entry = json.loads(line)
    assert entry["message"] == "hook run r1 ok\nforged line\u2028"
    assert {k: entry[k] for k in ("event", "run_id", "outcome", "duration_ms", "subject", "provider")} == {
        "event": "hook_run",
        "run_id": "r1",
        "outcome": "ok",
        "duration_ms": 3.5,
        "subject": "alice",
        "provider": "generic",
    }
    assert entry["level"] == "info"
    assert entry["logger"] == "hookjail.login"
    assert "cookie" not in entry
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])


def test_an_exception_is_inside_the_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        entry = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), __import__("sys").exc_info())
    parsed = json.loads(JsonFormatter().format(entry))
    assert "ValueError: boom" in parsed["exception"]


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        ("/sso/callback?code=abc&state=def", "/sso/callback?code=[redacted]&state=[redacted]"),
        (
            "/sso/callback?state=s&iss=http%3A%2F%2Fidp&code=c",
            "/sso/callback?state=[redacted]&iss=http%3A%2F%2Fidp&code=[redacted]",
        ),
        ("/x?id_token=a&access_token=b&api_key=k", "/x?id_token=[redacted]&access_token=[redacted]&api_key=[redacted]"),
        ("/user/info?user_id=alice", "/user/info?user_id=alice"),
        ("/health", "/health"),
        ("/sso/callback?error=access_denied&code_challenge=x", "/sso/callback?error=access_denied&code_challenge=x"),
    ],
)
def test_the_access_log_redacts_secret_parameters(target: str, shown: str) -> None:
    assert redact_query(target) == shown
    access = ("1.2.3.4", "GET", target, "1.1", 200)
    entry = logging.LogRecord("uvicorn.access", logging.INFO, "", 1, '%s - "%s %s HTTP/%s" %d', access, None)
    RedactQuery().filter(entry)
    assert entry.getMessage() == f'1.2.3.4 - "GET {shown} HTTP/1.1" 200'


# --- the real proxy and IdP: nothing secret in the log -------------------------------------------------------


class TokenRecorder(LocalServer):
    """Stands between the proxy and the IdP's token endpoint, keeping every token the IdP issues."""

    def __init__(self, idp: IdP) -> None:
        self.idp = idp
        self.tokens: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = httpx.post(f"{recorder.idp.issuer}/token", content=body, headers=headers, timeout=10.0)
                try:
                    payload = answer.json()
                except ValueError:
                    payload = {}
                recorder.tokens += [str(v) for k, v in payload.items() if k.endswith("token") and v]
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("content-type", "application/json"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        super().__init__(Handler)
        self.url = f"http://127.0.0.1:{self.port}/token"


@pytest.fixture
def recorder(idp: IdP) -> Iterator[TokenRecorder]:
    recording = TokenRecorder(idp)
    yield recording
    recording.close()


def test_json_logs_have_a_line_per_login_and_run_and_no_secret(
    start: ProxyFactory, idp: IdP, recorder: TokenRecorder
) -> None:
    proxy = start(
        hook_source=HOOK,
        env={"GENERIC_TOKEN_ENDPOINT": recorder.url},
        extra_args=("--log-format", "json", "--log-level", "debug"),
    )
    secrets: dict[str, str] = {"master key": MASTER_KEY, "client secret": idp.client_secret}
    for user in ("alice", "failbob", "carol"):
        with new_client() as client:
            response = login(client, proxy, user)
            assert response.status_code == (502 if user.startswith("fail") else 200)
            callback = next(r for r in (*response.history, response) if urlsplit(str(r.url)).path == "/sso/callback")
            query = parse_qs(urlsplit(str(callback.url)).query)
            secrets[f"{user}'s code"] = query["code"][0]
            secrets[f"{user}'s state"] = query["state"][0]
            for cookie in client.cookies.jar:
                if cookie.value and len(cookie.value) >= 16:  # the session, the login's and the IdP's cookies
                    secrets[f"{user}'s cookie {cookie.name}"] = cookie.value
            if not user.startswith("fail"):
                assert client.cookies.get("token")
            for request in response.history:
                for name in ("hookjail_oauth",):
                    value = request.cookies.get(name)
                    if value:
                        secrets[f"{user}'s login cookie"] = value
    for path in ("/metrics", "/health", "/hook/runs?limit=5"):
        assert httpx.get(f"{proxy.base_url}{path}", headers=OPERATOR).status_code == 200
    assert len(recorder.tokens) >= 6  # an access token and an id token per login
    for index, token in enumerate(recorder.tokens):
        secrets[f"token {index}"] = token
    proxy.stop()

    log = proxy.log()
    for name, secret in secrets.items():
        assert secret not in log, f"the log shows the {name}"
    entries = [json.loads(line) for line in log.splitlines() if line.strip()]  # every line is one JSON object

    logins = [e for e in entries if e.get("event") == "login"]
    runs = [e for e in entries if e.get("event") == "hook_run"]
    assert [(e["subject"], e["outcome"], e["status"]) for e in logins] == [
        ("alice", "ok", 303),
        ("failbob", "raised", 502),
        ("carol", "ok", 303),
    ]
    assert [(e["subject"], e["outcome"]) for e in runs] == [("alice", "ok"), ("failbob", "raised"), ("carol", "ok")]
    for login_entry, run_entry in zip(logins, runs, strict=True):
        assert login_entry["run_id"] == run_entry["run_id"]
        assert login_entry["provider"] == run_entry["provider"] == "generic"
        assert login_entry["duration_ms"] >= run_entry["duration_ms"] > 0
        assert {"idp_ms", "hook_ms", "db_ms"} <= set(login_entry)
    # uvicorn's own lines are JSON too, its access log without the code and state
    assert any(e["logger"] == "uvicorn.access" and "/sso/callback?code=[redacted]" in e["message"] for e in entries)
