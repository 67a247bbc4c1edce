"""One run of a hook judged as a login would judge it, writing nothing: the console's "Try the hook", the
candidate's shadow runs and ``hookjail replay`` share it.

The hook runs in the sandbox with a :class:`~proxy._host.LoginHost` that reads the database and stages
writes; nothing here commits them. Its values are validated, then judged by the login's rules (identity
overrides, the policy, ``admin_only``) and the identity binding of the user they name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from runner import HookDenied, HookError

from .._config import HookSettings
from .._db import Database
from .._hook import HookService
from .._host import LoginHost
from .._login import LoginService, _email_domain, status_for
from .._text import jsonable
from .._values import ValuesInvalid, ValuesRefused, validate_values

__all__ = ("Evaluation", "evaluate", "staged_host")

logger = logging.getLogger("hookjail.evaluate")


@dataclass
class Evaluation:
    """How a login would end with this hook on this OpenID.

    Attributes:
        outcome: ``ok`` or how it would fail (``raised``, ``timeout``, ``invalid``, ``refused``, ``denied``, ...).
        http_status: the callback's status for that outcome.
        values: with ``ok``, the values a login would grant (validated, after the policy); otherwise what the
            hook returned, as plain data, if it returned a dict.
        host: the host that answered its host calls (its record and staged writes).
    """

    outcome: str
    http_status: int
    values: dict[str, Any] | None = None
    error: str | None = None
    traceback: str = ""
    duration_ms: float | None = None
    stdout: str = ""
    stderr: str = ""
    host: LoginHost | None = None

    @property
    def decided(self) -> dict[str, Any] | None:
        """The values a login would grant, or ``None`` if it would fail."""
        return self.values if self.outcome == "ok" else None


def staged_host(database: Database, settings: HookSettings, login: LoginService) -> LoginHost:
    """A login's host as ``settings`` allow it: reads the database, stages writes (committed only by a login)."""
    sso = login.sso
    return LoginHost(
        database,
        settings.permissions,
        max_reply_bytes=settings.max_host_reply_kb * 1024,
        policy=settings.policy,
        model_names=login.config.model_names,
        reserved_user_ids=frozenset(filter(None, [sso.proxy_admin_id])),
        allowed_email_domains=frozenset(sso.allowed_email_domains or ()),
    )


async def evaluate(
    openid: dict[str, Any],
    *,
    hook: HookService,
    login: LoginService,
    database: Database,
    settings: HookSettings,
    run_id: str,
) -> Evaluation:
    """Run ``hook`` once on ``openid`` (with ``email_verified``, ``subject`` and ``issuer`` filled in, as
    :func:`proxy._login._with_identity` makes it) and judge the outcome as a login would, writing nothing."""
    email = openid.get("email")
    subject = openid.get("id") or email
    domains = login.sso.allowed_email_domains
    if domains:
        if _email_domain(email) not in domains:
            return Evaluation("refused", 403, error="ALLOWED_EMAIL_DOMAINS: the email's domain is not allowed")
        if openid["email_verified"] is False:
            return Evaluation("refused", 403, error="ALLOWED_EMAIL_DOMAINS: the email is not verified")
    host = staged_host(database, settings, login)
    found = Evaluation("ok", 303, host=host)
    try:
        result = await hook.call(openid, run_id=run_id, host=host)
    except HookDenied as exc:
        found = Evaluation(exc.outcome, status_for(exc.outcome), error=exc.reason, host=host)
        found.duration_ms, found.stdout, found.stderr = exc.duration * 1000, exc.stdout, exc.stderr
        return found
    except HookError as exc:
        found = Evaluation(exc.outcome, status_for(exc.outcome), error=exc.message, host=host)
        found.duration_ms, found.stdout, found.stderr = exc.duration * 1000, exc.stdout, exc.stderr
        traceback = getattr(exc, "traceback", "")
        found.traceback = traceback if isinstance(traceback, str) else ""
        return found
    except Exception as exc:  # a bug below the hook: judged as a login would record it
        logger.exception("run %s of hook %s failed inside the proxy", run_id, hook.target.dotted)
        return Evaluation("error", status_for("error"), error=f"internal error: {type(exc).__name__}", host=host)
    found.duration_ms, found.stdout, found.stderr = result.duration * 1000, result.stdout, result.stderr
    found.values = jsonable(result.value) if isinstance(result.value, dict) else None
    try:
        values = login._decide(validate_values(result.value), subject)
    except (ValuesInvalid, ValuesRefused) as exc:
        found.outcome, found.http_status, found.error = exc.outcome, 403, exc.message
        return found
    found.values = values.model_dump()
    bound = await database.get_user(values.user_id)
    if (
        bound is not None
        and bound.idp_subject is not None
        and (bound.idp_issuer, bound.idp_subject) != (openid["issuer"], openid["subject"])
    ):
        found.outcome, found.http_status = "refused", 403
        found.error = (
            f"user_id: {values.user_id!r} is bound to another identity-provider account than this "
            f"OpenID's (issuer {openid['issuer']!r}, subject {openid['subject']!r})"
        )
    return found
