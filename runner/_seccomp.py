"""Seccomp: the system-call layer, built with libseccomp (pyseccomp) and loaded as raw BPF.

Two filters, both deny lists on top of a default of "allow" (an allow list would have to follow every system
call that CPython, glibc and C extensions may make, and would break hooks in ways that are hard to explain):

* the **zygote filter** (:func:`build_zygote_filter`), loaded by the zygote on itself and so inherited by
  every child: no exec, no ptrace or reading other processes' memory, no mounts, no new namespaces
  (``unshare``, ``setns``, ``clone`` with a namespace flag), no kernel keyring, bpf, perf, io_uring,
  userfaultfd, modules, kexec, reboot, swap, clock or host-name changes; no ``chmod``/``chown``/``utime``/
  xattr changes (Landlock does not cover file metadata, and the worker's uid owns every root-owned file, see
  :mod:`runner._userns`); no ``prlimit`` on another process (same uid suffices for it); no change to
  another process's scheduling: ``setpriority`` only on ``PRIO_PROCESS`` 0, ``ioprio_set`` only on
  ``IOPRIO_WHO_PROCESS`` 0, ``sched_setaffinity``/``sched_setscheduler``/``sched_setparam``/``sched_setattr``/
  ``migrate_pages``/``move_pages`` only on pid 0 (the caller: naming even itself by its pid is refused;
  other threads are out of reach too); no System V IPC and no POSIX message queues (``mq_*``); no inotify;
  no ``TIOCSTI``/``TIOCLINUX`` on a terminal; and no sockets but IPv4/IPv6 (a unix socket reaches past the
  network namespace to any listener on the filesystem; ``socketpair`` stays allowed, asyncio needs it).
* the **child filter** (:func:`build_child_filter`), stacked on it in each forked child: no process creation
  (``fork``, ``vfork``, ``clone`` without ``CLONE_THREAD``), threads keep working; no ``memfd_create`` or
  ``memfd_secret`` (memory that no rlimit counts); no ``setpgid``/``setsid`` (the child stays alone in its
  process group, which the runner reprioritizes as a whole); and nothing a call could
  leave behind that its template cannot list or delete: no ``umask`` that masks any of the owner's bits
  ``0o700`` (glibc's ``umask()`` then returns ``(mode_t)-1`` without setting ``errno``, so ``os.umask``
  raises an ``OSError`` carrying whatever ``errno`` held before, often 0; ``umask(0)``, ``umask(0o022)``
  work) and no ``mkdir``/``mkdirat`` with a mode lacking any of the owner's bits.

``clone3`` fails with ``ENOSYS`` in both: its flags live in memory that seccomp cannot inspect, and ``ENOSYS``
(not ``EPERM``) makes glibc fall back to ``clone`` for threads, whose flags a filter can check.

Filters are compiled once, in the zygote, and exported as BPF (:class:`Program`); a child loads its program
with one ``prctl(PR_SET_SECCOMP)``: 0.07 ms measured, against 0.13 ms for libseccomp's own ``load()`` of the
prebuilt filter and 0.3 ms for building and loading it in each child.
Other architectures' system calls (the i386 ``int 0x80`` entry on x86_64, x32) kill the process.
"""

from __future__ import annotations

import ctypes
import errno
import os

import pyseccomp

from ._linux import PR_SET_SECCOMP, errno_error, libc

__all__ = ("Program", "build_child_filter", "build_zygote_filter", "filter_mode_available")

_SECCOMP_MODE_FILTER = 2

_CLONE_THREAD = 0x00010000
# Every namespace flag clone(2) accepts (CLONE_NEWTIME shares its bit with CSIGNAL there, so it can only be
# requested through unshare/clone3, both denied outright).
_CLONE_NEW_NAMESPACES = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)

_TIOCSTI = 0x5412
_TIOCLINUX = 0x541C

_AF_UNIX = 1
_AF_INET = 2
_AF_INET6 = 10

_PRIO_PROCESS = 0
_IOPRIO_WHO_PROCESS = 1
# Calls that change how a process is scheduled (nice value, CPU affinity, policy, I/O priority, NUMA placement),
# with the index of their pid argument; 0 means the calling thread. Same uid is all the kernel asks for, and
# the worker shares its uid with the proxy and every other worker (ptrace rules, and so Landlock, only guard
# migrate_pages and move_pages).
_SCHEDULING_PID_ARG = {
    "sched_setaffinity": 0,
    "sched_setscheduler": 0,
    "sched_setparam": 0,
    "sched_setattr": 0,
    "migrate_pages": 0,
    "move_pages": 0,
    "setpriority": 1,  # setpriority(which, who, prio)
    "ioprio_set": 1,  # ioprio_set(which, who, ioprio)
}
_OWNER_BITS = (0o400, 0o200, 0o100)

