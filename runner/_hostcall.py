"""The worker side of host calls: how code inside a call asks the parent for something.

Only meaningful inside a call's child process, where the runner installs the channel before running the
handler. The SDK's host API (``user_info`` and friends) is built on :func:`host_call`.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import msgspec

from ._framing import FrameEncoder, recv_frame
from ._protocol import HostCall, HostReply, ToChild

_channel: socket.socket | None = None
_max_frame = 0
_lock = threading.Lock()
_next_id = 0
_encoder = FrameEncoder()
_decoder: msgspec.msgpack.Decoder[ToChild] = msgspec.msgpack.Decoder(ToChild)


class HostCallError(Exception):
    """Raised inside a hook when the parent answered a host call with an error it has no closer type for; raised
    by a host handler in the parent to answer with the error type of its choosing.

    The error type is the wire's name for the error: a host handler's ``HostCallError`` is sent under its
    ``error_type``, any other exception under its class name.

    Attributes:
        error_type: the wire's name of the error (e.g. "NotFound"), for the SDK to map.
    """

    def __init__(self, message: str, *, error_type: str = "") -> None:
        super().__init__(message)
        self.error_type = error_type


# Errors the parent may name in a reply that are re-raised as the same builtin type inside the hook.
_BUILTIN_ERRORS: dict[str, type[Exception]] = {
    "PermissionError": PermissionError,
    "LookupError": LookupError,
    "KeyError": KeyError,
    "ValueError": ValueError,
    "TypeError": TypeError,
    "TimeoutError": TimeoutError,
}


def install(channel: socket.socket, max_frame: int) -> None:
    """Makes ``channel`` the one host calls go through (called by the runner in the child)."""
    global _channel, _max_frame  # noqa: PLW0603 - one channel per child process, set once before the hook runs
    _channel = channel
    _max_frame = max_frame


def host_call(method: str, args: dict[str, Any]) -> Any:
    """Asks the parent to run ``method`` with ``args`` and returns its answer.

    Blocks the calling thread until the parent answers; the time counts toward the call's deadline.

    Raises:
        RuntimeError: called outside a hook call.
        PermissionError: the operator did not grant ``method`` to this hook.
        HostCallError: the parent reported another error.
    """
    global _next_id  # noqa: PLW0603 - ids only need to be unique within this one child
    if _channel is None:
        raise RuntimeError("host calls are only available inside a hook call run by hookjail")
    with _lock:
        _next_id += 1
        request = HostCall(id=_next_id, method=method, args=args)
        _channel.sendall(_encoder.encode(request))
        reply = recv_frame(_channel, _decoder, _max_frame)
    if not isinstance(reply, HostReply) or reply.id != request.id:
        raise HostCallError("unexpected reply from the host")
    if reply.ok:
        return reply.value
    builtin = _BUILTIN_ERRORS.get(reply.error_type)
    if builtin is not None:
        raise builtin(reply.error)
    raise HostCallError(reply.error, error_type=reply.error_type)
