"""Latency and throughput of one hook call: today's design vs the new default vs a fresh interpreter per call.

Run: python benchmarks/runner_latency.py [-n 200] [--concurrency 8] [--baseline d7ce0f8]

"Today's design" is the runner and sdk of ``--baseline`` (default d7ce0f8, the last revision whose worker
template imported the hook: its module body ran once, in the template). The new default runs no hook code in
the template: it compiles the hook, pre-imports the installed modules the hook names, and each call's child
executes the module body before the handler. The baseline's ``runner/`` and ``sdk/`` are extracted with
``git archive`` into a temporary directory; each design is measured in a subprocess of this script whose
``sys.path`` starts with the tree it measures (the runner starts its templates from its own directory, so the
old tree's templates run the old code). Everything runs in the same run, so compare the ratios: the machines
are shared and noisy, absolute numbers drift from run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "examples" / "litellm_compat" / "custom_sso.py"
ADAPTER = "sdk._worker:openid_from_dict"  # sdk._worker.ADAPTER, spelled out: the parent imports no sdk

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

# The seed's handler (examples/litellm_compat/custom_sso.py) with its imports, prints and return value, minus
# its one host call (user_info), so that it can be compared with the same handler without any import.
SEED_IMPORTS_HOOK = """
from fastapi import Request
from fastapi_sso.sso.base import OpenID

from litellm.proxy._types import LitellmUserRoles, SSOUserDefinedValues
from litellm.proxy.management_endpoints.internal_user_endpoints import new_user, user_info
from litellm.proxy.management_endpoints.team_endpoints import add_new_member


async def custom_sso_handler(userIDPInfo: OpenID) -> SSOUserDefinedValues:
    print("inside custom sso handler")
    print(f"userIDPInfo: {userIDPInfo}")
    if userIDPInfo.id is None:
        raise ValueError(f"No ID found for user. userIDPInfo.id is None {userIDPInfo}")
    return SSOUserDefinedValues(
        models=[],
        user_id=userIDPInfo.id,
        user_email=userIDPInfo.email,
        user_role=LitellmUserRoles.INTERNAL_USER.value,
        max_budget=0.01,
        budget_duration="1d",
    )
"""
# The same handler without a single import: a plain dict instead of the sdk's pydantic model.
NO_IMPORTS_HOOK = """
async def custom_sso_handler(userIDPInfo):
    print("inside custom sso handler")
    print(f"userIDPInfo: {userIDPInfo}")
    if userIDPInfo.id is None:
        raise ValueError(f"No ID found for user. userIDPInfo.id is None {userIDPInfo}")
    return {
        "models": [],
        "user_id": userIDPInfo.id,
        "user_email": userIDPInfo.email,
        "user_role": "internal_user",
        "max_budget": 0.01,
        "budget_duration": "1d",
    }
"""
# The sdk hook with timestamps (CLOCK_MONOTONIC, comparable across processes): when its module body ran, when
# its handler started and ended. Only for the breakdown of one call, never for the table.
TRACE_HOOK = "import time\n_BODY = time.perf_counter()\n" + SDK_HOOK.replace(
    "):\n", "):\n    start = time.perf_counter()\n", 1
).replace("    return {", '    return {\n        "t": [_BODY, start, time.perf_counter()],', 1)
HOOK_FILES = {
    "hook.py": HOOK,
    "sdk_trace.py": TRACE_HOOK,
    "sdk_hook.py": SDK_HOOK,
    "seed_imports.py": SEED_IMPORTS_HOOK,
    "no_imports.py": NO_IMPORTS_HOOK,
}
OPENID = {"id": "u1", "email": "alice@example.com", "first_name": "Alice", "provider": "generic"}
SPAWN_SCRIPT = (
    "import asyncio, importlib.util, json, sys\n"
    "spec = importlib.util.spec_from_file_location('hook', sys.argv[1])\n"
    "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
    "print(json.dumps(asyncio.run(m.custom_sso_handler(json.loads(sys.argv[2])))))\n"
)


@dataclass(frozen=True)
class Design:
    """One row: which tree's runner ("new", "base" or None for no runner), which hook, how it is run."""

    label: str
    tree: str | None
    hook: str  # a file of HOOK_FILES, or "seed" for examples/litellm_compat/custom_sso.py
    adapter: bool = True
    sandbox: bool = True
    host: bool = False  # answer host calls from an in-memory directory that knows the user
    trace: bool = False  # only for the breakdown of one call (the timestamped sdk hook)


