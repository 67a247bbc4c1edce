"""The shipped systemd unit (``deploy/hookjail.service``): its settings, and its system call filter expanded to
names with ``systemd-analyze syscall-filter`` (what systemd itself would install)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from functools import cache

from ._profile import REPO

UNIT = REPO / "deploy" / "hookjail.service"


def settings() -> dict[str, list[str]]:
    """``Key=value`` lines of the unit (comments and sections dropped), each key's values in order."""
    found: dict[str, list[str]] = {}
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key.strip(), []).append(value.strip())
    return found


def systemd_analyze() -> str | None:
    """The ``systemd-analyze`` command, if this machine has it."""
    return shutil.which("systemd-analyze")


@cache
def _group(name: str) -> frozenset[str]:
    analyze = systemd_analyze()
    assert analyze is not None
    listing = subprocess.run(
        [analyze, "syscall-filter", "--no-pager", name], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    names: set[str] = set()
    for line in listing.splitlines()[1:]:  # the first line is the group's own name
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        names |= _group(entry) if entry.startswith("@") else {entry}
    return frozenset(names)


def allowed_syscalls() -> set[str]:
    """Every call ``SystemCallFilter=`` allows (the unit uses an allow list: no ``~``)."""
    names: set[str] = set()
    for value in settings()["SystemCallFilter"]:
        assert not value.startswith("~"), "expected an allow list"
        for entry in value.split():
            names |= _group(entry) if entry.startswith("@") else {entry}
    return names


def socket_families() -> list[int]:
    """``RestrictAddressFamilies=`` as numbers."""
    return [int(getattr(socket, name)) for name in settings()["RestrictAddressFamilies"][0].split()]


def capabilities() -> list[str]:
    """``CapabilityBoundingSet=``."""
    return settings()["CapabilityBoundingSet"][0].split()
