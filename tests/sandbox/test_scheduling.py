"""Seccomp: no hook changes the nice value, CPU affinity, policy, I/O priority or NUMA placement of another process.

The kernel asks for nothing but the same uid there, which the worker shares with the proxy and every other
worker: only the zygote filter stands in the way (Landlock's ptrace rules also guard ``migrate_pages`` and
``move_pages``, but not against the zygote, whose children sit in nested domains: the zygote runs prove it).

Every write that a broken layer would let through lands on a throwaway sibling, on ids that name nothing (the
control experiment gets ``ESRCH`` for those), on a process group the attempt made its own, or (the caller's
whole uid) in a child only, where the PID namespace keeps the test process out of reach.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyseccomp
import pytest

from ._hooks import call_once, sandbox, write_hook
from ._jail import Jail

_SYSCALLS = ("setpriority", "sched_setattr", "ioprio_set", "ioprio_get", "migrate_pages", "move_pages")
_NR = {name: int(pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)) for name in _SYSCALLS}
_SCHED_IDLE = 5
_SCHED_BATCH = 3
_IOPRIO_IDLE = 3 << 13  # IOPRIO_PRIO_VALUE(IOPRIO_CLASS_IDLE, 0)
_IOPRIO_BE_4 = (2 << 13) | 4  # IOPRIO_PRIO_VALUE(IOPRIO_CLASS_BE, 4)

# Defines syscall(name, *args), observe(fn) -> {"value": ...} | {"errno": "EPERM"} and state(pid).
_HELPERS = f"""
import ctypes, errno, os, struct
_libc = ctypes.CDLL(None, use_errno=True)
NR = {_NR!r}
NOBODY_UID = 0x7FFFFFFE  # a uid no process has (and unmapped in the worker's user namespace)
NO_PGRP = 0x3FFFFFFE  # above PID_MAX_LIMIT: no such process group
IOPRIO_WHO_PROCESS, IOPRIO_WHO_PGRP, IOPRIO_WHO_USER = 1, 2, 3
CPU = max(os.sched_getaffinity(0))
NODE_0 = ctypes.c_ulong(1)  # a node mask holding node 0 (migrate_pages needs a non-empty target)


def syscall(name, *args):
    result = _libc.syscall(NR[name], *[ctypes.c_long(arg) for arg in args])
    if result < 0:
        raise OSError(ctypes.get_errno(), name)
    return result


def observe(fn):
    try:
        return {{"value": fn()}}
    except OSError as exc:
        return {{"errno": errno.errorcode.get(exc.errno, exc.errno)}}


def state(pid):
    return [
        os.getpriority(os.PRIO_PROCESS, pid),
        sorted(os.sched_getaffinity(pid)),
        os.sched_getscheduler(pid),
        syscall("ioprio_get", IOPRIO_WHO_PROCESS, pid),
    ]


def migrate_pages(pid):
    # From node 0 to node 0: a no-op even where it is allowed.
    return syscall("migrate_pages", pid, 2, ctypes.addressof(NODE_0), ctypes.addressof(NODE_0))


def sched_setattr_idle(pid):
    attr = ctypes.create_string_buffer(struct.pack("=IIQiIQQQ", 48, {_SCHED_IDLE}, 0, 19, 0, 0, 0, 0))
    return syscall("sched_setattr", pid, ctypes.addressof(attr), 0)
"""

_ON_SIBLING = (
    _HELPERS
    + f"""
def attempt(ctx):
    pid = ctx["sibling_pid"]
    before = state(pid)
    calls = {{
        "setpriority(PRIO_PROCESS, sibling)": lambda: os.setpriority(os.PRIO_PROCESS, pid, 19),
        # The kernel truncates who to an int: these high bits would still name the sibling.
        "setpriority(PRIO_PROCESS, high bits | sibling)": lambda: syscall("setpriority", 0, (-1 << 32) | pid, 19),
        "setpriority(PRIO_PGRP, nobody)": lambda: os.setpriority(os.PRIO_PGRP, NO_PGRP, 19),
        "setpriority(PRIO_USER, nobody)": lambda: os.setpriority(os.PRIO_USER, NOBODY_UID, 19),
        "sched_setaffinity(sibling)": lambda: os.sched_setaffinity(pid, {{CPU}}),
        "sched_setscheduler(sibling)": lambda: os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0)),
        "sched_setparam(sibling)": lambda: os.sched_setparam(pid, os.sched_param(0)),
        "sched_setattr(sibling)": lambda: sched_setattr_idle(pid),
        "ioprio_set(WHO_PROCESS, sibling)": lambda: syscall("ioprio_set", IOPRIO_WHO_PROCESS, pid, {_IOPRIO_IDLE}),
        "ioprio_set(WHO_PGRP, nobody)": lambda: syscall("ioprio_set", IOPRIO_WHO_PGRP, NO_PGRP, {_IOPRIO_IDLE}),
        "ioprio_set(WHO_USER, nobody)": lambda: syscall("ioprio_set", IOPRIO_WHO_USER, NOBODY_UID, {_IOPRIO_IDLE}),
        "migrate_pages(sibling)": lambda: migrate_pages(pid),
        "move_pages(sibling)": lambda: syscall("move_pages", pid, 0, 0, 0, 0, 0),
    }}
    outcomes = {{name: observe(call) for name, call in calls.items()}}
    return {{"calls": outcomes, "before": before, "after": state(pid), "cpu": CPU}}