_DENIED = (
    # running other programs
    "execve",
    "execveat",
    # other processes' memory and descriptors
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "process_madvise",
    "pidfd_getfd",
    "kcmp",
    # namespaces and mounts
    "unshare",
    "setns",
    "mount",
    "umount2",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "pivot_root",
    "chroot",
    # kernel attack surface no hook needs
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "fanotify_init",
    "open_by_handle_at",
    "name_to_handle_at",
    "lookup_dcookie",
    # System V IPC: objects are checked by uid, which the worker shares with the proxy (its own IPC
    # namespace already hides the host's; these would still let calls of one hook talk to each other)
    "shmget",
    "shmat",
    "shmdt",
    "shmctl",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "semget",
    "semop",
    "semtimedop",
    "semctl",
    # POSIX message queues, for the same reason: all calls of one template share an IPC namespace, and
    # mq_open(O_CREAT) creates the queue even when Landlock then refuses to open it, so a queue's mere name
    # carried data from one login to the next; queues also count against a per-uid quota of the host.
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedreceive",
    "mq_notify",
    "mq_getsetattr",
    # watching paths it cannot read (inotify reports names created or opened in a denied directory)
    "inotify_init",
    "inotify_init1",
    "inotify_add_watch",
    "fanotify_mark",
    # the host itself
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "quotactl_fd",
    "syslog",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "sethostname",
    "setdomainname",
    "iopl",
    "ioperm",
    "vhangup",
    "uselib",
    "nfsservctl",
    # file metadata, which Landlock does not cover
    "chmod",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "chown",
    "fchown",
    "lchown",
    "fchownat",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
    "utime",
    "utimes",
    "utimensat",
    "futimesat",
    "mknod",
    "mknodat",
)
# Newer than the libseccomp on Debian 12 knows by name; the numbers are the unified ones (x86_64 = aarch64).
_DENIED_BY_NUMBER = {
    "setxattrat": 463,
    "removexattrat": 466,
    "file_setattr": 469,
    "memfd_secret": 447,
}


def _new_filter() -> pyseccomp.SyscallFilter:
    flt = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    # A system call made through another ABI (int 0x80, x32) would dodge every rule keyed on native numbers.
    flt.set_attr(pyseccomp.Attr.ACT_BADARCH, pyseccomp.KILL_PROCESS)
    # no_new_privs is set by the zygote itself before anything is loaded; do not let a load() set it silently.
    flt.set_attr(pyseccomp.Attr.CTL_NNP, 0)
    flt.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
    return flt


def _deny(flt: pyseccomp.SyscallFilter, name: str, *args: pyseccomp.Arg) -> None:
    number = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
    if number == -1:  # __NR_SCMP_ERROR: libseccomp does not know the name
        number = _DENIED_BY_NUMBER[name]
    flt.add_rule(pyseccomp.ERRNO(errno.EPERM), number, *args)