#: The steps of one call that the breakdown times (see _traced).
BREAKDOWN = (
    "call -> handler starts",
    "  of which module body, checks, adapter",
    "handler",
    "handler ends -> parent has the result",
    "parent has the result -> call returns",
    "  of which _Run.finish (kill, top up, wait for the reap)",
    "whole call",
)
#: What a worker hands the loop: the call to time, and what it says about itself.
Setup = tuple[Callable[[], Awaitable[Any]], dict[str, Any]]

# Run order: the designs compared by a ratio run next to each other, so that a noisy minute hits both.
DESIGNS = {
    "base-sdk": Design("today's design ({rev}), all layers, sdk adapter", "base", "sdk_hook.py"),
    "new-sdk": Design("new default, all layers, sdk adapter", "new", "sdk_hook.py"),
    "new-nosandbox": Design("new default, sandbox off, sdk adapter", "new", "sdk_hook.py", sandbox=False),
    "new-seedimports": Design("new default, seed's imports, no host call", "new", "seed_imports.py"),
    "new-noimports": Design("new default, same handler, no imports", "new", "no_imports.py"),
    "base-seedimports": Design("today's design, seed's imports, no host call", "base", "seed_imports.py"),
    "new-seed": Design("new default, seed as shipped (1 host call)", "new", "seed", host=True),
    "base-seed": Design("today's design, seed as shipped (1 host call)", "base", "seed", host=True),
    "spawn": Design("fresh python per call (no sandbox)", None, "hook.py", adapter=False, sandbox=False),
    "inprocess": Design("in-process await (no isolation)", None, "hook.py", adapter=False, sandbox=False),
    "base-trace": Design("today's design", "base", "sdk_trace.py", trace=True),
    "new-trace": Design("new default", "new", "sdk_trace.py", trace=True),
}


# Runs in a fresh interpreter: confines itself like a worker template, then forks children and times each
# per-child step (median over the children, in ms). Prints one JSON object.
LAYER_SCRIPT = """
import asyncio, json, os, statistics, sys, time
from runner._child import apply_limits
from runner._confine import Confinement
from runner._protocol import Configure
from runner._runner import _python_paths
n = int(sys.argv[1])
tmp_root = sys.argv[2]
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

# Runs in a fresh interpreter of the new tree, as a worker template does and then as a call's child does:
# compile and pre-import the hook, then time executing its module body (median over forked children, ms).
BODY_SCRIPT = """
import json, os, statistics, sys, time
sys.path.insert(0, sys.argv[1])
from sdk import _compat
_compat.install()  # what importing the adapter (sdk._worker) does in a template
from runner import _hookcode
from runner._runner import _RUNNER_DIR, _SDK_DIR, _python_paths
hook = _hookcode.compile_hook(sys.argv[2])
_hookcode.preimport(hook, (*_python_paths(), _RUNNER_DIR, _SDK_DIR))
spec = _hookcode.prepare_import(hook)
times = []
for _ in range(int(sys.argv[3])):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        t0 = time.perf_counter(); _hookcode.execute(spec); t1 = time.perf_counter()
        os.write(w, json.dumps(t1 - t0).encode())
        os._exit(0)
    os.close(w)
    times.append(json.loads(os.read(r, 100)))
    os.waitpid(pid, 0)
    os.close(r)