"""
)

# Without the sandbox: each call is honoured (ids naming nobody get ESRCH), and the sibling is changed.
_UNCONFINED = {
    "setpriority(PRIO_PROCESS, sibling)": {"value": None},
    "setpriority(PRIO_PROCESS, high bits | sibling)": {"value": 0},
    "setpriority(PRIO_PGRP, nobody)": {"errno": "ESRCH"},
    "setpriority(PRIO_USER, nobody)": {"errno": "ESRCH"},
    "sched_setaffinity(sibling)": {"value": None},
    "sched_setscheduler(sibling)": {"value": None},
    "sched_setparam(sibling)": {"value": None},
    "sched_setattr(sibling)": {"value": 0},
    "ioprio_set(WHO_PROCESS, sibling)": {"value": 0},
    "ioprio_set(WHO_PGRP, nobody)": {"errno": "ESRCH"},
    "ioprio_set(WHO_USER, nobody)": {"errno": "ESRCH"},
    "migrate_pages(sibling)": {"value": 0},
    "move_pages(sibling)": {"value": 0},
}


@pytest.mark.parametrize("where", ["child", "zygote"])
def test_cant_change_another_processs_scheduling(jail: Jail, where: str) -> None:
    control = jail.run(_ON_SIBLING, where="unconfined", sibling=True)["value"]
    assert control["calls"] == _UNCONFINED
    assert control["after"] == [19, [control["cpu"]], _SCHED_IDLE, _IOPRIO_IDLE] != control["before"]

    report = jail.run(_ON_SIBLING, where=where, sibling=True)
    value = report["value"]
    assert value["calls"] == {name: {"errno": "EPERM"} for name in _UNCONFINED}
    assert value["after"] == value["before"]
    assert report["sibling_alive"] is True


_ON_OWN_GROUP_OR_UID = (
    _HELPERS
    + f"""
def attempt(ctx):
    # A process group of its own first (the runner's child has one already, and may no longer change it):
    # PRIO_PGRP 0 then reaches the caller only.
    if os.getpgid(0) != os.getpid():
        os.setpgid(0, 0)
    before = state(0)
    calls = {{
        "setpriority(PRIO_PGRP, 0)": lambda: os.setpriority(os.PRIO_PGRP, 0, 19),
        "ioprio_set(WHO_PGRP, 0)": lambda: syscall("ioprio_set", IOPRIO_WHO_PGRP, 0, {_IOPRIO_IDLE}),
    }}
    if ctx["uid_too"]:
        calls["setpriority(PRIO_USER, 0)"] = lambda: os.setpriority(os.PRIO_USER, 0, 19)
        calls["ioprio_set(WHO_USER, 0)"] = lambda: syscall("ioprio_set", IOPRIO_WHO_USER, 0, {_IOPRIO_IDLE})
    outcomes = {{name: observe(call) for name, call in calls.items()}}
    return {{"calls": outcomes, "before": before, "after": state(0)}}
"""
)


@pytest.mark.parametrize("where", ["child", "zygote"])
def test_cant_change_scheduling_of_own_group_or_uid(jail: Jail, where: str) -> None:
    # who 0 is the caller's own group or uid: the rule on which (PRIO_PROCESS, IOPRIO_WHO_PROCESS only) is what
    # stops these. The uid is tried in a child only, whose PID namespace keeps PRIO_USER off the test's
    # processes were the layer broken; without the sandbox (the control) it would reach every process of ours.
    control = jail.run(_ON_OWN_GROUP_OR_UID, where="unconfined", ctx={"uid_too": False})["value"]
    assert control["calls"] == {"setpriority(PRIO_PGRP, 0)": {"value": None}, "ioprio_set(WHO_PGRP, 0)": {"value": 0}}
    assert control["after"][::3] == [19, _IOPRIO_IDLE] != control["before"][::3]

    value = jail.run(_ON_OWN_GROUP_OR_UID, where=where, ctx={"uid_too": where == "child"})["value"]
    expected = ["setpriority(PRIO_PGRP, 0)", "ioprio_set(WHO_PGRP, 0)"]
    if where == "child":
        expected += ["setpriority(PRIO_USER, 0)", "ioprio_set(WHO_USER, 0)"]
    assert value["calls"] == {name: {"errno": "EPERM"} for name in expected}
    assert value["after"] == value["before"]


@pytest.mark.parametrize("where", ["unconfined", "child", "zygote"])
def test_can_still_change_its_own_scheduling(jail: Jail, where: str) -> None:
    report = jail.run(
        _HELPERS
        + f"""