def build_zygote_filter() -> pyseccomp.SyscallFilter:
    """Build the filter the zygote loads on itself (and so every child inherits). See the module docstring."""
    flt = _new_filter()
    for name in (*_DENIED, *_DENIED_BY_NUMBER):
        _deny(flt, name)
    for flag in _CLONE_NEW_NAMESPACES:
        _deny(flt, "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, flag, flag))
    # socket(2) families other than IPv4/IPv6: AF_UNSPEC(0) fails anyway, AF_UNIX(1) and 3..9 and >10 denied.
    # Comparisons are on the full 64-bit register, so a family with high bits set (which the kernel would
    # truncate to an int) falls under "> 10".
    for family in (_AF_UNIX, *range(_AF_INET + 1, _AF_INET6)):
        _deny(flt, "socket", pyseccomp.Arg(0, pyseccomp.EQ, family))
    _deny(flt, "socket", pyseccomp.Arg(0, pyseccomp.GT, _AF_INET6))
    # Resource limits of other processes: prlimit needs only the same uid, which the proxy and every other
    # worker share. glibc's setrlimit/getrlimit pass pid 0 (the caller), which stays allowed.
    _deny(flt, "prlimit64", pyseccomp.Arg(0, pyseccomp.NE, 0))
    # Scheduling of other processes: only the caller itself (pid or who 0, which 0 = PRIO_PROCESS for
    # setpriority and 1 = IOPRIO_WHO_PROCESS for ioprio_set; PRIO_PGRP/PRIO_USER and their I/O equivalents would
    # reach every process of a group or of the uid). These arguments are ints (pid_t) that the kernel truncates
    # to their low 32 bits, while seccomp sees the whole 64-bit register. Comparing the full register with NE
    # is strict: the only value let through is exactly 0 (or exactly 1), whose truncation is that same value;
    # one whose low half names another process (0xffffffff00000005 -> pid 5) is non-zero, so denied, and one
    # whose low half alone is 0 (0x100000000, the caller after truncation) is denied as well, harmlessly.
    # (A masked comparison of the low half could not say "not equal" in one rule.)
    for name, pid_arg in _SCHEDULING_PID_ARG.items():
        _deny(flt, name, pyseccomp.Arg(pid_arg, pyseccomp.NE, 0))
    _deny(flt, "setpriority", pyseccomp.Arg(0, pyseccomp.NE, _PRIO_PROCESS))
    _deny(flt, "ioprio_set", pyseccomp.Arg(0, pyseccomp.NE, _IOPRIO_WHO_PROCESS))
    # Typing into, or reprogramming, a terminal someone let the worker inherit: Landlock's device-ioctl right
    # only covers devices opened after it. The command is an int to the kernel: compare the low 32 bits.
    for request in (_TIOCSTI, _TIOCLINUX):
        _deny(flt, "ioctl", pyseccomp.Arg(1, pyseccomp.MASKED_EQ, 0xFFFFFFFF, request))
    return flt


def build_child_filter() -> pyseccomp.SyscallFilter:
    """Build the filter stacked in each child: no new processes (threads allowed), nothing its template could not
    remove. See the module docstring."""
    flt = _new_filter()
    _deny(flt, "fork")  # absent on aarch64: libseccomp ignores rules for calls an architecture lacks
    _deny(flt, "vfork")
    _deny(flt, "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, _CLONE_THREAD, 0))
    # Memory no rlimit counts: memfd pages are neither mapped (RLIMIT_AS) nor, unmapped, blamed on the hook by
    # the OOM killer; 57 of them at the 8 MiB file-size limit held 456 MiB per call.
    _deny(flt, "memfd_create")
    _deny(flt, "memfd_secret")
    # The child leads a process group of its own (set before this filter): it stays the group's only process,
    # so that the runner can lower the priority of all its threads at once (Child.lower_priority, PRIO_PGRP).
    _deny(flt, "setpgid")
    _deny(flt, "setsid")
    # The template deletes each call's temp dir after it, with no capability left to bypass permissions: a
    # directory without r, w or x for its owner (mkdir(path, 0) did it) would stay behind, and chmod is denied.
    # A umask may not strip those bits either (one that masks any owner bit is refused; the kernel only uses the
    # low nine bits of it), and a mode is refused when any one owner bit is missing: (mode & 0o700) != 0o700,
    # one rule per bit. The kernel truncates the mode to 16 bits; these bits sit below that, so a high-bit
    # mode cannot hide them.
    for bit in _OWNER_BITS:
        _deny(flt, "umask", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, bit, bit))
        _deny(flt, "mkdir", pyseccomp.Arg(1, pyseccomp.MASKED_EQ, bit, 0))  # absent on aarch64, as fork
        _deny(flt, "mkdirat", pyseccomp.Arg(2, pyseccomp.MASKED_EQ, bit, 0))
    return flt


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


_prctl = libc["prctl"]  # a function object of its own: argtypes set here must not change libc.prctl
_prctl.restype = ctypes.c_int
_prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong)


class Program:
    """A compiled filter: BPF exported from libseccomp once, loadable many times with one ``prctl``.

    The buffer and the ``sock_fprog`` pointing at it are built here, so that :meth:`load` allocates nothing.

    Args:
        flt: the libseccomp filter to compile.
    """

    def __init__(self, flt: pyseccomp.SyscallFilter) -> None:
        fd = os.memfd_create("hookjail-seccomp", os.MFD_CLOEXEC)
        try:
            with open(fd, "wb", closefd=False) as file:
                flt.export_bpf(file)
            size = os.lseek(fd, 0, os.SEEK_END)
            self.bpf = os.pread(fd, size, 0)
        finally:
            os.close(fd)
        self._buffer = ctypes.create_string_buffer(self.bpf, len(self.bpf))
        self._fprog = _SockFprog(len(self.bpf) // 8, ctypes.addressof(self._buffer))

    def load(self) -> None:
        """Install the filter on the calling thread (needs no_new_privs or CAP_SYS_ADMIN).

        Raises:
            OSError: the kernel refused the filter.
        """
        if _prctl(PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(self._fprog), 0, 0) != 0:
            raise errno_error("seccomp filter")


def filter_mode_available() -> bool:
    """Return whether the kernel offers seccomp filters, without installing one.

    ``prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, NULL)`` copies the program before any other check: a kernel
    with filter support answers ``EFAULT``, one without ``EINVAL``.
    """
    result = _prctl(PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, None, 0, 0)
    return result != 0 and ctypes.get_errno() == errno.EFAULT
