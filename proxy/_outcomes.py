"""Every way a login or a hook run can end: one table, from which the login's statuses and reasons, the
metrics' label values, the console's filters and the bench's report are derived.

A hook run's outcome is the runner's (``runner.HookError.outcome``: ``timeout``, ``limit``, ...) or the proxy's
judgement of its values (``invalid``, ``refused``); a login adds what happens around the run (``conflict``,
``database``) and before it (``busy``, ``rate_limited``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = (
    "BENCH_OUTCOMES",
    "LOGIN_OUTCOMES",
    "OUTCOMES",
    "RUN_OUTCOMES",
    "Outcome",
    "reason_for",
    "status_for",
)

Stage = Literal["granted", "hook", "judged", "saving", "before"]


@dataclass(frozen=True)
class Outcome:
    """One way a login can end.

    Attributes:
        name: the outcome's name (in runs, logs, metrics, the API).
        stage: ``granted`` (signed in), ``hook`` (the runner's outcome of the hook run), ``judged`` (the proxy
            refused the run's values), ``saving`` (the login could not be saved), ``before`` (no hook ran).
        status: the ``/sso/callback`` status of a login ending so (303 when it signs in; ``bad_request`` is a 400
            for a ``Host`` the callback URL cannot be made from).
        reason: what the user's error page says (the proxy's words, never the hook's); ``None`` when the page
            says something more precise (a denial's own reason, the field a policy refused).
        meaning: one line for the operator (docs, ``--help``).
    """

    name: str
    stage: Stage
    status: int
    reason: str | None
    meaning: str


OUTCOMES: tuple[Outcome, ...] = (
    Outcome("ok", "granted", 303, None, "signed in with the hook's values (without a hook, LiteLLM's defaults)"),
    Outcome(
        "idp_defaults", "granted", 303, None, "signed in with LiteLLM's defaults after the hook failed (on_failure)"
    ),
    Outcome("timeout", "hook", 504, "The login hook took too long to answer.", "past hook_settings.timeout"),
    Outcome(
        "limit",
        "hook",
        502,
        "The login hook went over its resource limits.",
        "a resource limit: cpu, memory, host_calls, host_reply, channel",
    ),
    Outcome("crashed", "hook", 502, "The login hook crashed.", "the worker died (a signal, os._exit, ...)"),
    Outcome("raised", "hook", 502, "The login hook failed with an error.", "the hook raised an exception"),
    Outcome("protocol", "hook", 502, "The login hook sent a malformed answer.", "the worker broke the protocol"),
    Outcome(
        "output",
        "hook",
        502,
        "The login hook returned something that is not plain data.",
        "the hook returned something msgpack cannot carry",
    ),
    Outcome("import_error", "hook", 503, "The login hook is not available.", "the hook does not import"),
    Outcome("sandbox", "hook", 503, "The login hook's sandbox is not available.", "a confinement layer failed"),
    Outcome("error", "hook", 502, "The login hook failed.", "anything else (a bug below the hook)"),
    Outcome(
        "denied",
        "hook",
        403,
        "The login hook refused this login.",
        "the hook refused the user on purpose (sdk.Deny); the page shows its reason",
    ),
    Outcome("invalid", "judged", 403, None, "the values are not a valid SSOUserDefinedValues"),
    Outcome("refused", "judged", 403, None, "the values break the policy or an identity rule"),
    Outcome(
        "conflict", "saving", 409, "Your login conflicted with a concurrent change; try again.", "a concurrent write"
    ),
    Outcome("database", "saving", 503, "The proxy could not save your login; try again.", "the database failed"),
    Outcome("busy", "before", 503, None, "every hook slot busy past the login's deadline (backpressure)"),
    Outcome("rate_limited", "before", 429, None, "HOOKJAIL_SSO_RATE_LIMIT"),
    Outcome("state_invalid", "before", 401, None, "the OAuth state or its cookie was missing, forged or used"),
    Outcome("idp_error", "before", 401, None, "the provider refused, or the code exchange or userinfo failed"),
    Outcome("idp_unavailable", "before", 502, None, "the provider's discovery document could not be fetched"),
    Outcome("bad_request", "before", 401, None, "no code, or a Host the callback URL cannot be made from"),
)

_BY_NAME = {outcome.name: outcome for outcome in OUTCOMES}

#: Every outcome ``hookjail_logins_total`` counts.
LOGIN_OUTCOMES: tuple[str, ...] = tuple(outcome.name for outcome in OUTCOMES)
#: Every outcome a hook run is recorded with.
RUN_OUTCOMES: tuple[str, ...] = ("ok", *(o.name for o in OUTCOMES if o.stage in ("hook", "judged", "saving")))
#: Every outcome ``hookjail bench`` reports a call with (a call is not a login: nothing is saved).
BENCH_OUTCOMES: tuple[str, ...] = (
    "ok",
    *(o.name for o in OUTCOMES if o.stage in ("hook", "judged") and o.name not in ("import_error", "sandbox")),
)


def status_for(outcome: str) -> int:
    """The HTTP status of a login ending with this outcome (502 for a name the table does not know)."""
    found = _BY_NAME.get(outcome)
    return found.status if found is not None else 502


def reason_for(outcome: str) -> str:
    """The user's short reason for a failed login with this outcome."""
    found = _BY_NAME.get(outcome)
    if found is not None and found.reason is not None:
        return found.reason
    return "The login hook failed."
