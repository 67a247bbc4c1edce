"""Confinement of the zygote and of each child: the layers, in the order they must go on.

:meth:`Confinement.prepare` runs once in the zygote, before it compiles the hook and pre-imports what the hook
names (no hook code ever runs there: its module body runs in each call's child), and confines the zygote itself:

==================  =================================================================================
layer               what it stops
==================  =================================================================================
no_new_privs        regaining privileges through exec of a set-uid or file-capability binary
user_namespace      root: the worker is uid 1000 with no capabilities, in a user namespace of its own
network_namespace   any network: an empty namespace (its loopback is down) unless ``network=True``
pid_namespace       processes outliving the zygote: its children live in a PID namespace that dies with it
ipc_namespace       the host's System V shared memory, queues and semaphores (same uid would reach them)
private_tmp         filling the host's disk: the temp root is a size-capped tmpfs seen only by the worker
                    (only when there is a temp root)
landlock            every file but the granted read-only paths and the private temp root; exec; TCP
                    bind/connect (when ``network=False``); signals and abstract unix sockets leaving the
                    domain (the proxy, the zygote, other children)
seccomp             exec, ptrace, mounts, namespaces, keyring, bpf, io_uring, modules, ... (see
                    :mod:`runner._seccomp`); file metadata changes; sockets other than IPv4/IPv6
==================  =================================================================================

It also prebuilds what each child adds, so that :meth:`Confinement.apply_child`, called in every forked
child before any hook code runs, costs about 0.2 ms: a second Landlock layer that grants writes to that
child's own temp dir only (and re-grants the read-only paths, see :meth:`Confinement.apply_child`), and a
second seccomp filter that forbids creating processes.

What this does not stop is written down in the README's "Security model": side channels and counters shared by
a template's children, kernel bugs, CPU and memory use within the rlimits.
"""

from __future__ import annotations

import ctypes
import os
import sysconfig
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ._errors import SandboxUnavailable
from ._landlock import ACCESS_FS_READ, ACCESS_FS_WRITE, READ_FILE, WRITE_FILE, FileRule, PreparedLayer
from ._landlock import abi_version as landlock_abi
from ._linux import PR_SET_NO_NEW_PRIVS, libc
from ._userns import drop_capabilities, enter_namespaces, mount_private_tmp, probe_namespaces, start_reaper

if TYPE_CHECKING:
    # Imported lazily at run time: pyseccomp raises on import on a host without libseccomp.
    from ._seccomp import Program

__all__ = ("LANDLOCK_MIN_ABI", "Confinement", "probe", "system_read_paths")

LANDLOCK_MIN_ABI = 6
"""The oldest Landlock ABI strict mode accepts. The worker runs as the proxy's uid (see
:mod:`runner._userns`), so only Landlock's signal scoping (ABI 6) keeps it from signalling the proxy."""

#: What to do when a layer is missing, said with the error (the README's "Deploying" has the details).
_FIXES = {
    "user_namespace": (
        "In a container, run with hookjail's seccomp profile (deploy/seccomp/hookjail.json: the default profiles "
        "refuse unshare without CAP_SYS_ADMIN); on Ubuntu 24.04 allow user namespaces for hookjail "
        "(deploy/apparmor/hookjail, or sysctl kernel.apparmor_restrict_unprivileged_userns=0)"
    ),
    "private_tmp": "The tmpfs is mounted in the worker's own namespaces: allow mount in the seccomp/AppArmor profile",
    "landlock": "Landlock with signal scoping needs Linux 6.12+ with landlock in the LSM list (lsm=...,landlock)",
    "seccomp": "Install libseccomp2 (Debian/Ubuntu) and run a kernel with CONFIG_SECCOMP_FILTER",
}
_HOST_NETWORK = "host network (allowed)"


