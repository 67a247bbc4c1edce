"""The C library and the few Linux constants the runner calls it with, in one place.

One ``CDLL`` for the whole runner, loaded with ``use_errno`` so that :func:`errno_error` sees the errno of the
call that just failed. Only the standard library is imported here: :mod:`runner._userns` loads this module in a
bare interpreter (its namespace probe) as well.

A module that changes a function's ``argtypes`` or ``restype`` takes its own function object with
``libc["name"]`` (a fresh one each time), never ``libc.name`` (one shared object), so that no caller's
conversions change under another's feet.
"""

from __future__ import annotations

import ctypes
import os
import signal

__all__ = (
    "PR_CAPBSET_DROP",
    "PR_CAP_AMBIENT",
    "PR_CAP_AMBIENT_CLEAR_ALL",
    "PR_SET_NO_NEW_PRIVS",
    "PR_SET_PDEATHSIG",
    "PR_SET_SECCOMP",
    "check",
    "errno_error",
    "libc",
    "set_parent_death_signal",
)

# prctl options (include/uapi/linux/prctl.h)
PR_SET_PDEATHSIG = 1
PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

#: The process's C library (``dlopen(NULL)``), errno kept per call.
libc = ctypes.CDLL(None, use_errno=True)


def errno_error(what: str) -> OSError:
    """Return the ``OSError`` for the errno the last failed libc call left, its message prefixed with ``what``."""
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


def check(result: int, what: str) -> None:
    """Raise :func:`errno_error` when a libc call returned non-zero.

    Raises:
        OSError: ``result`` is not 0.
    """
    if result != 0:
        raise errno_error(what)


def set_parent_death_signal(sig: int = signal.SIGKILL) -> None:
    """Have the kernel send ``sig`` to the calling process when its parent dies (``PR_SET_PDEATHSIG``).

    Cleared by a change of uid, so it must be armed again after one. Cannot fail for a valid signal.
    """
    libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
