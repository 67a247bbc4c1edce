"""Whether this process is one of the runner's workers (a template or one call's child) or the parent."""

from __future__ import annotations

__all__ = ("enter", "in_worker")

_in_worker = False


def enter() -> None:
    """Marks the calling process as a worker: the template calls it first thing; its children inherit it."""
    global _in_worker  # noqa: PLW0603 - one fact about the whole process, set once before anything else runs
    _in_worker = True


def in_worker() -> bool:
    """Return whether the caller runs inside a worker of :class:`runner.HookRunner`.

    True in a worker template (while it imports a ``HookSpec.adapter``, for instance) and in each call's
    child, where the hook runs; False in the process that runs the :class:`~runner.HookRunner`, and in any
    other.
    """
    return _in_worker
