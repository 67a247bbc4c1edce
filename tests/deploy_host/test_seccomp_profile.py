"""The shipped seccomp profile is Docker's default plus exactly what the sandbox needs to build itself without
CAP_SYS_ADMIN, each addition commented and narrowed to the arguments the sandbox uses.

Read as a runtime reads it (:mod:`._profile`), for a container without CAP_SYS_ADMIN: the image's default user
(no capabilities), Docker's default set, and the root variant's three capabilities."""

from __future__ import annotations

import errno

import pytest

from ._profile import ALLOW, DOCKER_DEFAULT_CAPS, applicable, build_filter, decide, is_addition, load

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080
SANDBOX_NAMESPACES = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNET
FORK = 0x01200011  # what glibc's fork() passes to clone: CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_MOVE = 2, 4, 8, 32, 4096, 8192
TMPFS_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC

#: What the sandbox calls while building itself (runner/_userns.py, _landlock.py, _seccomp.py, _confine.py,
#: _zygote.py, _template.py, _identity.py), with the arguments a filter can see.
SANDBOX_CALLS: list[tuple[str, tuple[int, ...]]] = [
    ("unshare", (SANDBOX_NAMESPACES,)),  # network: none
    ("unshare", (SANDBOX_NAMESPACES & ~CLONE_NEWNET,)),  # network: allow
    ("mount", (0, 0, 0, TMPFS_FLAGS)),  # the private tmpfs
    ("capset", ()),  # dropping the capabilities the user namespace granted
    ("prctl", ()),  # no_new_privs, PR_CAPBSET_DROP, PR_SET_SECCOMP, PR_SET_PDEATHSIG
    ("seccomp", ()),  # libseccomp asks the kernel which actions it supports
    ("memfd_create", ()),  # exporting the compiled filters
    ("landlock_create_ruleset", ()),
    ("landlock_add_rule", ()),
    ("landlock_restrict_self", ()),
    ("clone", (FORK,)),  # the reaper, the children
    ("pidfd_open", ()),
    ("pidfd_send_signal", ()),
    ("setgroups", ()),  # distinct_uid: starting the worker as another uid
    ("setresgid", ()),
    ("setresuid", ()),
    ("chown", ()),  # distinct_uid: the temp root
    ("socketpair", (1,)),
    ("socket", (2,)),
]

#: Namespace and mount operations the sandbox never makes: still refused without CAP_SYS_ADMIN.
NOT_NEEDED: list[tuple[str, tuple[int, ...]]] = [
    ("unshare", (CLONE_NEWUTS,)),
    ("unshare", (CLONE_NEWCGROUP,)),
    ("unshare", (CLONE_NEWTIME,)),
    ("unshare", (SANDBOX_NAMESPACES | CLONE_NEWUTS,)),
    ("setns", ()),
    ("clone", (FORK | CLONE_NEWUSER,)),
    ("clone", (FORK | CLONE_NEWNET,)),
    ("mount", (0, 0, 0, MS_BIND)),
    ("mount", (0, 0, 0, MS_REMOUNT | TMPFS_FLAGS)),
    ("mount", (0, 0, 0, MS_MOVE)),
    ("mount", (0, 0, 0, 0)),
    ("umount2", ()),
    ("pivot_root", ()),
    ("open_tree", ()),
    ("move_mount", ()),
    ("fsopen", ()),
    ("fsmount", ()),
    ("mount_setattr", ()),
]

#: Without CAP_SYS_ADMIN, as the image's user (no capabilities), with Docker's default set, and as the root
#: variant with just the capabilities distinct_uid needs.
CAPABILITY_SETS = {
    "none": frozenset[str](),
    "docker default": DOCKER_DEFAULT_CAPS,
    "root variant": frozenset({"CAP_CHOWN", "CAP_SETUID", "CAP_SETGID"}),
}


def test_the_profile_is_an_allow_list_with_docker_defaults() -> None:
    profile = load()
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert profile["defaultErrnoRet"] == errno.EPERM
    architectures = {entry["architecture"] for entry in profile["archMap"]}
    assert {"SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"} <= architectures
    for group in profile["syscalls"]:
        assert group["action"] in ("SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO"), group
        assert group["names"], group


def test_the_additions_are_unshare_and_mount_each_commented_and_narrowed() -> None:
    additions = [group for group in load()["syscalls"] if is_addition(group)]
    assert [group["names"] for group in additions] == [["unshare"], ["mount"]]
    for group in additions:
        assert group["action"] == "SCMP_ACT_ALLOW"
        assert len(group["comment"]) > 80, "say what it is for and why the default refuses it"
        assert group["args"], "narrowed to the sandbox's own arguments"
        assert "includes" not in group and "excludes" not in group  # for any capability set


def test_docker_default_alone_refuses_what_the_sandbox_needs() -> None:
    """The reason for the profile: without CAP_SYS_ADMIN the default refuses unshare and mount."""
    profile = load()
    for caps in CAPABILITY_SETS.values():
        rules = applicable(profile, caps, additions=False)
        assert decide(profile, rules, "unshare", SANDBOX_NAMESPACES) == errno.EPERM
        assert decide(profile, rules, "mount", 0, 0, 0, TMPFS_FLAGS) == errno.EPERM
        assert decide(profile, rules, "clone", FORK | CLONE_NEWUSER) == errno.EPERM
        # ... and allows the rest of what it builds itself with
        assert decide(profile, rules, "landlock_create_ruleset") == ALLOW
        assert decide(profile, rules, "pidfd_open") == ALLOW


@pytest.mark.parametrize("caps", CAPABILITY_SETS.values(), ids=CAPABILITY_SETS.keys())
@pytest.mark.parametrize(("name", "args"), SANDBOX_CALLS, ids=[f"{n}{a}" for n, a in SANDBOX_CALLS])
def test_every_call_the_sandbox_makes_is_allowed(caps: frozenset[str], name: str, args: tuple[int, ...]) -> None:
    profile = load()
    assert decide(profile, applicable(profile, caps), name, *args) == ALLOW


@pytest.mark.parametrize("caps", CAPABILITY_SETS.values(), ids=CAPABILITY_SETS.keys())
@pytest.mark.parametrize(("name", "args"), NOT_NEEDED, ids=[f"{n}{a}" for n, a in NOT_NEEDED])
def test_nothing_more_is_allowed(caps: frozenset[str], name: str, args: tuple[int, ...]) -> None:
    profile = load()
    assert decide(profile, applicable(profile, caps), name, *args) == errno.EPERM


def test_clone3_fails_with_enosys_so_that_glibc_falls_back_to_clone() -> None:
    profile = load()
    assert decide(profile, applicable(profile, frozenset()), "clone3") == errno.ENOSYS


def test_libseccomp_knows_every_call_the_sandbox_needs() -> None:
    """The names this libseccomp does not know are left out of the test filters: none may be one the sandbox
    needs (else the runtime tests below would pass for the wrong reason)."""
    profile = load()
    _flt, unknown = build_filter(profile, applicable(profile, frozenset()))
    assert not {name for name, _ in SANDBOX_CALLS} & set(unknown)