def system_read_paths(*, network: bool) -> tuple[str, ...]:
    """Return the system files any Python worker needs to read, beyond the interpreter's own directories.

    Measured with strace on ``import json, re, datetime, hashlib, ipaddress, zoneinfo, pydantic, ssl, asyncio,
    sqlite3, uuid`` plus their first use:

    * the dynamic loader's cache and the multiarch library directory: C extensions (``_ssl``, ``_hashlib``,
      ``_sqlite3``, ``_uuid``, ``_lzma``, ``_ctypes``) load ``libssl``, ``libcrypto``, ``libffi`` ... lazily;
    * ``/usr/share/zoneinfo`` (and ``/etc/localtime``, a link into it): ``zoneinfo`` and local time;
    * OpenSSL's configuration and the CA certificates (not ``/etc/ssl/private``): ``ssl`` reads them on import
      and on ``create_default_context()``;
    * ``/dev/urandom`` (older kernels without ``getrandom``), ``/dev/null`` (granted writable by the caller);
    * with the network allowed, the resolver's files: hosts, resolv.conf, nsswitch.conf, gai.conf ...

    Paths that do not exist on this host are harmless: they grant nothing.
    """
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    paths = [
        "/etc/ld.so.cache",
        *(f"{root}/{multiarch}" for root in ("/lib", "/usr/lib") if multiarch),
        "/usr/share/zoneinfo",
        "/etc/localtime",
        "/usr/lib/ssl",
        "/etc/ssl/openssl.cnf",
        "/etc/ssl/certs",
        "/dev/urandom",
    ]
    if network:
        paths += [
            f"/etc/{name}"
            for name in (
                "hosts",
                "resolv.conf",
                "nsswitch.conf",
                "gai.conf",
                "host.conf",
                "services",
                "protocols",
            )
        ]
    return tuple(paths)


class Confinement:
    """The confinement of one zygote and the per-child layers prebuilt for its children.

    Create it with :meth:`prepare`, never directly.

    Attributes:
        layers: each layer's state: ``True``, ``False`` (not applied; only in non-strict mode) or a short
            detail such as ``"abi 7"``; the keys are those of the table in the module docstring.
    """

    def __init__(
        self,
        layers: dict[str, bool | str],
        child_landlock: PreparedLayer | None,
        child_seccomp: Program | None,
        reaper_fd: int | None,
    ) -> None:
        self.layers = layers
        self._child_landlock = child_landlock
        self._child_seccomp = child_seccomp
        self._reaper_fd = reaper_fd

    @classmethod
    def prepare(
        cls,
        *,
        network: bool,
        read_paths: Iterable[str],
        tmp_root: str | None,
        strict: bool,
        tmp_size_mb: int = 64,
    ) -> Confinement:
        """Confine the calling process (the zygote) and prebuild each child's layers.

        Must run in a single-threaded process with ``/proc`` still readable; it cannot be undone. On error in
        strict mode the process is left partly confined: it must exit rather than go on.

        It forks one process, the reaper of the new PID namespace (see :mod:`runner._userns`), which closes
        every descriptor it inherited. Afterwards, wait for specific children (``waitpid(pid)``, pidfds), not
        for "any child": the reaper is one and never exits on its own.

        Args:
            network: keep the host network (no new network namespace, TCP not restricted).
            read_paths: absolute paths the hook may read (files or directories, recursively); the system files
                of :func:`system_read_paths` are added.
            tmp_root: an empty private directory under which each child's temp dir is made (read-write for the
                zygote), or ``None`` for no writable directory at all. A tmpfs is mounted over it in the
                zygote's mount namespace: make the children's dirs after this call, from the zygote.
            strict: raise :class:`SandboxUnavailable` naming a layer the host cannot provide, instead of
                leaving it off and reporting it as ``False``.
            tmp_size_mb: the size of that tmpfs: what all calls together may have written at once.

        Returns:
            The confinement, whose :attr:`layers` say what is on.

        Raises:
            SandboxUnavailable: in strict mode, a layer could not be applied.

        The work is done by the steps of :data:`_ZYGOTE_STEPS`, in that order.
        """
        setup = _ZygoteSetup(
            network=network, read_paths=tuple(read_paths), tmp_root=tmp_root, strict=strict, tmp_size_mb=tmp_size_mb
        )
        for step in _ZYGOTE_STEPS:
            step(setup)
        return cls(setup.layers, setup.child_landlock, setup.child_seccomp, setup.reaper_fd)

    def apply_child(self, tmp_dir: str | None) -> None:
        """Add the per-child layers to the calling process: a freshly forked child, before any hook code runs.

        Landlock: a new layer that handles reads as well as writes. A layer only restricts the rights it
        handles, and the zygote's layer grants read-write on the whole temp root; for one child not to read
        another's temp dir, this layer must handle reads too, and so re-grants the read-only paths besides the
        child's own ``tmp_dir`` (read-write).

        Seccomp: a second filter denying ``fork``, ``vfork`` and ``clone`` of a process (``EPERM``); threads
        keep working.

        It also closes the descriptors the zygote kept for building these layers. Call it once per child.

        Args:
            tmp_dir: the child's own empty directory under the zygote's ``tmp_root``, or ``None``.

        Raises:
            OSError: a layer could not be applied; the child must exit without running the hook.
        """
        if self._child_landlock is not None:
            extra = FileRule(tmp_dir, ACCESS_FS_WRITE) if tmp_dir is not None else None
            try:
                self._child_landlock.restrict(extra)
            finally:
                self._child_landlock.close()
        if self._child_seccomp is not None:
            self._child_seccomp.load()
        if self._reaper_fd is not None:
            os.close(self._reaper_fd)


