"""hookjail's runner: run an untrusted handler once per call in a fresh, confined worker process.

Generic on purpose: it knows nothing of SSO, HTTP or databases. See :class:`HookRunner`.
"""

from __future__ import annotations

from ._errors import MAX_DENIAL_REASON as MAX_DENIAL_REASON
from ._errors import Denial as Denial
from ._errors import HookCrashed as HookCrashed
from ._errors import HookDenied as HookDenied
from ._errors import HookError as HookError
from ._errors import HookImportError as HookImportError
from ._errors import HookLimitExceeded as HookLimitExceeded
from ._errors import HookOutputError as HookOutputError
from ._errors import HookProtocolError as HookProtocolError
from ._errors import HookRaised as HookRaised
from ._errors import HookTimeout as HookTimeout
from ._errors import SandboxUnavailable as SandboxUnavailable
from ._hookcode import hook_source_files as hook_source_files
from ._hostcall import HostCallError as HostCallError
from ._hostcall import host_call as host_call
from ._identity import DEFAULT_WORKER_UID as DEFAULT_WORKER_UID
from ._options import HookSpec as HookSpec
from ._options import Limits as Limits
from ._options import Sandbox as Sandbox
from ._result import CallResult as CallResult
from ._runner import HookFingerprint as HookFingerprint
from ._runner import HookRunner as HookRunner
from ._runner import HostHandler as HostHandler
from ._runner import hook_fingerprint as hook_fingerprint
from ._worker import in_worker as in_worker

__all__ = (
    "DEFAULT_WORKER_UID",
    "MAX_DENIAL_REASON",
    "CallResult",
    "Denial",
    "HookCrashed",
    "HookDenied",
    "HookError",
    "HookFingerprint",
    "HookImportError",
    "HookLimitExceeded",
    "HookOutputError",
    "HookProtocolError",
    "HookRaised",
    "HookRunner",
    "HookSpec",
    "HookTimeout",
    "HostCallError",
    "HostHandler",
    "Limits",
    "Sandbox",
    "SandboxUnavailable",
    "hook_fingerprint",
    "hook_source_files",
    "host_call",
    "in_worker",
)