def attempt(ctx):
    nice = min(os.getpriority(os.PRIO_PROCESS, 0) + 5, 19)
    os.setpriority(os.PRIO_PROCESS, 0, nice)
    os.sched_setaffinity(0, {{CPU}})
    os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    os.sched_setparam(0, os.sched_param(0))
    syscall("ioprio_set", IOPRIO_WHO_PROCESS, 0, {_IOPRIO_BE_4})
    return {{
        "state": state(0),
        "expected": [nice, [CPU], {_SCHED_BATCH}, {_IOPRIO_BE_4}],
        "migrate_pages(0)": observe(lambda: migrate_pages(0)),
        "move_pages(0)": observe(lambda: syscall("move_pages", 0, 0, 0, 0, 0, 0)),
        # Only 0 names the caller: its own pid is refused like any other.
        "setpriority(PRIO_PROCESS, own pid)": observe(lambda: os.setpriority(os.PRIO_PROCESS, os.getpid(), 19)),
    }}
""",
        where=where,
    )
    value = report["value"]
    assert value["state"] == value["expected"]
    assert value["migrate_pages(0)"] == value["move_pages(0)"] == {"value": 0}
    expected = {"value": None} if where == "unconfined" else {"errno": "EPERM"}
    assert value["setpriority(PRIO_PROCESS, own pid)"] == expected


def _scheduling_of(pid: int) -> tuple[int, set[int], int]:
    return os.getpriority(os.PRIO_PROCESS, pid), os.sched_getaffinity(pid), os.sched_getscheduler(pid)


@pytest.mark.anyio
async def test_cant_change_the_proxys_scheduling_through_the_runner(operator_dir: Path) -> None:
    # Real changes, on every pid of the call's PID namespace, its own pid, the proxy's pid (which names nothing
    # or someone else in there), and on the call's whole process group and uid.
    spec = write_hook(
        operator_dir,
        f"""
import ctypes, os, struct

_libc = ctypes.CDLL(None, use_errno=True)
NR = {_NR!r}
NODE_0 = ctypes.c_ulong(1)


def syscall(name, *args):
    result = _libc.syscall(NR[name], *[ctypes.c_long(arg) for arg in args])
    if result < 0:
        raise OSError(ctypes.get_errno(), name)
    return result


def sched_setattr(pid):
    attr = ctypes.create_string_buffer(struct.pack("=IIQiIQQQ", 48, {_SCHED_IDLE}, 0, 19, 0, 0, 0, 0))
    return syscall("sched_setattr", pid, ctypes.addressof(attr), 0)


def tries(pid):
    node = ctypes.addressof(NODE_0)
    return {{
        "setpriority": lambda: os.setpriority(os.PRIO_PROCESS, pid, 19),
        "sched_setaffinity": lambda: os.sched_setaffinity(pid, {{min(os.sched_getaffinity(0))}}),
        "sched_setscheduler": lambda: os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0)),
        "sched_setparam": lambda: os.sched_setparam(pid, os.sched_param(0)),
        "sched_setattr": lambda: sched_setattr(pid),
        "ioprio_set": lambda: syscall("ioprio_set", 1, pid, {_IOPRIO_IDLE}),
        "migrate_pages": lambda: syscall("migrate_pages", pid, 2, node, node),
        "move_pages": lambda: syscall("move_pages", pid, 0, 0, 0, 0, 0),
    }}


def handler(info):
    pids = {{*range(1, 33), os.getpid(), os.getppid(), info["proxy_pid"]}} - {{0}}
    calls = [(f"{{name}}({{pid}})", call) for pid in sorted(pids) for name, call in tries(pid).items()]
    calls += [
        ("setpriority(PRIO_PGRP, 0)", lambda: os.setpriority(os.PRIO_PGRP, 0, 19)),
        ("setpriority(PRIO_USER, 0)", lambda: os.setpriority(os.PRIO_USER, 0, 19)),
        ("setpriority(PRIO_USER, proxy uid)", lambda: os.setpriority(os.PRIO_USER, info["proxy_uid"], 19)),
        ("ioprio_set(WHO_PGRP, 0)", lambda: syscall("ioprio_set", 2, 0, {_IOPRIO_IDLE})),
        ("ioprio_set(WHO_USER, 0)", lambda: syscall("ioprio_set", 3, 0, {_IOPRIO_IDLE})),
        ("ioprio_set(WHO_USER, proxy uid)", lambda: syscall("ioprio_set", 3, info["proxy_uid"], {_IOPRIO_IDLE})),
    ]
    seen = {{}}
    for key, call in calls:
        outcome = observe(call)
        seen.setdefault(outcome.get("errno", repr(outcome)), []).append(key)
    return {{"seen": seen, "tried": len(calls)}}
""",
    )
    before = _scheduling_of(os.getpid())
    value = (await call_once(spec, sandbox(operator_dir), {"proxy_pid": os.getpid(), "proxy_uid": os.getuid()})).value
    assert _scheduling_of(os.getpid()) == before
    assert list(value["seen"]) == ["EPERM"]
    assert len(value["seen"]["EPERM"]) == value["tried"] >= 8 * 32 + 6
