"""Signals of ``python -m proxy``: SIGTERM drains the logins in flight and leaves no process; SIGHUP reloads."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx

from tests.proxy.harness import MASTER_KEY, Proxy, ProxyFactory, login, new_client
from tests.proxy.test_metrics import scrape, until_callback

OPERATOR = {"Authorization": f"Bearer {MASTER_KEY}"}

#: Takes 2 s of a 5 s deadline.
SLOW_HOOK = """
import time

def custom_sso_handler(userIDPInfo):
    time.sleep(2)
    return {"models": [], "user_id": userIDPInfo.id, "user_email": userIDPInfo.email,
            "user_role": "internal_user_viewer", "max_budget": 1.0, "budget_duration": "1d"}
"""

VIEWER_HOOK = SLOW_HOOK.replace("    time.sleep(2)\n", "")


def descendants(pid: int) -> set[int]:
    """Every process whose parent chain leads to ``pid``."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found = set()
    for candidate in parents:
        chain = candidate
        for _ in range(64):
            chain = parents.get(chain, 0)
            if chain == pid:
                found.add(candidate)
                break
            if chain <= 1:
                break
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_in_flight(proxy: Proxy, count: int = 1) -> None:
    deadline = time.monotonic() + 20
    while scrape(proxy)["hookjail_hook_calls_in_flight"] < count:
        assert time.monotonic() < deadline, proxy.log()
        time.sleep(0.02)


def test_sigterm_lets_the_login_in_flight_finish_then_exits_0_leaving_no_process(start: ProxyFactory) -> None:
    proxy = start(hook_source=SLOW_HOOK, hook_settings={"timeout": 5})
    workers = descendants(proxy.process.pid)
    assert workers, "the hook's worker template runs under the proxy"
    result: list[httpx.Response] = []
    client = new_client()
    callback = until_callback(client, proxy, "alice")

    def slow_login() -> None:
        result.append(client.get(callback))  # not following: the proxy accepts no new connection meanwhile

    thread = threading.Thread(target=slow_login)
    thread.start()
    try:
        wait_in_flight(proxy)
        workers |= descendants(proxy.process.pid)  # the call's child too
        signalled = time.monotonic()
        proxy.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        # no new connection is accepted while the login finishes
        try:
            httpx.get(f"{proxy.base_url}/health", timeout=2.0)
        except httpx.TransportError:
            pass
        else:
            raise AssertionError("the proxy still accepts connections after SIGTERM")
        assert proxy.process.wait(timeout=5 + 5) == 0  # the hook's deadline plus a few seconds
        exited = time.monotonic() - signalled
    finally:
        thread.join(timeout=30)
        client.close()
    assert result, proxy.log()
    # signed in: the login was not cut off
    assert result[0].status_code == 303, result[0].text
    assert result[0].headers["location"] == "/ui/?login=success"
    assert result[0].cookies.get("token")
    assert exited < 10
    time.sleep(0.2)
    assert [pid for pid in workers if alive(pid)] == [], "worker processes outlived the proxy"
    assert proxy.run(proxy.query("SELECT run_id FROM hook_runs")[0]["run_id"])["outcome"] == "ok"


def test_sigterm_when_idle_exits_0_at_once(start: ProxyFactory) -> None:
    proxy = start(hook_source=VIEWER_HOOK)
    workers = descendants(proxy.process.pid)
    signalled = time.monotonic()
    proxy.process.send_signal(signal.SIGTERM)
    assert proxy.process.wait(timeout=10) == 0
    assert time.monotonic() - signalled < 5
    time.sleep(0.2)
    assert [pid for pid in workers if alive(pid)] == []


def test_sighup_reloads_the_hook_now_and_keeps_the_last_good(start: ProxyFactory) -> None:
    proxy = start(hook_source=VIEWER_HOOK)
    assert scrape(proxy)['hookjail_hook_reloads_total{result="ok"}'] == 0

    proxy.process.send_signal(signal.SIGHUP)  # unchanged: reloaded anyway
    deadline = time.monotonic() + 20
    while scrape(proxy)['hookjail_hook_reloads_total{result="ok"}'] < 1:
        assert time.monotonic() < deadline, proxy.log()
        time.sleep(0.05)
    assert proxy.process.poll() is None
    assert "reloaded hook custom_sso.custom_sso_handler (SIGHUP)" in proxy.log()

    proxy.write_hook("def custom_sso_handler(userIDPInfo)\n")  # does not import
    proxy.process.send_signal(signal.SIGHUP)
    while scrape(proxy)['hookjail_hook_reloads_total{result="failed"}'] < 1:
        assert time.monotonic() < deadline, proxy.log()
        time.sleep(0.05)
    assert "keeping the last good version" in proxy.log()
    health = httpx.get(f"{proxy.base_url}/health", headers=OPERATOR).json()
    assert health["status"] == "ok"
    assert health["hook"]["reloads"] == 1
    assert "SyntaxError" in health["hook"]["last_reload_error"] or "line 1" in health["hook"]["last_reload_error"]
    with new_client() as client:  # the last good version still serves, and the broken file is not retried
        assert login(client, proxy, "alice").status_code == 200
    samples = scrape(proxy)
    assert samples['hookjail_hook_reloads_total{result="failed"}'] == 1
    assert samples['hookjail_hook_reloads_total{result="ok"}'] == 1
