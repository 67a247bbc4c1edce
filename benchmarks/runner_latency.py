"""Latency and throughput of one hook call: in-process vs a fresh interpreter per call vs hookjail.

Run: python benchmarks/runner_latency.py [-n 300] [--concurrency 8]

All designs run in the same process and the same run, so compare them as ratios: the machines are shared
and noisy, absolute numbers drift from run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from runner import HookRunner, HookSpec, Limits, Sandbox

HOOK = """
import hashlib

async def custom_sso_handler(info):
    domain = info["email"].rsplit("@", 1)[-1]
    role = "proxy_admin" if domain == "admins.example.com" else "internal_user"
    return {
        "user_id": info["id"],
        "user_email": info["email"],
        "user_role": role,
        "models": ["gpt-4o-mini"] if role == "internal_user" else ["gpt-4o", "gpt-4o-mini"],
        "max_budget": 10.0,
        "budget_duration": "30d",
        "tag": hashlib.sha256(info["id"].encode()).hexdigest()[:8],
    }
"""
# The same hook as the proxy runs it: the sdk's adapter hands it an OpenID object (pydantic in the template).
SDK_HOOK = HOOK.replace('info["email"]', "info.email").replace('info["id"]', "info.id")
OPENID = {"id": "u1", "email": "alice@example.com", "first_name": "Alice", "provider": "generic"}
SPAWN_SCRIPT = (
    "import asyncio, importlib.util, json, sys\n"
    "spec = importlib.util.spec_from_file_location('hook', sys.argv[1])\n"
    "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
    "print(json.dumps(asyncio.run(m.custom_sso_handler(json.loads(sys.argv[2])))))\n"
)


# Runs in a fresh interpreter: confines itself like a worker template, then forks children and times each
# per-child step (median over the children, in ms). Prints one JSON object.
LAYER_SCRIPT = """
import asyncio, json, os, statistics, sys, tempfile, time
from runner._child import apply_limits
from runner._confine import Confinement
from runner._protocol import Configure
from runner._runner import _python_paths
n = int(sys.argv[1])
tmp_root = tempfile.mkdtemp(prefix="hookjail-bench-")
start = time.perf_counter()
conf = Confinement.prepare(network=False, read_paths=_python_paths(), tmp_root=tmp_root, strict=True)
prepare_ms = (time.perf_counter() - start) * 1e3
config = Configure(path="", function="f")
steps = {"fork+exit": [], "rlimits": [], "landlock": [], "seccomp": [], "event loop": []}
for i in range(n):
    tmp_dir = os.path.join(tmp_root, f"c{i}")
    os.mkdir(tmp_dir)
    r, w = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        t1 = time.perf_counter(); apply_limits(config, 1 << 40)
        t2 = time.perf_counter(); conf._child_landlock.restrict(None); conf._child_landlock.close()
        t3 = time.perf_counter(); conf._child_seccomp.load()
        t4 = time.perf_counter(); asyncio.new_event_loop()
        t5 = time.perf_counter()
        os.write(w, json.dumps([t2 - t1, t3 - t2, t4 - t3, t5 - t4]).encode())
        os._exit(0)
    os.close(w)
    data = os.read(r, 1000)
    os.waitpid(pid, 0)
    total = time.perf_counter() - t0
    os.close(r)
    parts = json.loads(data)
    steps["fork+exit"].append(total - sum(parts))
    for name, value in zip(["rlimits", "landlock", "seccomp", "event loop"], parts):
        steps[name].append(value)
