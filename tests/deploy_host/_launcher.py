"""Start a command the way a container runtime would start it: with fewer capabilities or another uid, no_new_privs
set and a seccomp filter loaded, then exec.

    python -m tests.deploy_host._launcher SPEC_JSON COMMAND [ARGS...]

SPEC_JSON keys:

* ``filter``, one of: ``"deny_namespaces"`` (the rule of every default container profile that matters here:
  ``unshare``, ``setns`` and ``clone`` with a namespace flag fail with EPERM, everything else is allowed);
  ``"docker_default"`` (the shipped profile without hookjail's additions: Docker's default, an allow list);
  ``"hookjail"`` (the shipped profile: every call it does not allow fails with EPERM); ``"allow"`` (``names``, and
  ``socket`` only for the address families in ``socket_families``; every other call fails with EPERM, as
  systemd's ``SystemCallFilter=`` and ``RestrictAddressFamilies=`` do);
* ``caps``: the capability bounding set to keep (names), as a runtime's ``--cap-drop ALL --cap-add ...`` does to a
  root container: a root process regains exactly these on exec; ``null`` keeps this process's;
* ``uid``: run as this uid and gid, no supplementary groups (and so no capabilities), as ``USER 10001`` does;
  ``null`` stays root.

Profile groups are selected for the capabilities the container would have (``caps``, else none for a non-root
uid, else Docker's default set).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import sys

import pyseccomp

from ._profile import DOCKER_DEFAULT_CAPS, applicable, build_filter, capability_numbers, load

_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)

_libc = ctypes.CDLL(None, use_errno=True)


def _prctl(*args: int) -> int:
    return int(_libc.prctl(*(ctypes.c_ulong(a) for a in args)))


def _keep_only(caps: set[int]) -> None:
    for cap in range(64):
        if cap in caps:
            continue
        if _prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            if ctypes.get_errno() == errno.EINVAL:  # past the last capability this kernel knows
                break
            raise OSError(ctypes.get_errno(), f"PR_CAPBSET_DROP {cap}")
    _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)


def _deny_namespaces() -> pyseccomp.SyscallFilter:
    flt = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for name in ("unshare", "setns"):
        flt.add_rule(pyseccomp.ERRNO(errno.EPERM), name)
    for flag in _NAMESPACE_FLAGS:
        flt.add_rule(pyseccomp.ERRNO(errno.EPERM), "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, flag, flag))
    return flt


def _allow_list(names: list[str], families: list[int] | None) -> pyseccomp.SyscallFilter:
    flt = pyseccomp.SyscallFilter(pyseccomp.ERRNO(errno.EPERM))
    for name in names:
        number = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
        if number < 0 or (name == "socket" and families is not None):
            continue  # unknown to this libseccomp, or not on this architecture
        flt.add_rule(pyseccomp.ALLOW, number)
    for family in families or []:
        flt.add_rule(pyseccomp.ALLOW, "socket", pyseccomp.Arg(0, pyseccomp.EQ, family))
    return flt


def main(argv: list[str]) -> None:
    spec = json.loads(argv[0])
    command = argv[1:]
    caps = spec.get("caps")
    uid = spec.get("uid")
    container_caps = set(caps) if caps is not None else set() if uid is not None else set(DOCKER_DEFAULT_CAPS)
    if spec["filter"] == "deny_namespaces":
        flt = _deny_namespaces()
    elif spec["filter"] == "allow":
        flt = _allow_list(spec["names"], spec.get("socket_families"))
    else:
        profile = load()
        rules = applicable(profile, container_caps, additions=spec["filter"] == "hookjail")
        flt, _unknown = build_filter(profile, rules)
    if caps is not None:
        _keep_only(capability_numbers(caps))
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    if _prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    flt.load()
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
