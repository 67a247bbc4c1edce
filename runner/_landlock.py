"""Landlock: the filesystem, TCP and scoping layer, through the raw system calls.

Landlock (Linux 5.13+) lets an unprivileged process restrict itself: a *ruleset* says which access rights it
*handles*; rules grant some of those rights beneath given directories or on given files; once the process
calls ``landlock_restrict_self`` every handled right not granted is denied, for it and all its descendants,
for ever. Each call stacks a new *layer*: an access must be allowed by every layer that handles it.

Why ctypes and not a binding: the ABI is three system calls and three small structs, stable by the kernel's
promise; the PyPI ``landlock`` package is a development pre-release that lags the ABI (no scoping), and a
child must apply its layer in well under a millisecond, which means prebuilding the structs and file
descriptors in the zygote -- something no binding exposes. The numbers 444/445/446 are the same on x86_64
and aarch64 (every architecture since the syscall tables were unified in Linux 5.1).

ABI levels used: 1 filesystem rights, 2 ``REFER`` (cross-directory rename/link), 3 ``TRUNCATE``,
4 TCP bind/connect, 5 device ``ioctl``, 6 scoping of signals and abstract unix sockets, 7 audit flags
(not used).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
from collections.abc import Iterable
from dataclasses import dataclass

from ._linux import errno_error, libc

__all__ = (
    "ACCESS_FS_READ",
    "ACCESS_FS_WRITE",
    "FileRule",
    "PreparedLayer",
    "abi_version",
    "handled_fs",
)

# System call numbers; see the module docstring for why one table serves both architectures.
_SYSCALLS = {"x86_64": (444, 445, 446), "aarch64": (444, 445, 446)}

_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH = 1

# Filesystem rights (include/uapi/linux/landlock.h) and the ABI that introduced each.
EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REMOVE_DIR = 1 << 4
REMOVE_FILE = 1 << 5
MAKE_CHAR = 1 << 6
MAKE_DIR = 1 << 7
MAKE_REG = 1 << 8
MAKE_SOCK = 1 << 9
MAKE_FIFO = 1 << 10
MAKE_BLOCK = 1 << 11
MAKE_SYM = 1 << 12
REFER = 1 << 13  # ABI 2
TRUNCATE = 1 << 14  # ABI 3
IOCTL_DEV = 1 << 15  # ABI 5

_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1, 5: (1 << 16) - 1}
# Rights that make sense on a single file; the kernel refuses directory-only rights on a file rule.
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV

ACCESS_FS_READ = READ_FILE | READ_DIR
"""What a read-only grant allows: open files for reading and list directories (no execute)."""

ACCESS_FS_WRITE = ACCESS_FS_READ | WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG | REFER | TRUNCATE
"""What a private temporary directory allows: regular files and directories only (no sockets, fifos,
devices or symlinks, which no hook needs and which are the usual tools of a confused-deputy attack)."""

NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # the kernel struct is __attribute__((packed)): 12 bytes
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


_syscall = libc["syscall"]  # a function object of its own: the restype set here must not change libc.syscall
_syscall.restype = ctypes.c_long


def _numbers() -> tuple[int, int, int] | None:
    return _SYSCALLS.get(platform.machine())


def abi_version() -> int:
    """Return the Landlock ABI version the running kernel offers, 0 when Landlock is unavailable.

    Side-effect free: it asks the kernel with ``landlock_create_ruleset(NULL, 0, VERSION)``.
    """
    numbers = _numbers()
    if numbers is None:
        return 0
    result = _syscall(ctypes.c_long(numbers[0]), None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(int(result), 0)


def handled_fs(abi: int) -> int:
    """Return every filesystem right ABI ``abi`` can handle (all of them are handled: deny by default)."""
    return _FS_BY_ABI[min(abi, 5)] if abi > 0 else 0


@dataclass(frozen=True)
class FileRule:
    """A grant: ``access`` rights beneath ``path`` (a directory) or on ``path`` (a file)."""

    path: str
    access: int


class PreparedLayer:
    """A Landlock layer whose costly parts are done up front, so that :meth:`restrict` is a few syscalls.

    Built in the zygote: every granted path is opened once (``O_PATH``) and its rule struct filled in.
    :meth:`restrict` then creates the ruleset, adds the prebuilt rules plus optional per-call ones, and
    restricts the calling process. The ruleset itself cannot be prebuilt and shared: a ruleset fd is shared
    by every forked child, so adding one child's temp dir to it would grant that dir to later children too.

    Args:
        abi: the ABI version to target (from :func:`abi_version`).
        rules: grants known in advance; paths that do not exist are skipped (they grant nothing).
        deny_tcp: handle TCP bind and connect (ABI 4+) without granting any port.
        scoped: scope signals and abstract unix sockets to this domain (ABI 6+).
    """

    def __init__(self, abi: int, rules: Iterable[FileRule], *, deny_tcp: bool, scoped: bool) -> None:
        numbers = _numbers()
        if abi < 1 or numbers is None:
            raise OSError(errno.EOPNOTSUPP, "Landlock is not available")
        self._create, self._add, self._restrict = numbers
        self._fs = handled_fs(abi)
        self._attr = _RulesetAttr(
            handled_access_fs=self._fs,
            handled_access_net=NET_BIND_TCP | NET_CONNECT_TCP if deny_tcp and abi >= 4 else 0,
            scoped=SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if scoped and abi >= 6 else 0,
        )
        self._rules: list[_PathBeneathAttr] = []
        try:
            for rule in rules:
                prepared = self._open_rule(rule.path, rule.access)
                if prepared is not None:
                    self._rules.append(prepared)
        except BaseException:
            self.close()
            raise

    def _open_rule(self, path: str, access: int) -> _PathBeneathAttr | None:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            access &= _FILE_RIGHTS
        return _PathBeneathAttr(allowed_access=access & self._fs, parent_fd=fd)

    def restrict(self, extra: FileRule | None = None) -> None:
        """Restrict the calling process with this layer, plus the ``extra`` grant if given.

        Raises:
            OSError: the kernel refused (the process is then not restricted by this layer).
        """
        ruleset = int(
            _syscall(
                ctypes.c_long(self._create),
                ctypes.byref(self._attr),
                # An older kernel accepts the full struct as long as the fields it does not know are zero.
                ctypes.c_size_t(ctypes.sizeof(self._attr)),
                ctypes.c_uint32(0),
            )
        )
        if ruleset < 0:
            raise errno_error("landlock_create_ruleset")
        try:
            for rule in self._rules:
                self._add_rule(ruleset, rule)
            if extra is not None:
                prepared = self._open_rule(extra.path, extra.access)
                if prepared is None:
                    raise FileNotFoundError(errno.ENOENT, "no such directory", extra.path)
                try:
                    self._add_rule(ruleset, prepared)
                finally:
                    os.close(prepared.parent_fd)
            if _syscall(ctypes.c_long(self._restrict), ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
                raise errno_error("landlock_restrict_self")
        finally:
            os.close(ruleset)

    def _add_rule(self, ruleset: int, rule: _PathBeneathAttr) -> None:
        if rule.allowed_access == 0:
            return  # nothing this ABI handles is granted: the rule would be refused and changes nothing
        result = _syscall(
            ctypes.c_long(self._add),
            ctypes.c_int(ruleset),
            ctypes.c_int(_RULE_PATH_BENEATH),
            ctypes.byref(rule),
            ctypes.c_uint32(0),
        )
        if result != 0:
            raise errno_error("landlock_add_rule")

    def close(self) -> None:
        """Close the prebuilt path descriptors (in a child once restricted; they are useless after)."""
        rules, self._rules = self._rules, []
        for rule in rules:
            os.close(rule.parent_fd)