print(json.dumps(statistics.median(times) * 1e3))
"""


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": ordered[len(ordered) // 2] * 1e3, "p95": q[94] * 1e3, "p99": q[98] * 1e3}


async def _sequential(call: Callable[[], Awaitable[Any]], n: int) -> list[float]:
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


async def _throughput(call: Callable[[], Awaitable[Any]], callers: int, per_caller: int) -> list[float]:
    """``[calls, seconds]`` of ``callers`` concurrent callers making ``per_caller`` calls each."""

    async def worker() -> None:
        for _ in range(per_caller):
            await call()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(callers)))
    return [callers * per_caller, time.perf_counter() - start]


# --- one design, in a subprocess whose sys.path starts with the tree it measures -------------------------------
# It sets up, warms up, prints one JSON line about itself, then answers the parent's commands on stdin
# ("seq K", "idle K", "tput K") with one JSON line each, so that the parent can interleave the designs.


async def _jailed(design: Design, hook_path: Path, args: argparse.Namespace, stack: AsyncExitStack) -> Setup:
    sys.path.insert(0, args.tree)
    from runner import HookRunner, HookSpec, Limits, Sandbox

    runner_file = str(Path(sys.modules["runner"].__file__ or "").resolve())
    if not runner_file.startswith(str(Path(args.tree).resolve()) + os.sep):
        raise SystemExit(f"{args.worker}: imported {runner_file}, not the runner of {args.tree}")
    host = None
    if design.host:
        from sdk.testing import FakeHost

        # An in-memory directory that knows the user, so the seed's user_info finds it (an empty one answers
        # NotFound, on which the seed raises "Failed custom auth").
        host = FakeHost(users=[{"user_id": OPENID["id"], "user_email": OPENID["email"]}])
    spec = HookSpec(path=hook_path, function="custom_sso_handler", adapter=ADAPTER if design.adapter else None)
    limits = Limits(timeout=10, max_concurrency=args.concurrency)
    sandbox = Sandbox() if design.sandbox else Sandbox(enabled=False)
    runner = await stack.enter_async_context(HookRunner(spec, limits, sandbox))
    first = await runner.call(OPENID, host=host)
    if not isinstance(first.value, dict) or first.value.get("user_id") != OPENID["id"]:
        raise SystemExit(f"{args.worker}: unexpected result {first.value!r}")

    async def call() -> Any:
        return (await runner.call(OPENID, host=host)).value

    if design.trace:
        call = _traced(runner, sys.modules["runner._runner"])

    ready = getattr(runner._template, "ready", None)
    info = {
        "runner": runner_file,
        "layers": runner.report_layers() if hasattr(runner, "report_layers") else runner.layers,
        "preimported": getattr(ready, "preimported", None),
        "host calls per call": len(first.host_calls),
    }
    return call, info


def _traced(runner: Any, runner_module: Any) -> Callable[[], Awaitable[Any]]:
    """A call that returns its timestamps: ``[called, module body ran, handler started, handler ended,
    result received by the parent, seconds in _Run.finish (-1 without one), returned]``. Wraps two methods of the
    runner's private ``_Run`` (in this process only) to see when the result arrived and how long the end of the
    call took; the runner itself is unchanged."""
    received: list[float] = []
    finishing: list[float] = []
    run_class = runner_module._Run
    success = run_class._success

    def timed_success(self: Any, value: Any) -> Any:
        received.append(time.perf_counter())
        return success(self, value)

    run_class._success = timed_success
    finish = getattr(run_class, "finish", None)
    if finish is not None:  # the new default waits for the child to be reaped before a call returns

        async def timed_finish(self: Any) -> None:
            start = time.perf_counter()
            await finish(self)
            finishing.append(time.perf_counter() - start)

        run_class.finish = timed_finish

    async def call() -> Any:
        received.clear()
        finishing.clear()
        called = time.perf_counter()
        value = (await runner.call(OPENID)).value
        returned = time.perf_counter()
        return [called, *value["t"], received[-1], finishing[-1] if finishing else -1.0, returned]

    return call


async def _unjailed(hook_path: Path, in_process: bool) -> Setup:
    if in_process:
        module_spec = importlib.util.spec_from_file_location("bench_hook", hook_path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)

        async def direct() -> Any:
            return await module.custom_sso_handler(dict(OPENID))

        return direct, {}

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

    return spawn, {}


async def _worker(args: argparse.Namespace) -> None:
    design = DESIGNS[args.worker]
    hook_path = SEED if design.hook == "seed" else Path(args.workdir) / design.hook
    loop = asyncio.get_running_loop()
    async with AsyncExitStack() as stack:
        if design.tree is None:
            call, info = await _unjailed(hook_path, in_process=args.worker == "inprocess")
        else:
            call, info = await _jailed(design, hook_path, args, stack)
        await _sequential(call, args.warmup)
        print(json.dumps(info), flush=True)
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line.strip():
                return
            what, count = line.split()
            if what == "seq":
                out = await _sequential(call, int(count))
            elif what == "idle":
                out = await _spaced(call, int(count))
            elif what == "trace":
                out = []
                for _ in range(int(count)):
                    await asyncio.sleep(0.01)
                    out.append(await call())
            else:
                out = await _throughput(call, args.concurrency, int(count))
            print(json.dumps(out), flush=True)


# --- the parent: one subprocess per design, driven in interleaved rounds, one table ---------------------------


class _Design:
    """The parent's handle on one design's worker subprocess."""

    def __init__(self, key: str, tree: str | None, workdir: Path, args: argparse.Namespace) -> None:
        self.key = key
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", key, "--workdir", str(workdir)]
        command += ["--concurrency", str(args.concurrency), "--warmup", str(args.warmup)]
        if tree is not None:
            command += ["--tree", tree]
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in close()
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env, cwd=workdir
        )
        self.info: dict[str, Any] = self._read()
        self.seq: list[float] = []
        self.idle: list[float] = []
        self.calls = 0.0
        self.seconds = 0.0
        self.traces: list[list[float]] = []

    def _read(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self.stderr.seek(0)
            raise SystemExit(f"design {self.key!r} failed:\n{self.stderr.read()}")
        return json.loads(line)

    def ask(self, what: str, count: int) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{what} {count}\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()

    def row(self) -> dict[str, Any]:
        if self.traces:
            return {"breakdown": _breakdown(self.traces), **self.info}
        return {
            **_percentiles(self.seq),
            "idle p50": _percentiles(self.idle)["p50"],
            "calls/s": self.calls / self.seconds,
            **self.info,
        }


def _breakdown(traces: list[list[float]]) -> dict[str, float | None]:
    """Median of each step of one idle call, in ms, from :func:`_traced`'s timestamps."""
    steps: dict[str, list[float]] = {name: [] for name in BREAKDOWN}
    for called, body, start, end, received, finishing, returned in traces:
        steps["call -> handler starts"].append(start - called)
        if body > called:  # the module body ran in the call's child (not in the template, long before)
            steps["  of which module body, checks, adapter"].append(start - body)
        steps["handler"].append(end - start)
        steps["handler ends -> parent has the result"].append(received - end)
        steps["parent has the result -> call returns"].append(returned - received)
        if finishing >= 0:
            steps["  of which _Run.finish (kill, top up, wait for the reap)"].append(finishing)
        steps["whole call"].append(returned - called)
    return {name: statistics.median(values) * 1e3 if values else None for name, values in steps.items()}