class _ZygoteSetup:
    """What :meth:`Confinement.prepare` knows and has built so far, passed from one step to the next.

    Each step puts one layer on (or, in non-strict mode, records it as ``False`` in :attr:`layers`); they run
    in the order of :data:`_ZYGOTE_STEPS`, which is the order the kernel needs.
    """

    def __init__(
        self, *, network: bool, read_paths: tuple[str, ...], tmp_root: str | None, strict: bool, tmp_size_mb: int
    ) -> None:
        self.network = network
        self.read_paths = read_paths
        self.tmp_root = tmp_root
        self.strict = strict
        self.tmp_size_mb = tmp_size_mb
        self.layers: dict[str, bool | str] = {}
        self.abi = 0
        self.landlock_missing = ""
        self.seccomp_missing = ""
        self.zygote_filter: Program | None = None
        self.child_seccomp: Program | None = None
        self.child_landlock: PreparedLayer | None = None
        self.in_namespaces = False
        self.reaper_fd: int | None = None

    def unavailable(self, layer: str, why: str) -> None:
        """Strict mode: raise naming ``layer`` and how to fix it; otherwise record the layer as off."""
        if self.strict:
            hint = _FIXES.get(layer, "")
            raise SandboxUnavailable(f"{layer} is not available on this host: {why}" + (f". {hint}" if hint else ""))
        self.layers[layer] = False

    def check_host(self) -> None:
        """Build the seccomp filters and ask for the Landlock ABI, before anything is confined.

        Everything that can fail for want of host support is checked here, so that strict mode fails with the
        process still whole. Importing pyseccomp runs ``ctypes.util.find_library`` (a subprocess): another
        reason to do it first.
        """
        try:
            # Lazily: pyseccomp raises on import on a host without libseccomp (non-strict mode tolerates it).
            from ._seccomp import (  # noqa: PLC0415
                Program,
                build_child_filter,
                build_zygote_filter,
                filter_mode_available,
            )
        except (ImportError, RuntimeError) as exc:  # pyseccomp raises RuntimeError without libseccomp
            self.seccomp_missing = f"libseccomp cannot be loaded ({exc})"
        else:
            self.seccomp_missing = "" if filter_mode_available() else "the kernel has no seccomp filter mode"
            if not self.seccomp_missing:
                self.zygote_filter = Program(build_zygote_filter())
                self.child_seccomp = Program(build_child_filter())
        self.abi = abi = landlock_abi()
        if abi < 1:
            self.landlock_missing = "the kernel offers no Landlock ABI"
        elif abi < LANDLOCK_MIN_ABI and self.strict:
            self.landlock_missing = f"ABI {abi} has no signal scoping (needs {LANDLOCK_MIN_ABI})"
        if self.strict and (self.seccomp_missing or self.landlock_missing):
            layer = "seccomp" if self.seccomp_missing else "landlock"
            self.unavailable(layer, self.seccomp_missing or self.landlock_missing)

    def no_new_privs(self) -> None:
        """No privileges regained through exec of a set-uid or file-capability binary."""
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            self.unavailable("no_new_privs", os.strerror(ctypes.get_errno()))
        else:
            self.layers["no_new_privs"] = True

    def namespaces(self) -> None:
        """New user, mount, IPC, PID and (unless the network is allowed) network namespaces."""
        try:
            self.layers["user_namespace"] = enter_namespaces(network=self.network)
        except OSError as exc:
            self.unavailable("user_namespace", exc.strerror or str(exc))
        self.in_namespaces = in_namespaces = bool(self.layers["user_namespace"])
        self.layers["network_namespace"] = _HOST_NETWORK if self.network else in_namespaces
        self.layers["pid_namespace"] = in_namespaces
        self.layers["ipc_namespace"] = in_namespaces

    def private_tmp(self) -> None:
        """A size-capped tmpfs over the temp root, seen only in the worker's mount namespace."""
        if self.tmp_root is None:
            return
        try:
            if not self.in_namespaces:
                raise OSError(0, "needs the user namespace")
            self.layers["private_tmp"] = mount_private_tmp(self.tmp_root, self.tmp_size_mb)
        except OSError as exc:
            self.unavailable("private_tmp", exc.strerror or str(exc))

    def drop_capabilities(self) -> None:
        """Drop what the new user namespace granted (the steps before needed it)."""
        if not self.in_namespaces:
            return
        try:
            drop_capabilities()
        except OSError as exc:  # never seen; but running on with capabilities would not be a sandbox
            raise SandboxUnavailable(f"user_namespace: cannot drop capabilities: {exc.strerror}") from exc

    def landlock(self) -> None:
        """The zygote's Landlock layer (granted files, the temp root, TCP, scoping); the child's is prebuilt."""
        if self.landlock_missing:
            self.unavailable("landlock", self.landlock_missing)
            return
        abi = self.abi
        read_rules = [
            FileRule(path, ACCESS_FS_READ) for path in (*self.read_paths, *system_read_paths(network=self.network))
        ]
        # /dev/null is where a hook or library sends what it does not want: writing there reveals nothing.
        read_rules.append(FileRule("/dev/null", READ_FILE | WRITE_FILE))
        zygote_rules = [*read_rules]
        if self.tmp_root is not None:
            zygote_rules.append(FileRule(self.tmp_root, ACCESS_FS_WRITE))
        zygote_layer = PreparedLayer(abi, zygote_rules, deny_tcp=not self.network, scoped=True)
        try:
            zygote_layer.restrict()
        finally:
            zygote_layer.close()
        self.child_landlock = PreparedLayer(abi, read_rules, deny_tcp=False, scoped=True)
        self.layers["landlock"] = f"abi {abi}" if abi >= LANDLOCK_MIN_ABI else f"abi {abi} (no scoping)"

    def seccomp(self) -> None:
        """The zygote's seccomp filter (the child's is prebuilt by :meth:`check_host`)."""
        if self.zygote_filter is None:
            self.unavailable("seccomp", self.seccomp_missing)
        else:
            self.zygote_filter.load()
            self.layers["seccomp"] = True

    def reaper(self) -> None:
        """The PID namespace's init, which dies with the zygote; last, so that it is as confined as any child."""
        self.reaper_fd = start_reaper() if self.in_namespaces else None


