"""Complete logins under load: the real ``hookjail`` (a subprocess) behind the real npm IdP, over HTTP.

Run: python benchmarks/login_load.py [-n 200] [-c 8] [--fail-share 0.1] [--spin-share 0.1 --cpu-seconds 0.5]
     [--split-cpus] [--json]

Starts the test IdP (tests/idp/server.mjs, ``npm ci --prefix tests/idp`` first) and ``python -m proxy`` with a
hook that maps the email to a role, and raises for users named ``fail-…`` (``--fail-share`` of the logins) and
spins until its CPU limit for users named ``spin-…`` (``--spin-share``).
Then ``-n`` complete logins, ``-c`` at a time, each in a fresh HTTP client through the IdP's login and consent
pages, the way a browser does. Prints:

- logins/s over the run, and how the logins ended (HTTP status of the callback);
- the callback's latency, p50 and p99, split by its ``Server-Timing``: ``idp`` (token and userinfo requests),
  ``hook``, ``db``, the rest (the proxy's own work and waiting for its event loop), and the total without
  ``idp`` (what the proxy adds to the identity provider's round trips);
- ``/health`` p50 and p99, polled every 20 ms while the logins run (the event loop's responsiveness);
- the proxy's open file descriptors and processes (itself and every descendant) before and after.

``--profile py-spy`` records the proxy with py-spy (``pip install py-spy``) during the load and prints the
functions that hold the event loop's thread the most (``--profile-out`` keeps the raw samples).
The IdP, the proxy and this script share the machine: compare runs on the same machine, not absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.idp.provider import IdPNotInstalled, free_port, start_idp, stop_idp  # noqa: E402
from tests.proxy.harness import DOMAIN_HOOK, idp_form, proxy_env, start_proxy, write_config  # noqa: E402

#: The harness's domain hook, refusing users whose name starts with "fail-" (a failing hook run) and spinning
#: for users named "spin-…" until the CPU limit stops it.
HOOK = DOMAIN_HOOK.replace(
    "    domain = ",
    '    if (userIDPInfo.id or "").startswith("fail-"):\n        raise RuntimeError("refused on purpose")\n'
    '    if (userIDPInfo.id or "").startswith("spin-"):\n        while True:\n            pass\n'
    "    domain = ",
    1,
)

#: sitecustomize of the proxy for --baseline: fastapi-sso makes its TLS context per login again.
BASELINE = """
import proxy._sso
proxy._sso.share_tls_context = lambda: None
"""

_TIMING = re.compile(r"(\w+);dur=([0-9.]+)")
_TLS = httpx.create_ssl_context()


@dataclass
class Login:
    status: int
    callback_ms: float
    timing: dict[str, float] = field(default_factory=dict)


def login(base_url: str, port: int, user: str) -> Login:
    """One complete login in a fresh client; times the callback request alone."""
    with httpx.Client(timeout=60.0, verify=_TLS) as client:  # plain http; one TLS context, not one per login
        response = client.get(f"{base_url}/sso/key/generate")
        for _ in range(20):
            if response.is_redirect:
                url = urljoin(str(response.url), response.headers["location"])
                parts = urlsplit(url)
                if parts.port == port and parts.path == "/sso/callback":
                    started = time.perf_counter()
                    response = client.get(url)
                    elapsed = (time.perf_counter() - started) * 1000
                    timing = {k: float(v) for k, v in _TIMING.findall(response.headers.get("server-timing", ""))}
                    return Login(response.status_code, elapsed, timing)
                response = client.get(url)
                continue
            action, data = idp_form(response, user)
            response = client.post(action, data=data)
    raise RuntimeError("the login did not come back to the proxy")


def descendants(pid: int) -> list[int]:
    """``pid`` and every process whose parent chain leads to it."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry)] = int(fields[1])
    found = [pid]
    for candidate in parents:
        chain, seen = candidate, 0
        while chain in parents and chain != pid and seen < 64:
            chain, seen = parents[chain], seen + 1
        if chain == pid and candidate != pid:
            found.append(candidate)
    return found


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of the process itself (all its threads, not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def resources(pid: int) -> dict[str, int]:
    processes = descendants(pid)
    return {"fds": len(os.listdir(f"/proc/{pid}/fd")), "processes": len(processes)}


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def poll_health(base_url: str, stop: threading.Event, out: list[float]) -> None:
    with httpx.Client(timeout=30.0) as client:
        while not stop.is_set():
            started = time.perf_counter()
            client.get(f"{base_url}/health")
            out.append((time.perf_counter() - started) * 1000)
            stop.wait(0.02)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--logins", type=int, default=200, help="complete logins in all (default: 200)")
    parser.add_argument("-c", "--concurrency", type=int, default=8, help="logins at a time (default: 8)")
    parser.add_argument("--fail-share", type=float, default=0.1, help="share of failing hook runs (default: 0.1)")
    parser.add_argument(
        "--spin-share",
        type=float,
        default=0.0,
        help="share of hook runs that spin until their CPU limit (--cpu-seconds) stops them (default: 0)",
    )
    parser.add_argument("--cpu-seconds", type=float, default=2.0, help="hook_settings.cpu_seconds (default: 2)")
    parser.add_argument("--warmup", type=int, default=16, help="logins before measuring, -c at a time (default: 16)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--profile", choices=("py-spy",), help="sample the proxy during the load")
    parser.add_argument("--profile-out", metavar="PATH", help="keep py-spy's raw samples (collapsed stacks)")
    parser.add_argument("--proxy-arg", action="append", default=[], help="extra argument for the proxy")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="measure the proxy as it was before it shared one TLS context between logins: fastapi-sso then "
        "builds one per login (proxy._sso.share_tls_context disabled through a sitecustomize)",
    )
    parser.add_argument(
        "--db-dir",
        metavar="DIR",
        help="keep the SQLite file in DIR (e.g. /dev/shm: no fsync at commit) (default: a temporary directory)",
    )
    parser.add_argument(
        "--split-cpus",
        action="store_true",
        help="give the proxy (and its hook workers) the last CPU, and the IdP and this load generator the others, "
        "as in a deployment where the IdP runs elsewhere (needs 2 CPUs or more)",
    )
    args = parser.parse_args()

    cpus = sorted(os.sched_getaffinity(0))
    if args.split_cpus and len(cpus) < 2:
        parser.error("--split-cpus needs 2 CPUs or more")
    proxy_cpus, others = ({cpus[-1]}, set(cpus[:-1])) if args.split_cpus else (set(cpus), set(cpus))
    os.sched_setaffinity(0, others)  # inherited by the IdP
    work = Path(tempfile.mkdtemp(prefix="hookjail-load-"))
    port = free_port()
    try:
        idp, idp_process = start_idp([f"http://127.0.0.1:{port}/sso/callback"])
    except IdPNotInstalled as missing:
        sys.exit(str(missing))
    proxy = None
    db_dir: Path | None = None
    try:
        config = write_config(
            work / "conf",
            hook_source=HOOK,
            hook_settings={"timeout": 10, "max_concurrency": 8, "cpu_seconds": args.cpu_seconds},
        )
        env = proxy_env(idp, HOOKJAIL_SSO_RATE_LIMIT="off")
        if args.baseline:
            (work / "site").mkdir()
            (work / "site" / "sitecustomize.py").write_text(BASELINE)
            env["PYTHONPATH"] = f"{work / 'site'}{os.pathsep}{env['PYTHONPATH']}"
        extra = ("--log-level", "warning", *args.proxy_arg)
        if args.db_dir:
            db_dir = Path(tempfile.mkdtemp(prefix="hookjail-load-db-", dir=args.db_dir))
            extra = ("--database-url", f"sqlite:///{db_dir / 'hookjail.db'}", *extra)
        os.sched_setaffinity(0, proxy_cpus)  # inherited by the proxy and every worker it forks
        try:
            proxy = start_proxy(config, port, env, work_dir=work, extra_args=extra)
        finally:
            os.sched_setaffinity(0, others)
        pid = proxy.process.pid
        # warm up at the same concurrency: the database's connection pool and the runner's reserve children
        # reach their working size before the "before" count
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(lambda index: login(proxy.base_url, port, f"warm{index}"), range(args.warmup)))
        time.sleep(1.0)
        before = resources(pid)

        users = []
        fail_every = round(1 / args.fail_share) if args.fail_share > 0 else 0
        spin_every = round(1 / args.spin_share) if args.spin_share > 0 else 0
        for index in range(args.logins):
            failing = fail_every and index % fail_every == fail_every - 1
            spinning = spin_every and index % spin_every == spin_every // 2
            users.append(f"fail-{index}" if failing else f"spin-{index}" if spinning else f"user{index}")

        profiler = None
        profile_path = Path(args.profile_out or work / "profile.txt")
        if args.profile == "py-spy":
            spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            profiler = subprocess.Popen(
                [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "200", "-o", str(profile_path)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)

        stop = threading.Event()
        health: list[float] = []
        poller = threading.Thread(target=poll_health, args=(proxy.base_url, stop, health), daemon=True)
        poller.start()
        started = time.perf_counter()
        cpu_before = cpu_seconds(pid)
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(lambda user: login(proxy.base_url, port, user), users))
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(pid) - cpu_before
        stop.set()
        poller.join()
        if profiler is not None:
            profiler.send_signal(2)
            profiler.wait(timeout=30)
        time.sleep(1.0)
        after = resources(pid)
    finally:
        if proxy is not None:
            proxy.stop()
        stop_idp(idp_process)
        if not args.profile_out:
            shutil.rmtree(work, ignore_errors=True)
        if db_dir is not None:
            shutil.rmtree(db_dir, ignore_errors=True)

    def split(name: str) -> list[float]:
        return [r.timing.get(name, 0.0) for r in results]

    totals = [r.callback_ms for r in results]
    server_totals = split("total")
    rest = [r.timing.get("total", 0.0) - sum(r.timing.get(k, 0.0) for k in ("idp", "hook", "db")) for r in results]
    no_idp = [r.timing.get("total", 0.0) - r.timing.get("idp", 0.0) for r in results]
    rows = {
        "callback (client)": totals,
        "total (server)": server_totals,
        "idp": split("idp"),
        "hook": split("hook"),
        "db": split("db"),
        "rest": rest,
        "total - idp": no_idp,
        "/health": health,
    }
    report: dict[str, Any] = {
        "logins": len(results),
        "concurrency": args.concurrency,
        "seconds": round(elapsed, 2),
        "logins_per_s": round(len(results) / elapsed, 1),
        "statuses": dict(Counter(r.status for r in results)),
        # the proxy process's CPU per login (its event loop and database threads; /health polls included)
        "proxy_cpu_ms_per_login": round(cpu * 1000 / len(results), 1),
        "ms": {
            name: {"p50": round(percentile(v, 0.5), 1), "p99": round(percentile(v, 0.99), 1), "n": len(v)}
            for name, v in rows.items()
        },
        "before": before,
        "after": after,
    }
    if args.profile == "py-spy" and profile_path.exists():
        report["profile"] = summarize_profile(profile_path)
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"{report['logins']} logins, {args.concurrency} at a time, in {report['seconds']} s: "
        f"{report['logins_per_s']} logins/s; callback statuses {report['statuses']}; "
        f"proxy CPU {report['proxy_cpu_ms_per_login']} ms per login"
    )
    print(f"{'ms':<20}{'p50':>10}{'p99':>10}")
    for name, values in report["ms"].items():
        print(f"{name:<20}{values['p50']:>10}{values['p99']:>10}")
    print(
        f"proxy before: {before['fds']} fds, {before['processes']} processes; after: {after['fds']} fds, "
        f"{after['processes']} processes"
    )
    if "profile" in report:
        print("event-loop thread, top self+children share of samples (py-spy):")
        for line in report["profile"]:
            print(f"  {line}")
    return 0


def summarize_profile(path: Path, top: int = 25) -> list[str]:
    """What held the event loop's thread: each function's share of the busy samples it appears in (py-spy raw
    format: one collapsed stack and its count per line). Other threads (aiosqlite's, ...) and samples idle in
    epoll are left out, and so are the frames present in nearly every busy sample (the event loop itself,
    uvicorn, the middleware)."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        if frames[0].startswith("Thread._bootstrap"):
            continue  # another thread
        leaf = frames[-1]
        if leaf.startswith(("EpollSelector.select", "select (")):
            continue  # idle
        count = int(count_text)
        total += count
        for frame in {f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0] + ")" for f in frames}:
            inclusive[frame] += count
    lines = []
    for frame, n in inclusive.most_common():
        if n < 0.8 * total:
            lines.append(f"{100 * n / max(total, 1):5.1f}%  {frame}")
        if len(lines) == top:
            break
    return [f"{total} busy samples of the event loop's thread", *lines]


if __name__ == "__main__":
    sys.exit(main())