def _extract(rev: str, into: Path) -> str:
    """Extracts ``rev``'s runner/ and sdk/ into ``into``; returns the full commit id."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if commit.returncode:
        raise SystemExit(f"--baseline {rev}: not a commit of {REPO}: {commit.stderr.strip()}")
    archive = subprocess.Popen(["git", "-C", str(REPO), "archive", rev, "runner", "sdk"], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(into)], stdin=archive.stdout, check=True)
    assert archive.stdout is not None
    archive.stdout.close()
    if archive.wait():
        raise SystemExit(f"git archive {rev} runner sdk failed")
    return commit.stdout.strip()


def _measure(designs: list[_Design], args: argparse.Namespace) -> None:
    """``args.rounds`` rounds; in each, every design in turn makes its share of each kind of call. The order
    rotates from round to round, so a noisy minute on the shared machine hits every design alike."""
    for index in range(args.rounds):
        order = designs[index % len(designs) :] + designs[: index % len(designs)]
        for design in order:
            if design.key.endswith("-trace"):
                continue
            n = args.spawn_n if design.key == "spawn" else args.n
            share = max(1, math.ceil(n / args.rounds))
            design.seq += design.ask("seq", share)
            design.idle += design.ask("idle", share)
            # Each of the concurrent callers makes n/4 calls in all (n/8 for the fresh python).
            per_caller = max(1, math.ceil((n / 8 if design.key == "spawn" else n / 4) / args.rounds))
            calls, seconds = design.ask("tput", per_caller)
            design.calls += calls
            design.seconds += seconds
        for design in order:
            if design.key.endswith("-trace"):
                design.traces += design.ask("trace", max(1, math.ceil(args.n / 2 / args.rounds)))
        print(f"  round {index + 1}/{args.rounds} done", file=sys.stderr, flush=True)


def _parent(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="hookjail-bench-"))
    base_tree = Path(tempfile.mkdtemp(prefix="hookjail-baseline-"))
    designs: list[_Design] = []
    try:
        # Readable by the worker's own uid, which the new default uses when the benchmark runs as root.
        workdir.chmod(0o755)
        for name, text in HOOK_FILES.items():
            (workdir / name).write_text(text)
        commit = _extract(args.baseline, base_tree)
        trees = {"new": str(REPO), "base": str(base_tree), None: None}
        for key, design in DESIGNS.items():
            designs.append(_Design(key, trees[design.tree], workdir, args))
        print(f"  {len(designs)} designs started and warmed up", file=sys.stderr, flush=True)
        _measure(designs, args)
        for design in designs:
            design.close()
        rows = {design.key: design.row() for design in designs}
        layer_tmp = workdir / "layer-tmp"
        layer_tmp.mkdir()
        layers = json.loads(
            subprocess.run(
                [sys.executable, "-c", LAYER_SCRIPT, "200", str(layer_tmp)],
                capture_output=True,
                text=True,
                check=True,
                cwd=REPO,
            ).stdout
        )
        bodies = {
            name: json.loads(
                subprocess.run(
                    [sys.executable, "-c", BODY_SCRIPT, str(REPO), str(path), "200"],
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=workdir,
                ).stdout
            )
            for name, path in {
                "sdk hook (imports hashlib)": workdir / "sdk_hook.py",
                "seed's imports, no host call": workdir / "seed_imports.py",
                "no imports": workdir / "no_imports.py",
                "seed as shipped": SEED,
            }.items()
        }
    finally:
        for design in designs:
            if design.proc.returncode is None:
                design.close()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(base_tree, ignore_errors=True)
    _report(args, commit, rows, layers, bodies, time.perf_counter() - started)


def _ratio_line(what: str, value: float, target: str, met: bool) -> str:
    return f"  {what:<52} {value:6.2f}   target {target:<7} {'met' if met else 'MISSED'}"


def _describe_tree() -> str:
    """Which code "new default" measured: the working tree, at which commit, and whether runner/ or sdk/
    have uncommitted changes."""
    git = ["git", "-C", str(REPO)]
    head = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=False)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "runner", "sdk"], capture_output=True, text=True, check=False
    )
    changes = "with uncommitted changes in runner/ or sdk/" if dirty.stdout.strip() else "runner/ and sdk/ clean"
    return f"the working tree {REPO} at {head.stdout.strip() or '?'} ({changes})"


def _report(
    args: argparse.Namespace,
    commit: str,
    rows: dict[str, dict[str, Any]],
    layers: dict[str, float],
    bodies: dict[str, float],
    elapsed: float,
) -> None:
    labels = {key: design.label.format(rev=args.baseline) for key, design in DESIGNS.items()}
    print(f"today's design: runner/ and sdk/ of {commit[:12]} (--baseline {args.baseline}), extracted with git archive")
    print(f"new default: {_describe_tree()}")
    print(f"p50/p95/p99: {args.n} back-to-back sequential calls ({args.spawn_n} for the fresh python);")
    print(
        f"idle p50: {args.n} calls, one every 10 ms (as logins arrive); calls/s: {args.concurrency} concurrent callers."
    )
    print(f"The designs take turns, in {args.rounds} interleaved rounds, each in a process of its own.")
    print("Hooks: the sdk hook is a 12-line handler importing hashlib, given an OpenID by the sdk adapter; the")
    print("seed is examples/litellm_compat/custom_sso.py (imports fastapi and litellm's types through the sdk's")
    print("compat layer; its one user_info host call is answered by an in-memory directory that knows the user);")
    print("'seed's imports' is the seed's handler with the same imports but no host call, 'no imports' the same")
    print("handler without any import (returns a dict). Every jailed row uses the sdk adapter.\n")
    table = {key: row for key, row in rows.items() if "breakdown" not in row}
    width = max(len(labels[key]) for key in table)
    print(f"{'design':<{width}}  {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'idle p50':>9} {'calls/s':>9}")
    for key, row in table.items():
        print(
            f"{labels[key]:<{width}}  {row['p50']:8.2f} {row['p95']:8.2f} {row['p99']:8.2f} {row['idle p50']:9.2f}"
            f" {row['calls/s']:9.0f}"
        )

    def off(key: str) -> str:
        found = [name for name, on in rows[key].get("layers", {}).items() if on is False or str(on).startswith("off")]
        return ", ".join(found) or "none"

    print(f"\nlayers off: new default: {off('new-sdk')}; today's design: {off('base-sdk')}")
    print(f"pre-imported by the new template for the seed: {', '.join(rows['new-seed'].get('preimported') or [])}")

    new, base = rows["new-sdk"], rows["base-sdk"]
    print("\nthe issue's targets (new default = all layers + sdk adapter; '~ 1' counts as met within 10%):")
    idle = new["idle p50"] / base["idle p50"]
    print(_ratio_line("new idle p50 / today's idle p50", idle, "<= 1.5", idle <= 1.5))
    faster = rows["spawn"]["p50"] / new["p50"]
    print(_ratio_line("fresh python p50 / new p50 (back to back)", faster, ">= 20", faster >= 20))
    seed = rows["new-seedimports"]["p50"] / rows["new-noimports"]["p50"]
    print(_ratio_line("seed's imports p50 / no imports p50 (new default)", seed, "~ 1", seed <= 1.1))
    seed_idle = rows["new-seedimports"]["idle p50"] / rows["new-noimports"]["idle p50"]
    print(_ratio_line("seed's imports idle p50 / no imports idle p50", seed_idle, "~ 1", seed_idle <= 1.1))
    print("other ratios, new / today's:")
    for what, key in (("sdk hook", "sdk"), ("seed's imports", "seedimports"), ("seed as shipped", "seed")):
        n_row, b_row = rows[f"new-{key}"], rows[f"base-{key}"]
        idle_ratio = n_row["idle p50"] / b_row["idle p50"]
        print(
            f"  {what:<16} p50 {n_row['p50'] / b_row['p50']:5.2f}  idle p50 {idle_ratio:5.2f}"
            f"  calls/s {n_row['calls/s'] / b_row['calls/s']:5.2f}"
        )

    base_steps, new_steps = rows["base-trace"]["breakdown"], rows["new-trace"]["breakdown"]
    print("\nwhere an idle call's time goes (sdk hook with timestamps, all layers, one call every 10 ms; median ms):")
    print(f"  {'step':<58} {'today':>7} {'new':>7}")
    for step in BREAKDOWN:
        cells = [f"{value:7.2f}" if value is not None else f"{'-':>7}" for value in (base_steps[step], new_steps[step])]
        print(f"  {step:<58} {cells[0]} {cells[1]}")
    print("\nper-child steps of the new default (median of 200 forked children, ms; all but fork+exit, and")
    print("the module body, run before the call arrives):")
    for name, value in layers.items():
        print(f"  {name:<32} {value:7.3f}")
    print("  module body, run in each call's child after pre-imports (new default only):")
    for name, value in bodies.items():
        print(f"    {name:<30} {value:7.3f}")
    print(f"\n(whole run: {elapsed:.0f} s)")
    if args.json:
        print(json.dumps({"baseline": commit, "designs": rows, "per_child_ms": layers, "module_body_ms": bodies}))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="sequential and idle calls per design (default 200)")
    parser.add_argument("--spawn-n", type=int, default=40, help="calls for the fresh-python design (slow)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent callers for calls/s")
    parser.add_argument("--baseline", default="d7ce0f8", help="revision of today's design (default d7ce0f8)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds the calls are split into")
    parser.add_argument("--warmup", type=int, default=20, help="calls each design makes before measuring")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--worker", choices=sorted(DESIGNS), help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(_worker(args))
    else:
        _parent(args)


if __name__ == "__main__":
    main()
