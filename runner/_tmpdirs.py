"""Each call's private temp dir: made by the template before the fork, removed after the child is reaped.

The hook is hostile, and the removal runs in the template, where an exception would end every login in
flight. So the removal never raises and never recurses: a tree a hook built 10,000 levels deep, or longer
than ``PATH_MAX``, is flattened by moving each subdirectory up to the top before it is emptied, one open
directory at a time. The child's seccomp filter makes every directory it creates owner-rwx (``umask`` is
fixed and ``mkdir`` without ``0o700`` is refused), so the template can always list what it must delete.

Names are random: a hook that knows another call's directory name could ``stat`` files inside it (Landlock
does not cover ``stat``), and a name chosen by the template cannot be guessed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat

__all__ = ("make_call_dir", "remove_tree")

logger = logging.getLogger("hookjail.runner")

#: More entries than a tmpfs of the runner's size may hold: past this, the removal gives up (and says so).
_MAX_STEPS = 1_000_000


def make_call_dir(root: str) -> str | None:
    """A new, empty, randomly named directory under ``root``; ``None`` if none can be made now (the tmpfs is
    full of a running call's files, say): that call then runs without a writable temp dir."""
    path = os.path.join(root, secrets.token_hex(16))
    try:
        os.mkdir(path, 0o700)
    except OSError:
        return None
    return path


def _empty(root_fd: int, top: int, steps: list[int]) -> None:
    """Remove everything inside the directory open as ``top`` (a subdirectory of the one open as
    ``root_fd``, or that one itself), moving its subdirectories up to ``root_fd`` first."""
    with os.scandir(top) as entries:
        names = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
    for name, is_dir in names:
        steps[0] += 1
        if not is_dir:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=top)
        elif top != root_fd:
            # Flatten: the subdirectory is emptied later from the top, whatever its depth was.
            os.rename(name, secrets.token_hex(12), src_dir_fd=top, dst_dir_fd=root_fd)


def remove_tree(path: str) -> bool:
    """Remove the directory ``path`` and everything in it. Never raises, never recurses.

    Returns:
        True when it is gone; False when something could not be removed (logged).
    """
    steps = [0]
    try:
        root_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    except OSError as exc:
        logger.error("cannot open a call's temp dir for removal: %s", exc.strerror)
        return False
    try:
        while steps[0] < _MAX_STEPS:
            _empty(root_fd, root_fd, steps)  # files at the top go; nothing moves
            with os.scandir(root_fd) as entries:
                subdirs = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
            if not subdirs:
                break
            for name in subdirs:
                sub_fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root_fd)
                try:
                    mode = os.fstat(sub_fd).st_mode
                    if stat.S_IMODE(mode) & 0o700 != 0o700:
                        raise PermissionError(f"a directory of mode {stat.S_IMODE(mode):o}")
                    _empty(root_fd, sub_fd, steps)
                finally:
                    os.close(sub_fd)
                os.rmdir(name, dir_fd=root_fd)
        os.rmdir(path)
    except (OSError, ValueError) as exc:
        logger.error("cannot remove a call's temp dir: %s", exc)
        return False
    finally:
        os.close(root_fd)
    return steps[0] < _MAX_STEPS
