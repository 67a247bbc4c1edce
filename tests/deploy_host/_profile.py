"""The shipped seccomp profile (``deploy/seccomp/hookjail.json``, Docker's format), read the way a container
runtime reads it, and turned into a real filter with libseccomp.

A container runtime (runc, crun, through Docker, containerd or CRI-O) keeps the groups of ``syscalls`` that apply
to the container: ``includes``/``excludes`` name architectures, capabilities of the container's bounding set
and a minimum kernel; it then adds one rule per name (the conditions of one group are ANDed, separate groups
ORed) on top of ``defaultAction``. :func:`applicable` does that selection, :func:`build_filter` the rules, and
:func:`decide` answers what the filter would do with one call without loading anything.

What differs from a runtime, on purpose (the "arch-specific exceptions"):

* only the native architecture is in the filter: the runtime adds the ``archMap`` sub-architectures (i386 and x32
  on x86_64) with the same rules; a call made through them here is killed instead (libseccomp's default for a
  foreign architecture). The sandbox makes none, and its own filter kills them anyway.
* names this libseccomp does not know (newer than Debian 12's 2.5.4) and names that do not exist on this
  architecture (``chown32``, ``_llseek``, ...) are left out, as libseccomp itself ignores the latter;
  :func:`build_filter` returns the unknown ones so that a test can check none of them is one the sandbox needs.
"""

from __future__ import annotations

import errno
import json
import platform
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyseccomp

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "deploy" / "seccomp" / "hookjail.json"

#: Docker's names for the architectures this project runs on.
_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}

#: Docker's default capability set (``docker run`` without --cap-add/--cap-drop): no CAP_SYS_ADMIN.
DOCKER_DEFAULT_CAPS = frozenset(
    {
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    }
)

_OPS = {
    "SCMP_CMP_NE": pyseccomp.NE,
    "SCMP_CMP_LT": pyseccomp.LT,
    "SCMP_CMP_LE": pyseccomp.LE,
    "SCMP_CMP_EQ": pyseccomp.EQ,
    "SCMP_CMP_GE": pyseccomp.GE,
    "SCMP_CMP_GT": pyseccomp.GT,
    "SCMP_CMP_MASKED_EQ": pyseccomp.MASKED_EQ,
}

ALLOW = "allow"


@dataclass(frozen=True)
class Rule:
    """One applicable group of the profile: its names, action (``"allow"`` or an errno) and argument
    conditions (``(index, op, value, value_two)``, all of which must hold)."""

    names: tuple[str, ...]
    action: str | int
    args: tuple[tuple[int, str, int, int], ...]
    comment: str


def load(path: Path = PROFILE) -> dict[str, Any]:
    """The profile as JSON."""
    profile: dict[str, Any] = json.loads(path.read_text())
    return profile


def is_addition(group: Mapping[str, Any]) -> bool:
    """Whether a group is one of hookjail's additions to Docker's default profile (its comment says so)."""
    return str(group.get("comment", "")).startswith("hookjail:")


def _kernel() -> tuple[int, ...]:
    release = platform.release().split("-")[0]
    return tuple(int(part) for part in release.split(".")[:2] if part.isdigit())


def _applies(group: Mapping[str, Any], arch: str, caps: frozenset[str]) -> bool:
    includes = group.get("includes") or {}
    excludes = group.get("excludes") or {}
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    if includes.get("caps") and not set(includes["caps"]) <= caps:
        return False
    if includes.get("minKernel"):
        wanted = tuple(int(part) for part in includes["minKernel"].split("."))
        if _kernel() < wanted:
            return False
    if arch in (excludes.get("arches") or []):
        return False
    return not set(excludes.get("caps") or []) & caps


