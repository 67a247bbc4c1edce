"""Test a hook the way the proxy runs it: through the real sandbox, with an in-memory host.

:func:`run_hook` starts a worker with the same confinement as production (``runner.Sandbox()`` by default:
strict, no network, only the hook's own files readable), runs the handler once on an ``OpenID``, answers its
host calls from a :class:`FakeHost`, and validates the result with the proxy's own rules.

Example:
    >>> from sdk.testing import FakeHost, run_hook_sync
    >>> result = run_hook_sync(  # doctest: +SKIP
    ...     "examples/keep_admin/custom_sso.py:custom_sso_handler",
    ...     {"id": "alice", "email": "alice@example.com"},
    ...     host=FakeHost(users=[{"user_id": "alice", "user_role": "proxy_admin"}]),
    ... )
    >>> result.value["user_role"]  # doctest: +SKIP
    'proxy_admin'

A failing hook raises the runner's error (:class:`runner.HookRaised`, :class:`runner.HookTimeout`, ...);
values the proxy would refuse raise :class:`ValuesInvalid`. A hook that refuses the user on purpose
(``raise Deny(reason)``) raises :class:`HookDenied` (``outcome`` "denied"), whose ``.reason`` is the text the
login's 403 page would show — distinct from :class:`runner.HookRaised`, whose text the user never sees:

    >>> from sdk.testing import HookDenied
    >>> with pytest.raises(HookDenied) as denied:  # doctest: +SKIP
    ...     run_hook_sync("custom_sso.py:custom_sso_handler", {"id": "zed", "email": "zed@elsewhere.org"})
    >>> denied.value.reason  # doctest: +SKIP
    'zed@elsewhere.org is not on the allowlist — ask #it-help'

A relative ``"custom_sso.py:custom_sso_handler"`` given to :func:`run_hook` or :func:`run_hook_sync` is relative
to the directory of the file that called it (the test file), not to the current directory: a hook's tests pass
whichever directory pytest runs from.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner import HookDenied, HookRunner, HookSpec, HostHandler, Limits, Sandbox

from ._fakehost import FakeHost, RecordedCall
from ._types import OpenID, SSOUserDefinedValues
from ._values import ValuesInvalid, validate_values
from .contract import ADAPTER, TeamRecord, UserRecord

__all__ = (
    "ADAPTER",
    "SAMPLE_OPENID",
    "FakeHost",
    "HookDenied",
    "RecordedCall",
    "RunResult",
    "TeamRecord",
    "UserRecord",
    "ValuesInvalid",
    "hook_spec",
    "run_hook",
    "run_hook_sync",
)

#: The OpenID used when a test gives none (the same sample as ``hookjail check``).
SAMPLE_OPENID: dict[str, Any] = {
    "id": "check-user",
    "email": "check-user@example.com",
    "first_name": "Check",
    "last_name": "User",
    "display_name": "Check User",
    "picture": None,
    "provider": "generic",
}

HookTarget = str | os.PathLike[str] | Callable[..., Any]


@dataclass(frozen=True)
class RunResult:
    """What one sandboxed run of a hook produced.

    Attributes:
        value: the validated values, as the proxy would apply them.
        raw: what the handler returned, as it came out of the sandbox (before validation).
        stdout: what the hook printed (bounded, as in production).
        stderr: what the hook wrote to stderr.
        duration: seconds the call took, worker hand-over included.
        run_id: the call's id.
        host_calls: the host calls made, as the runner saw them: ``(method, outcome)`` pairs.
        layers: the confinement layers active in the worker.
    """

    value: SSOUserDefinedValues
    raw: Any
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    run_id: str = ""
    host_calls: tuple[tuple[str, str], ...] = ()
    layers: dict[str, bool | str] = field(default_factory=dict)


def hook_spec(target: HookTarget) -> HookSpec:
    """The runner's spec for a hook given as ``"path/to/file.py:function"`` or as the function itself.

    A function is run from its module's file, re-imported inside the sandbox (so it must be defined at
    the top level of a module that imports on its own).

    Raises:
        ValueError: the target names no function, or the function is not at a module's top level.
    """
    if callable(target):
        source = inspect.getsourcefile(target)
        name = getattr(target, "__name__", "")
        if source is None or getattr(target, "__qualname__", name) != name or not name.isidentifier():
            raise ValueError(f"{target!r} must be a function defined at the top level of a module file")
        return HookSpec(path=Path(source).resolve(), function=name, adapter=ADAPTER)
    path, sep, function = os.fspath(target).rpartition(":")
    if not sep or not path or not function:
        raise ValueError(f"expected 'path/to/custom_sso.py:function_name', got {os.fspath(target)!r}")
    return HookSpec(path=Path(path).resolve(), function=function, adapter=ADAPTER)


_SDK = Path(os.path.abspath(__file__)).parent  # as code objects name it (not resolved: a symlinked test stays put)


def _caller_directory() -> Path | None:
    """The directory of the first caller outside this package (the test file), or ``None`` when that code has
    no file (an interactive session, ``python -c``, a doctest)."""
    frame = inspect.currentframe()
    try:
        while frame is not None:
            filename = frame.f_code.co_filename
            if filename.startswith("<") and filename.endswith(">"):
                return None
            path = Path(os.path.abspath(filename))
            if path.parent != _SDK and _SDK not in path.parents:
                return path.parent
            frame = frame.f_back
        return None
    finally:
        del frame  # no reference cycle through the frames


def _anchored(target: HookTarget) -> HookTarget:
    """``target`` with a relative path made absolute: relative to the caller's file (see :func:`run_hook`), or
    to the current directory for code without a file."""
    if callable(target):
        return target
    path, sep, function = os.fspath(target).rpartition(":")
    if not sep or not path or Path(path).is_absolute():
        return target  # absolute, or malformed (hook_spec names the problem)
    return f"{(_caller_directory() or Path.cwd()) / path}{sep}{function}"


async def run_hook(
    target: HookTarget,
    openid: OpenID | Mapping[str, Any] | None = None,
    *,
    limits: Limits | None = None,
    host: HostHandler | None = None,
    sandbox: Sandbox | None = None,
) -> RunResult:
    """Run a hook once through the real sandbox and validate what it returns, as a login would.

    Args:
        target: ``"path/to/custom_sso.py:custom_sso_handler"``, or the handler function itself. A relative
            path is relative to the directory of the calling file (the first caller outside the ``sdk``
            package: your test file), not to the current directory, so a test passes whichever directory pytest
            runs from; an absolute path is used as it is. Code without a file (``python -c``, a doctest) keeps
            the current directory.
        openid: the user, as an :class:`~sdk.OpenID` or a dict (default: :data:`SAMPLE_OPENID`).
        limits: resource limits (default: production's ``Limits()``).
        host: answers host calls (default: an empty :class:`FakeHost` granting ``user_info``).
        sandbox: confinement (default: production's ``Sandbox()``; give ``read_paths``, ``env`` or
            ``network=True`` as the hook's ``hook_settings`` would).

    Returns:
        The run's :class:`RunResult`; ``.value`` holds the validated values.

    Raises:
        HookDenied: the hook refused the user on purpose (``raise Deny(reason)``); ``.reason`` is the text the
            user would read on the login's 403 page, ``.outcome`` is "denied".
        runner.HookError: the hook failed (raised, timed out, hit a limit, did not import, ...).
        ValuesInvalid: the hook returned values the proxy would refuse (``.field`` names the key).
    """
    spec = hook_spec(_anchored(target))  # before the first await: the caller's frame is still on the stack
    arg = openid.model_dump() if isinstance(openid, OpenID) else dict(openid or SAMPLE_OPENID)
    async with HookRunner(spec, limits or Limits(), sandbox or Sandbox()) as runner:
        layers = runner.layers
        result = await runner.call(arg, host=host if host is not None else FakeHost())
    values = validate_values(result.value)
    return RunResult(
        value=SSOUserDefinedValues(**values.model_dump()),  # type: ignore[typeddict-item]
        raw=result.value,
        stdout=result.stdout,
        stderr=result.stderr,
        duration=result.duration,
        run_id=result.run_id,
        host_calls=result.host_calls,
        layers=layers,
    )


def run_hook_sync(
    target: HookTarget,
    openid: OpenID | Mapping[str, Any] | None = None,
    *,
    limits: Limits | None = None,
    host: HostHandler | None = None,
    sandbox: Sandbox | None = None,
) -> RunResult:
    """:func:`run_hook` for plain (non-async) tests: runs it in a new event loop.

    A relative path is relative to the calling file's directory, as for :func:`run_hook`. Must not be called
    from a running event loop (use ``await run_hook(...)`` there).
    """
    # anchored here: inside asyncio.run the first frame outside the sdk would be asyncio's
    anchored = _anchored(target)
    return asyncio.run(run_hook(anchored, openid, limits=limits, host=host, sandbox=sandbox))
