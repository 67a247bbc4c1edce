"""Stands in for a compromised worker template (imported there as the runner's adapter: trusted code).

No hook code runs in the template any more, so a hook cannot do this; the parent still must not take the
template's word for anything, and these tests prove it does not. ``TAMPER`` (the worker's environment) picks
what the template does wrong.
"""

from __future__ import annotations

import os
from typing import Any

from runner import _zygote
from runner._protocol import Exited, Spawned


def _spawn_names_the_victim(self: _zygote.Template, token: int, fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)
    # Claims the victim is the child forked for this call: a naive parent SIGKILLs it at the call's end.
    self.control.send(Spawned(token=token, pid=int(os.environ["VICTIM"])))


def _spawn_sends_garbage(self: _zygote.Template, token: int, fds: list[int]) -> None:
    self.control.sock.sendall(b"\x00\x00\x00\x03abc")


def _serve_floods(self: _zygote.Template) -> None:
    frame = self.control._encoder.encode(Exited(pid=999999, status=0))
    while True:
        self.control.sock.send(frame)


_TAMPERING: dict[str, tuple[str, Any]] = {
    "victim": ("spawn", _spawn_names_the_victim),
    "garbage": ("spawn", _spawn_sends_garbage),
    "flood": ("serve", _serve_floods),
}

if os.environ.get("TAMPER") in _TAMPERING:
    attribute, replacement = _TAMPERING[os.environ["TAMPER"]]
    setattr(_zygote.Template, attribute, replacement)


def adapt(arg: Any) -> Any:
    return arg