def applicable(
    profile: Mapping[str, Any], caps: Iterable[str], *, additions: bool = True, arch: str | None = None
) -> list[Rule]:
    """The groups a runtime would keep for a container with bounding set ``caps`` on this architecture;
    without ``additions``, Docker's default profile alone (hookjail's groups left out)."""
    arch = arch or _ARCH.get(platform.machine(), platform.machine())
    cap_set = frozenset(caps)
    rules = []
    for group in profile["syscalls"]:
        if not additions and is_addition(group):
            continue
        if not _applies(group, arch, cap_set):
            continue
        action: str | int
        if group["action"] == "SCMP_ACT_ALLOW":
            action = ALLOW
        elif group["action"] == "SCMP_ACT_ERRNO":
            action = int(group.get("errnoRet", profile.get("defaultErrnoRet", errno.EPERM)))
        else:
            raise ValueError(f"unexpected action {group['action']!r} for {group['names']}")
        args = tuple(
            (int(arg["index"]), str(arg["op"]), int(arg["value"]), int(arg.get("valueTwo", 0)))
            for arg in group.get("args") or []
        )
        rules.append(Rule(tuple(group["names"]), action, args, str(group.get("comment", ""))))
    return rules


def _holds(condition: tuple[int, str, int, int], args: tuple[int, ...]) -> bool:
    index, op, value, value_two = condition
    arg = args[index] if index < len(args) else 0
    return {
        "SCMP_CMP_NE": arg != value,
        "SCMP_CMP_LT": arg < value,
        "SCMP_CMP_LE": arg <= value,
        "SCMP_CMP_EQ": arg == value,
        "SCMP_CMP_GE": arg >= value,
        "SCMP_CMP_GT": arg > value,
        "SCMP_CMP_MASKED_EQ": arg & value == value_two,
    }[op]


def decide(profile: Mapping[str, Any], rules: Iterable[Rule], name: str, *args: int) -> str | int:
    """What the filter does with ``name(args...)``: ``"allow"`` or the errno it returns (an errno wins over
    an allow, as in libseccomp, where ERRNO takes precedence over ALLOW)."""
    matched = [rule.action for rule in rules if name in rule.names and all(_holds(c, args) for c in rule.args)]
    errnos = [action for action in matched if action != ALLOW]
    if errnos:
        return errnos[0]
    if matched:
        return ALLOW
    return int(profile.get("defaultErrnoRet", errno.EPERM))


def build_filter(profile: Mapping[str, Any], rules: Iterable[Rule]) -> tuple[pyseccomp.SyscallFilter, list[str]]:
    """A libseccomp filter for ``rules`` on top of the profile's default action; also the names this
    libseccomp does not know (left out)."""
    if profile["defaultAction"] != "SCMP_ACT_ERRNO":
        raise ValueError(f"unexpected default action {profile['defaultAction']!r}")
    flt = pyseccomp.SyscallFilter(pyseccomp.ERRNO(int(profile.get("defaultErrnoRet", errno.EPERM))))
    unknown = []
    for rule in rules:
        action = pyseccomp.ALLOW if rule.action == ALLOW else pyseccomp.ERRNO(int(rule.action))
        conditions = [pyseccomp.Arg(index, _OPS[op], value, two) for index, op, value, two in rule.args]
        for name in rule.names:
            number = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
            if number == -1:  # __NR_SCMP_ERROR: unknown to this libseccomp
                unknown.append(name)
                continue
            if number < 0:  # a pseudo number: the call does not exist on this architecture
                continue
            flt.add_rule(action, number, *conditions)
    return flt, unknown


def capability_numbers(names: Iterable[str]) -> set[int]:
    """``CAP_SETUID`` -> 7, ... (linux/capability.h)."""
    table = {
        "CAP_CHOWN": 0,
        "CAP_DAC_OVERRIDE": 1,
        "CAP_DAC_READ_SEARCH": 2,
        "CAP_FOWNER": 3,
        "CAP_FSETID": 4,
        "CAP_KILL": 5,
        "CAP_SETGID": 6,
        "CAP_SETUID": 7,
        "CAP_SETPCAP": 8,
        "CAP_NET_BIND_SERVICE": 10,
        "CAP_NET_RAW": 13,
        "CAP_SYS_CHROOT": 18,
        "CAP_SYS_ADMIN": 21,
        "CAP_MKNOD": 27,
        "CAP_AUDIT_WRITE": 29,
        "CAP_SETFCAP": 31,
    }
    return {table[name if name.startswith("CAP_") else f"CAP_{name}"] for name in names}


def machine_supported() -> bool:
    """Whether this architecture is one the profile's tests know (x86_64, aarch64)."""
    return platform.machine() in _ARCH
