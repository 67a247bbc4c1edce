"""Errors raised by the hook runner.

Every failure of a hook call is a :class:`HookError`; the proxy maps each subclass to one outcome::

    HookError                     base: something went wrong running the hook
    ├── HookImportError           the hook module could not be imported or is not a usable handler
    ├── HookTimeout               the call passed its wall-clock deadline and was killed
    ├── HookLimitExceeded         the call hit a limit (``limit``: "cpu", "memory", "host_calls", "host_reply")
    ├── HookCrashed               the worker died without answering (signal or exit code)
    ├── HookRaised                the handler raised an exception (type, message, traceback excerpt)
    ├── HookDenied                the handler refused the call on purpose (``Denial``), with a reason for the user
    ├── HookProtocolError         the worker sent a malformed, unexpected or oversized frame
    ├── HookOutputError           the handler returned something that cannot be encoded
    └── SandboxUnavailable        a confinement layer this host cannot provide was required

Messages are short and safe to show to an operator: they describe the hook's behaviour and never include
the parent's internals (paths of the proxy, its environment, its configuration).
"""

from __future__ import annotations


class HookError(Exception):
    """Raised when a hook call fails; the base of every runner error.

    Attributes:
        run_id: the id of the call that failed ("" when not tied to a call).
        outcome: a short machine-readable outcome name ("timeout", "limit", ...).
        stdout: what the hook printed to stdout before failing (bounded).
        stderr: what the hook printed to stderr before failing (bounded).
    """

    outcome = "error"

    def __init__(self, message: str, *, run_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.run_id = run_id
        self.stdout = ""
        self.stderr = ""
        self.duration = 0.0


class HookImportError(HookError):
    """Raised when the hook module fails to import or does not define a usable handler.

    ``traceback`` holds the hook's own frames of the failing import, when there were any.
    """

    outcome = "import_error"

    def __init__(self, message: str, *, traceback: str = "", run_id: str = "") -> None:
        super().__init__(message, run_id=run_id)
        self.traceback = traceback


class HookTimeout(HookError):
    """Raised when a call does not finish before its wall-clock deadline (the worker is killed)."""

    outcome = "timeout"


class HookLimitExceeded(HookError):
    """Raised when a call is stopped by a limit; ``limit`` says which ("cpu", "memory", "host_calls" or
    "host_reply")."""

    outcome = "limit"

    def __init__(self, message: str, *, limit: str, run_id: str = "") -> None:
        super().__init__(message, run_id=run_id)
        self.limit = limit


class HookCrashed(HookError):
    """Raised when the worker dies without answering; ``signal`` or ``exit_code`` says how."""

    outcome = "crashed"

    def __init__(
        self, message: str, *, signal: int | None = None, exit_code: int | None = None, run_id: str = ""
    ) -> None:
        super().__init__(message, run_id=run_id)
        self.signal = signal
        self.exit_code = exit_code


class HookRaised(HookError):
    """Raised when the handler raises; carries the exception's type name, message and a traceback excerpt."""

    outcome = "raised"

    def __init__(self, message: str, *, type_name: str, traceback: str = "", run_id: str = "") -> None:
        super().__init__(message, run_id=run_id)
        self.type_name = type_name
        self.traceback = traceback


class HookDenied(HookError):
    """Raised when the handler refuses the call on purpose by raising :class:`Denial`; ``reason`` is its text,
    meant for the end user (capped at :data:`MAX_DENIAL_REASON` characters)."""

    outcome = "denied"

    def __init__(self, reason: str, *, run_id: str = "") -> None:
        super().__init__(f"the hook denied the call: {reason}", run_id=run_id)
        self.reason = reason


#: The most characters of a denial's reason that reach the parent.
MAX_DENIAL_REASON = 300


class Denial(Exception):
    """Raised *by hook code* to refuse the call on purpose, with a reason meant for the end user.

    Any other exception is a failure of the hook, whose text stays with the operator; this one's text is shown
    to the user (capped at :data:`MAX_DENIAL_REASON` characters). The parent sees it as :class:`HookDenied`.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = str(reason)


class HookProtocolError(HookError):
    """Raised when the worker sends a frame that is malformed, unexpected or larger than allowed."""

    outcome = "protocol"


class HookOutputError(HookError):
    """Raised when the handler's return value cannot be encoded as plain msgpack data."""

    outcome = "output"


class SandboxUnavailable(HookError):
    """Raised at start when a required confinement layer is not available on this host."""

    outcome = "sandbox"