result = {name: statistics.median(values) * 1e3 for name, values in steps.items()}
result["template prepare (once)"] = prepare_ms
print(json.dumps(result))
"""


def _layer_costs(children: int) -> dict[str, float]:
    """Median cost of each per-child step, measured in a confined template of its own."""
    out = subprocess.run(
        [sys.executable, "-c", LAYER_SCRIPT, str(children)], capture_output=True, text=True, check=True
    ).stdout
    return dict(json.loads(out))


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": ordered[len(ordered) // 2] * 1e3, "p95": q[94] * 1e3, "p99": q[98] * 1e3}


async def _sequential(call: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    for _ in range(min(20, n)):  # warm up
        await call()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
    return samples


async def _spaced(call: Callable[[], Awaitable[Any]], n: int, gap: float = 0.01) -> list[float]:
    """Latency of calls that arrive on an idle system, as logins do: one every ``gap`` seconds."""
    samples = []
    for _ in range(n):
        await asyncio.sleep(gap)
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
    return samples


async def _throughput(call: Callable[[], Awaitable[Any]], callers: int, per_caller: int) -> float:
    async def worker() -> None:
        for _ in range(per_caller):
            await call()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(callers)))
    return callers * per_caller / (time.perf_counter() - start)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="sequential calls per design (default 300)")
    parser.add_argument("--spawn-n", type=int, default=40, help="calls for the spawn-per-call design (slow)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent callers for calls/s")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="hookjail-bench-"))
    hook_path = workdir / "custom_sso.py"
    hook_path.write_text(HOOK)
    rows: dict[str, dict[str, float]] = {}

    module_spec = importlib.util.spec_from_file_location("bench_hook", hook_path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)

    async def in_process() -> Any:
        return await module.custom_sso_handler(dict(OPENID))

    rows["in-process await (no isolation)"] = {
        **_percentiles(await _sequential(in_process, args.n)),
        "idle p50": _percentiles(await _spaced(in_process, args.n))["p50"],
        "calls/s": await _throughput(in_process, args.concurrency, args.n),
    }

    async def spawn() -> Any:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-c",
            SPAWN_SCRIPT,
            str(hook_path),
            json.dumps(OPENID),
            stdout=subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin"},
        )
        out, _ = await proc.communicate()
        return json.loads(out)

    rows["fresh python per call"] = {
        **_percentiles(await _sequential(spawn, args.spawn_n)),
        "idle p50": _percentiles(await _spaced(spawn, args.spawn_n))["p50"],
        "calls/s": await _throughput(spawn, args.concurrency, max(1, args.spawn_n // args.concurrency)),
    }

    designs = {
        "hookjail, sandbox off, no prefork": (Sandbox(enabled=False), 0),
        "hookjail, sandbox off": (Sandbox(enabled=False), 2),
        "hookjail, all layers, no prefork": (Sandbox(), 0),
        "hookjail, all layers": (Sandbox(), 2),
    }
    sdk_hook_path = workdir / "custom_sso_sdk.py"
    sdk_hook_path.write_text(SDK_HOOK)
    specs = {name: HookSpec(path=hook_path, function="custom_sso_handler") for name in designs}
    designs["hookjail, all layers, sdk adapter (as the proxy)"] = (Sandbox(), 2)
    specs["hookjail, all layers, sdk adapter (as the proxy)"] = HookSpec(
        path=sdk_hook_path, function="custom_sso_handler", adapter="sdk._worker:openid_from_dict"
    )
    for name, (sandbox, prefork) in designs.items():
        spec = specs[name]
        limits = Limits(timeout=10, max_concurrency=args.concurrency, prefork=prefork)
        async with HookRunner(spec, limits, sandbox) as runner:

            async def jailed(runner: HookRunner = runner) -> Any:
                return (await runner.call(OPENID)).value

            rows[name] = {
                **_percentiles(await _sequential(jailed, args.n)),
                "idle p50": _percentiles(await _spaced(jailed, args.n))["p50"],
                "calls/s": await _throughput(jailed, args.concurrency, args.n // 2),
            }

    width = max(len(name) for name in rows)
    print("p50/p95/p99: back-to-back sequential calls; idle p50: one call every 10 ms (as logins arrive);")
    print(f"calls/s: {args.concurrency} concurrent callers\n")
    print(f"{'design':<{width}}  {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'idle p50':>9} {'calls/s':>9}")
    for name, row in rows.items():
        print(
            f"{name:<{width}}  {row['p50']:8.2f} {row['p95']:8.2f} {row['p99']:8.2f} {row['idle p50']:9.2f}"
            f" {row['calls/s']:9.0f}"
        )
    spawn_p50 = rows["fresh python per call"]["p50"]
    full = rows["hookjail, all layers"]
    print(
        f"\nhookjail (all layers) vs a fresh python per call: {spawn_p50 / full['p50']:.0f}x faster back to back, "
        f"{rows['fresh python per call']['idle p50'] / full['idle p50']:.0f}x on an idle system (p50)"
    )
    layers = _layer_costs(200)
    print("\nper-child steps (median of 200 forked children, ms; all but fork+exit run before the call arrives):")
    for name, value in layers.items():
        print(f"  {name:<24} {value:7.3f}")
    if args.json:
        print(json.dumps({"designs": rows, "per_child_ms": layers}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
