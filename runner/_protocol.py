"""The wire protocol between the parent, the worker template (zygote) and each call's child.

Every message is a msgspec ``Struct`` in a tagged union, one union per direction, sent as a frame: a 4-byte
big-endian length followed by that many bytes of msgpack. No field ever changes type; fields added later to the
messages a template or child sends get defaults (:class:`Configure`, which the parent always fills, has none).

Channels:
    parent <-> template: a private SOCK_SEQPACKET socket; ``Spawn`` carries the child's three fds.
    parent <-> child:    a private SOCK_STREAM socket per call (never stdout/stderr, which are captured).
"""

from __future__ import annotations

from typing import Any

import msgspec

#: Bytes in a frame's length prefix.
HEADER_SIZE = 4


# --- parent -> template -------------------------------------------------------------------------------------


class Configure(msgspec.Struct, tag="configure", frozen=True):
    """The first frame a template receives: what to import and how to confine itself.

    No field has a default: the parent (:meth:`runner.HookRunner._configure`) always sends every one, from its
    :class:`~runner.Limits` and :class:`~runner.Sandbox`, which hold the defaults; a template started by the same
    installation never has to guess one.
    """

    path: str
    function: str
    adapter: str | None
    memory_mb: int
    cpu_seconds: float
    open_files: int
    file_size_mb: int
    max_frame_bytes: int
    network: bool
    read_paths: tuple[str, ...]
    tmp_root: str | None
    tmp_size_mb: int
    strict: bool
    sandbox: bool
    libraries: dict[str, str]
    trusted_paths: tuple[str, ...]
    max_tasks: int
    nice: int


class Spawn(msgspec.Struct, tag="spawn", frozen=True):
    """Fork one child; the frame carries its channel, stdout and stderr fds (SCM_RIGHTS)."""

    token: int


class Shutdown(msgspec.Struct, tag="shutdown", frozen=True):
    """Stop forking; exit once the children still running have exited."""


ToTemplate = Configure | Spawn | Shutdown


# --- template -> parent -------------------------------------------------------------------------------------


class Ready(msgspec.Struct, tag="ready", frozen=True):
    """The template is confined and the hook compiled (not run); it now forks children on request.
    ``preimported`` names the installed modules the hook's sources import that the template loaded."""

    pid: int
    is_async: bool = False
    layers: dict[str, bool | str] = {}
    preimported: list[str] = []


class ImportFailed(msgspec.Struct, tag="import_failed", frozen=True):
    """The hook does not compile, or the sandbox could not be set up."""

    type_name: str
    message: str
    traceback: str = ""
    sandbox: bool = False


class Spawned(msgspec.Struct, tag="spawned", frozen=True):
    """A child was forked for ``token``; it is confined and waiting for its call. ``tmp_ok`` is False when it
    should have a temp dir and none could be made (the temp space is full)."""

    token: int
    pid: int
    tmp_ok: bool = True


class Exited(msgspec.Struct, tag="exited", frozen=True):
    """A child exited; ``status`` is the raw wait status, ``cpu`` its CPU seconds."""

    pid: int
    status: int
    cpu: float = 0.0


FromTemplate = Ready | ImportFailed | Spawned | Exited


# --- parent -> child ----------------------------------------------------------------------------------------


class Call(msgspec.Struct, tag="call", frozen=True):
    """Run the handler once on ``arg``; with ``probe``, only import the hook and check its handler, and
    answer ``Result({"is_async": ...})``."""

    arg: Any
    run_id: str = ""
    probe: bool = False


class HostReply(msgspec.Struct, tag="host_reply", frozen=True):
    """The parent's answer to a ``HostCall``: a value, or an error the child raises as an exception."""

    id: int
    ok: bool
    value: Any = None
    error_type: str = ""
    error: str = ""


ToChild = Call | HostReply


# --- child -> parent ----------------------------------------------------------------------------------------


class Started(msgspec.Struct, tag="started", frozen=True):
    """The child received its call and is about to run the handler."""


class Result(msgspec.Struct, tag="result", frozen=True):
    """The handler returned ``value`` (plain msgpack data)."""

    value: Any


class Failure(msgspec.Struct, tag="failure", frozen=True):
    """The handler failed. ``kind`` is "raised", "memory", "output", "import" (the module body raised, or
    the handler is missing or of the wrong shape) or "denied" (it refused on purpose; ``message`` is the
    reason for the user)."""

    kind: str
    type_name: str
    message: str
    traceback: str = ""


class HostCall(msgspec.Struct, tag="host_call", frozen=True):
    """The handler asks the parent to do something on its behalf (e.g. look up a user)."""

    id: int
    method: str
    args: dict[str, Any] = {}


FromChild = Started | Result | Failure | HostCall