#: The steps of :meth:`Confinement.prepare`, in the order they must run.
_ZYGOTE_STEPS: tuple[Callable[[_ZygoteSetup], None], ...] = (
    _ZygoteSetup.check_host,
    _ZygoteSetup.no_new_privs,
    _ZygoteSetup.namespaces,
    _ZygoteSetup.private_tmp,
    _ZygoteSetup.drop_capabilities,
    _ZygoteSetup.landlock,
    _ZygoteSetup.seccomp,
    _ZygoteSetup.reaper,
)


def probe() -> dict[str, bool | str]:
    """Report which layers this host can provide, without confining the caller.

    Landlock and seccomp are asked about directly (both questions are side-effect free); namespaces are tried
    in a short-lived separate interpreter (tens of milliseconds), since they cannot be left again.

    Returns:
        Layer name -> ``True``, ``False`` or a detail, with the keys of :attr:`Confinement.layers`.
    """
    namespaces = probe_namespaces()
    userns = namespaces["user_namespace"]
    layers: dict[str, bool | str] = {
        "no_new_privs": True,
        "user_namespace": userns,
        "network_namespace": bool(userns),
        "pid_namespace": bool(userns),
        "ipc_namespace": bool(userns),
        "private_tmp": namespaces["private_tmp"],
    }
    abi = landlock_abi()
    layers["landlock"] = (
        f"abi {abi}" if abi >= LANDLOCK_MIN_ABI else f"abi {abi} (needs {LANDLOCK_MIN_ABI})" if abi else False
    )
    try:
        from ._seccomp import filter_mode_available  # noqa: PLC0415 - see Confinement.prepare
    except (ImportError, RuntimeError):
        layers["seccomp"] = False
    else:
        layers["seccomp"] = filter_mode_available()
    return layers
