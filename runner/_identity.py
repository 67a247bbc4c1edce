"""The worker's outer identity: a uid of its own when the proxy runs as root and the worker can do without root's.

Inside its user namespace the worker is always uid 1000 without capabilities (:mod:`runner._userns`). What the
kernel sees *outside* is the uid the template was started as. With the proxy's own uid, every per-user quota
(pending signals, pipe buffers, processes) is shared with the proxy, every file the proxy owns passes the
permission bits (only Landlock and seccomp stand in between), and any process of that uid is reachable by
same-uid rules. Started as a dedicated unprivileged uid, none of that is shared: the permission bits become
one more layer (``distinct_uid``).

That uid must be able to read what the worker needs: the interpreter and its installation, the runner, the
hook and its granted files. A pyenv build under ``/root`` (mode 0700) cannot be read by anyone else; then the
worker keeps the proxy's uid and the layer is reported off with the path that prevented it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ("DEFAULT_WORKER_UID", "WorkerIdentity", "choose_identity", "unreadable_by")

DEFAULT_WORKER_UID = 65532
"""The uid (and gid) a worker runs as when it can: unprivileged, and with no files or processes of its own."""


@dataclass(frozen=True)
class WorkerIdentity:
    """Who the template is started as.

    Attributes:
        uid: the outer uid and gid to start it as, or ``None`` to keep the proxy's.
        note: for the layer report: the uid when on, the reason when off.
    """

    uid: int | None
    note: str


def _allows(st: os.stat_result, uid: int, gid: int, need: int) -> bool:
    """Whether mode bits ``need`` (a combination of 4, 2, 1) are granted to ``uid``/``gid`` by ``st``."""
    if st.st_uid == uid:
        shift = 6
    elif st.st_gid == gid:
        shift = 3
    else:
        shift = 0
    return (st.st_mode >> shift) & need == need


def unreadable_by(path: str, uid: int, gid: int) -> str | None:
    """The first component of ``path`` that ``uid``/``gid`` (with no supplementary groups) cannot get through
    or read, or ``None`` when the whole path is readable (a directory: listable). Symlinks are followed, as
    the worker would follow them; a path that does not exist is readable (it grants nothing)."""
    try:
        real = os.path.realpath(path, strict=True)
    except OSError:
        return None
    current = "/"
    for part in [p for p in real.split("/") if p]:
        if not _allows(os.stat(current), uid, gid, 1):
            return current
        current = os.path.join(current, part)
    st = os.stat(current)
    need = 5 if stat.S_ISDIR(st.st_mode) else 4
    return None if _allows(st, uid, gid, need) else current


def choose_identity(wanted: int | None, paths: Iterable[str]) -> WorkerIdentity:
    """Decide the worker's outer uid: ``wanted`` when the proxy is root and ``wanted`` can read every path in
    ``paths``; otherwise the proxy's own, with the reason."""
    if wanted is None:
        return WorkerIdentity(None, "off: no worker uid configured")
    if os.geteuid() != 0:
        return WorkerIdentity(None, "off: the proxy does not run as root, so it cannot start the worker as another uid")
    for path in paths:
        blocked = unreadable_by(path, wanted, wanted)
        if blocked is not None:
            return WorkerIdentity(None, f"off: uid {wanted} cannot read {blocked} (needed for {path})")
    return WorkerIdentity(wanted, f"uid {wanted}")
