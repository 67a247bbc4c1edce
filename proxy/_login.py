"""One login after the identity provider has answered: hook → validation → overrides → policy → one transaction.

This is the only place where runner errors become HTTP statuses. Every failure ends with no session and no
change to the user, a hook-run record naming the outcome, and a short reason plus the run id for the page.
That reason is the proxy's own text for the outcome (naming at most a field): what a failing hook said (an
exception's message, a traceback, its output) goes to the run record and the log, never to the browser. The one
exception is a *denial*: a hook that raises ``sdk.Deny(reason)`` (the runner's ``Denial``) refuses the login on
purpose, and its reason (capped by the runner at 300 characters, HTML-escaped by the page) is what the user
reads, with a 403 and the outcome ``denied``, the reason being the run's error.

Order, so that no hook output gets past ``hook_settings.policy``:

1. ``ALLOWED_EMAIL_DOMAINS`` on the identity provider's email, before the hook runs: an email the provider
   says is unverified (``email_verified`` false) is refused whatever its domain. A provider that does not send
   the claim (``None``: Microsoft, a generic provider without it) is trusted, as LiteLLM does; Google's are
   always verified (fastapi-sso refuses the others). The hook sees ``email_verified`` too.
2. The hook, then strict validation of its values.
3. Identity overrides, keyed on the identity provider's claims, never on the hook's values. The IdP's user is
   its ``id`` (the subject: ``GENERIC_USER_ID_ATTRIBUTE``, ...), or its email when it gives no id.

   - ``PROXY_ADMIN_ID``: a hook's ``user_id`` equal to ``PROXY_ADMIN_ID`` when the IdP's user is someone else
     is refused (field ``user_id``): the hook cannot log anyone in as the admin. When the IdP's user *is*
     ``PROXY_ADMIN_ID`` and the hook's ``user_id`` is too, the role becomes ``proxy_admin``. If the hook maps
     the admin to another user id, nothing is promoted: that user gets the hook's values like anyone (the
     promotion never lands on a row the IdP did not name).
   - ``ALLOWED_EMAIL_DOMAINS``: the hook's ``user_email`` (when not null) must be in an allowed domain too
     (field ``user_email``), so a stored email never escapes the rule the IdP's email passed.

4. ``hook_settings.policy``, last, on the values as they will be written. ``allowed_roles`` bounds what the
   *hook* grants, so it is not applied to the ``proxy_admin`` role ``PROXY_ADMIN_ID`` gave the IdP's admin
   (the operator named that user explicitly); ``max_budget`` and ``models_must_exist`` still apply to them.
5. ``ui_access_mode: admin_only`` on the final role (a gate: it only refuses).
6. The identity binding, in the login's transaction: the stored user is bound to the identity provider's
   account that first signed in as it (issuer and ``sub``; for Google and Microsoft the provider's name and
   its user id). A login whose user id names a user bound to another account is refused (403, ``refused``,
   field ``user_id``) and writes nothing but its run: a user id taken from a claim the user can edit
   (LiteLLM's default ``preferred_username``) cannot take over someone else's account. Unbound users (created
   by the management API, a host call, or before the binding existed) are bound by their next login.

With ``on_failure: idp_defaults`` a failed or invalid hook run is replaced by LiteLLM's defaults (a view-only
user, no models, no budget), which then go through steps 3 to 5 like any other values; the run keeps its
failure outcome and is marked ``fallback=idp_defaults``. Policy and admin-only refusals are never replaced, and
neither is a denial: ``Deny`` is the hook's decision about this user, not a failure of the hook, so falling
back would log in exactly the user the hook refused (the fallback is for a broken hook, a denying one works).

Hook-derived text (error messages, captured output, the values) is clipped before it is stored and escaped
to one line before it is logged (:mod:`proxy._text`).

The hook's host calls are answered by a :class:`~proxy._host.LoginHost` made for this login. What they write
is staged and committed only with a successful login, in its one transaction; a login that fails for any
reason (and a fallback to IdP defaults) drops it. Every run records its host calls.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn, Protocol

from sqlalchemy.exc import IntegrityError

from runner import HookDenied, HookError

from . import _outcomes
from ._config import ProxyConfig
from ._db import Database, IdentityMismatch, LoginRecord, RunRecord, StagedWrites, utcnow
from ._errors import ProxyError
from ._hook import HookService
from ._host import LoginHost
from ._metrics import Metrics, PhaseTimer
from ._sessions import SessionCodec
from ._sso import SSOSettings
from ._text import ERROR_LIMIT, STREAM_LIMIT, TRACEBACK_LIMIT, jsonable, one_line, storable
from ._values import UserValues, ValuesInvalid, ValuesRefused, apply_policy, idp_defaults, validate_values

__all__ = ("ADMIN_ROLES", "LoginFailed", "LoginGranted", "LoginService", "status_for")

logger = logging.getLogger("hookjail.login")

#: Roles allowed in when ``ui_access_mode: admin_only``.
ADMIN_ROLES = frozenset({"proxy_admin", "proxy_admin_viewer"})

#: Claims a user can usually set themselves at the identity provider: a user id taken from one of them is
#: only safe because of the identity binding (a warning at start-up says so).
EDITABLE_CLAIMS = frozenset(
    {
        "preferred_username",
        "email",
        "name",
        "nickname",
        "given_name",
        "family_name",
        "middle_name",
        "first_name",
        "last_name",
        "display_name",
        "username",
        "login",
        "website",
        "profile",
    }
)


def status_for(outcome: str) -> int:
    """The HTTP status of a failed login with this outcome (:mod:`proxy._outcomes`)."""
    return _outcomes.status_for(outcome)


class LoginFailed(ProxyError):
    """Raised when a login is denied; carries what the error page shows."""

    def __init__(self, status: int, reason: str, *, outcome: str, run_id: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.outcome = outcome
        self.run_id = run_id


@dataclass(frozen=True)
class LoginGranted:
    """A successful login: the session cookie to set and what was decided."""

    token: str
    expires_at: datetime
    values: UserValues
    run_id: str | None
    fallback: str | None


@dataclass
class LiveDecision:
    """What the live hook decided for one login, for the candidate's comparison.

    Attributes:
        openid: the OpenID the hook saw (``None``: the hook did not run).
        outcome: the run's outcome as the hook's verdict: ``ok``, a failure's outcome, ``refused`` (the policy
            or the identity binding refused its values). A login the database then failed to save is still
            ``ok``: the hook decided.
        values: with ``ok``, the values granted (validated, after the policy).
    """

    openid: dict[str, Any] | None = None
    run_id: str | None = None
    outcome: str | None = None
    values: dict[str, Any] | None = None


class ShadowSink(Protocol):
    """Takes each login's live decision (the candidate's shadow runs, :mod:`proxy.rollout`)."""

    def submit(self, live: LiveDecision) -> None: ...


@dataclass
class _Attempt:
    run_id: str
    started_at: datetime
    subject: str | None
    provider: str | None
    email: str | None = None
    duration_ms: float = 0.0
    stdout: str = ""
    stderr: str = ""
    traceback: str = ""
    host: LoginHost | None = None
    hook_sha256: str | None = None
    #: the OpenID the hook saw, when ``hook_settings.record_inputs`` keeps it
    openid: dict[str, Any] | None = None

    def event(self, outcome: str) -> dict[str, Any]:
        """The structured fields of this run's log line (``--log-format json``): never a token or secret."""
        return {
            "event": "hook_run",
            "run_id": self.run_id,
            "outcome": outcome,
            "duration_ms": round(self.duration_ms, 1),
            "subject": self.subject,
            "provider": self.provider,
        }

    def record(self, outcome: str, **fields: Any) -> RunRecord:
        if self.host is not None and self.host.calls:
            fields.setdefault("host_calls", self.host.record())
        extra: dict[str, Any] = {}
        if self.email:  # the identity provider's, so that the operator can tell who a failed login was
            extra["email"] = self.email
        if self.traceback:  # the hook's own frames of a failure (the runner's excerpt), for the run's page
            extra["traceback"] = storable(self.traceback, TRACEBACK_LIMIT)
        if extra:
            fields.setdefault("extra", extra)
        error = fields.pop("error", None)
        fields.setdefault("hook_sha256", self.hook_sha256)
        fields.setdefault("openid", self.openid)
        return RunRecord(
            run_id=self.run_id,
            started_at=self.started_at,
            outcome=outcome,
            duration_ms=self.duration_ms,
            subject=self.subject,
            provider=self.provider,
            # the worker's word: bounded here whatever the runner already bounded
            error=None if error is None else storable(error, ERROR_LIMIT),
            stdout=storable(self.stdout, STREAM_LIMIT),
            stderr=storable(self.stderr, STREAM_LIMIT),
            **fields,
        )


class LoginService:
    """Decides one login from the provider's ``OpenID`` (as a plain dict)."""

    def __init__(
        self,
        *,
        config: ProxyConfig,
        sso: SSOSettings,
        hook: HookService | None,
        database: Database,
        sessions: SessionCodec,
        metrics: Metrics | None = None,
        shadow: ShadowSink | None = None,
    ) -> None:
        self.config = config
        #: gets every login the hook ran for, to run the candidate in its shadow (``hook_settings.candidate``)
        self.shadow = shadow
        self.sso = sso
        self.hook = hook
        self.database = database
        self.sessions = sessions
        self.metrics = metrics or Metrics()
        generic = sso.generic
        if sso.kind == "generic" and generic is not None and generic.id_attribute[0] in EDITABLE_CLAIMS:
            logger.warning(
                "GENERIC_USER_ID_ATTRIBUTE is %s (%s), a claim users can often change themselves at the "
                "identity provider: each user is bound to the provider account (issuer and sub) of its first "
                "login, and a login of another account that maps to that user id is refused; set "
                "GENERIC_USER_ID_ATTRIBUTE=sub to key users on the provider's stable subject instead",
                generic.id_attribute[0],
                "LiteLLM's default" if len(generic.id_attribute) > 1 else "set explicitly",
            )

    async def login(self, openid: dict[str, Any], *, timer: PhaseTimer | None = None) -> LoginGranted:
        """Decide one login (:meth:`_login`); then hand what the hook decided to the candidate's shadow run."""
        live = LiveDecision()
        try:
            granted = await self._login(openid, timer or PhaseTimer(), live)
        except LoginFailed as exc:
            if live.outcome is None:
                live.outcome = exc.outcome
            raise
        finally:
            if self.shadow is not None and live.openid is not None and live.outcome is not None:
                self.shadow.submit(live)
        return granted

    async def _login(self, openid: dict[str, Any], timer: PhaseTimer, live: LiveDecision) -> LoginGranted:
        """Run the hook, validate and check its values, and write the user, run and session at once.

        Args:
            openid: fastapi-sso's ``OpenID`` as a plain dict; the generic provider's adds ``email_verified``,
                ``subject`` and ``issuer`` (:func:`proxy._sso._convertor`). The hook gets it with
                ``email_verified``, ``subject`` and ``issuer`` filled in for every provider.
            timer: gets the time spent in the hook (``hook``) and the database (``db``), for ``Server-Timing``.

        Raises:
            LoginFailed: with the status, short reason and run id for the error page.
        """
        openid = _with_identity(openid)
        email = openid.get("email")
        subject = openid.get("id") or email
        self._check_email(openid)
        attempt = _Attempt(
            run_id=secrets.token_hex(8),
            started_at=utcnow(),
            subject=subject,
            provider=openid.get("provider"),
            email=email[:320] if isinstance(email, str) else None,
        )
        ran = attempt if self.hook is not None else None  # the run to record: none without a hook
        fallback: str | None = None
        failure: tuple[str, str] | None = None  # (outcome, error) of a hook failure covered by idp_defaults
        staged: StagedWrites | None = None  # what the hook's host calls wrote, committed only with the login
        if self.hook is None:
            if not subject:
                raise LoginFailed(401, "The identity provider did not say who you are.", outcome="invalid")
            values = idp_defaults(subject, email)
        else:
            live.openid, live.run_id = openid, attempt.run_id
            if self.config.hook_settings.record_inputs:
                attempt.openid = jsonable(openid)
            with timer.phase("hook"):
                values_or_failure = await self._run_hook(openid, attempt)
            if isinstance(values_or_failure, UserValues):
                values = values_or_failure
                staged = attempt.host.staged if attempt.host is not None else None
            else:
                outcome, error, reason = values_or_failure
                live.outcome = outcome
                # a denial is the hook's decision, not a failure: never replaced by the IdP defaults
                if outcome == "denied" or self.config.hook_settings.on_failure != "idp_defaults" or not subject:
                    await self._fail(attempt, timer, outcome, reason, error=error)
                fallback, failure = "idp_defaults", (outcome, error)
                values = idp_defaults(subject, email)
                logger.warning(
                    "hook run %s failed (%s), using IdP defaults: %s", attempt.run_id, outcome, one_line(error)
                )

        try:
            values = self._decide(values, subject)
        except ValuesRefused as exc:
            if live.outcome is None:
                live.outcome = "refused"
            logger.warning(
                "login of %s refused (run %s): %s",
                one_line(subject or "?", 300),
                (ran.run_id if ran is not None else None),
                one_line(exc.message),
            )
            reason = (
                "This admin UI is limited to proxy admins."
                if exc.field == "ui_access_mode"
                else f"Login refused by policy ({one_line(exc.field, 80)})."
            )
            # a user id refused as someone else's (PROXY_ADMIN_ID) is not this run's user
            user_id = None if exc.field == "user_id" else values.user_id
            await self._fail(ran, timer, "refused", reason, error=exc.message, fallback=fallback, user_id=user_id)
        if failure is None:
            live.outcome, live.values = "ok", values.model_dump()
        return await self._save(
            openid, values, attempt, ran, timer, live, staged=staged, fallback=fallback, failure=failure
        )

    def _check_email(self, openid: dict[str, Any]) -> None:
        """Step 1: ``ALLOWED_EMAIL_DOMAINS`` on the identity provider's email, before the hook runs."""
        if not self.sso.allowed_email_domains:
            return
        email = openid.get("email")
        if _email_domain(email) not in self.sso.allowed_email_domains:
            raise LoginFailed(403, "Your email domain is not allowed to sign in here.", outcome="refused")
        if openid["email_verified"] is False:
            logger.warning(
                "login of %s refused: the identity provider says its email %s is not verified",
                one_line(str(openid.get("id") or email), 300),
                one_line(str(email), 320),
            )
            raise LoginFailed(403, "Your email address is not verified by the identity provider.", outcome="refused")

    async def _fail(
        self, ran: _Attempt | None, timer: PhaseTimer, outcome: str, reason: str, **fields: Any
    ) -> NoReturn:
        """Record the failed run (when the hook ran: ``ran``) with this outcome, then fail the login."""
        status = status_for(outcome)
        if ran is not None:
            with timer.phase("db"):
                await self._record(ran.record(outcome, http_status=status, **fields))
        raise LoginFailed(status, reason, outcome=outcome, run_id=ran.run_id if ran is not None else None) from None

    async def _save(
        self,
        openid: dict[str, Any],
        values: UserValues,
        attempt: _Attempt,
        ran: _Attempt | None,
        timer: PhaseTimer,
        live: LiveDecision,
        *,
        staged: StagedWrites | None,
        fallback: str | None,
        failure: tuple[str, str] | None,
    ) -> LoginGranted:
        """Step 6 and the write: the user, the run and the session in one transaction (the identity binding
        checked in it); a failure records only the run."""
        now = utcnow()
        session_id = self.sessions.new_session_id()
        token, expires_at = self.sessions.issue(session_id=session_id, user_id=values.user_id, now=now)
        login = LoginRecord(
            user_id=values.user_id,
            email=values.user_email,
            role=values.user_role,
            models=list(values.models),
            max_budget=values.max_budget,
            budget_duration=values.budget_duration,
            provider=openid.get("provider"),
            session_id=session_id,
            session_expires_at=expires_at,
            idp_issuer=openid["issuer"],
            idp_subject=openid["subject"],
        )
        run = attempt.record(
            "ok" if failure is None else failure[0],
            error=None if failure is None else failure[1],
            user_id=values.user_id,
            fallback=fallback,
            http_status=303,
            decided=values.model_dump(),
        )
        run_id = ran.run_id if ran is not None else None
        try:
            with timer.phase("db"):
                await self.database.complete_login(login, run, staged)
        except IdentityMismatch:
            if failure is None:
                live.outcome, live.values = "refused", None
            logger.warning(
                "login of %s (run %s) refused: user %s is bound to another identity-provider account than %s %s",
                one_line(attempt.subject or "?", 300),
                run_id,
                one_line(values.user_id, 300),
                one_line(str(openid["issuer"]), 300),
                one_line(str(openid["subject"]), 300),
            )
            error = (
                f"user_id: {values.user_id!r} is bound to another identity-provider account "
                f"than this login's (subject {openid['subject']!r})"
            )
            # someone else's user id: not recorded as this run's user
            await self._fail(
                ran,
                timer,
                "refused",
                "Login refused by policy (user_id).",
                error=error,
                fallback=fallback,
                user_id=None,
            )
        except IntegrityError as exc:
            # e.g. a user the hook created was created meanwhile by another login or the management API
            logger.warning(
                "login of %s (run %s) conflicts with a concurrent change: %s",
                one_line(values.user_id, 300),
                run_id,
                one_line(str(exc)),
            )
            await self._fail(
                ran,
                timer,
                "conflict",
                _outcomes.reason_for("conflict"),
                error="the hook's writes conflict with a concurrent change",
                user_id=values.user_id,
            )
        except Exception:
            self.metrics.database_error("login")
            logger.exception("could not save the login of %s (run %s)", one_line(values.user_id, 300), run_id)
            await self._fail(
                ran,
                timer,
                "database",
                _outcomes.reason_for("database"),
                error="the login could not be saved",
                user_id=values.user_id,
            )
        return LoginGranted(token=token, expires_at=expires_at, values=values, run_id=run_id, fallback=fallback)

    async def _run_hook(self, openid: dict[str, Any], attempt: _Attempt) -> UserValues | tuple[str, str, str]:
        assert self.hook is not None
        settings = self.config.hook_settings
        attempt.host = LoginHost(
            self.database,
            settings.permissions,
            max_reply_bytes=settings.max_host_reply_kb * 1024,
            policy=settings.policy,
            model_names=self.config.model_names,
            reserved_user_ids=frozenset(filter(None, [self.sso.proxy_admin_id])),
            allowed_email_domains=frozenset(self.sso.allowed_email_domains or ()),
        )
        await self.hook.reload_if_changed()
        attempt.hook_sha256 = self.hook.describe().sha256 or None
        try:
            result = await self.hook.call(openid, run_id=attempt.run_id, host=attempt.host)
        except HookDenied as exc:
            attempt.duration_ms = exc.duration * 1000
            attempt.stdout, attempt.stderr = exc.stdout, exc.stderr
            self._count_run(attempt, exc.outcome, exc.duration)
            logger.info(
                "hook run %s denied the login: %s",
                attempt.run_id,
                one_line(exc.reason),
                extra=attempt.event(exc.outcome),
            )
            # the hook's reason is meant for the user: the page shows it (escaped), the run records it
            return exc.outcome, exc.reason, exc.reason.strip() or _outcomes.reason_for("denied")
        except HookError as exc:
            attempt.duration_ms = exc.duration * 1000
            attempt.stdout, attempt.stderr = exc.stdout, exc.stderr
            attempt.traceback = getattr(exc, "traceback", "") or ""
            self._count_run(attempt, exc.outcome, exc.duration)
            logger.warning(
                "hook run %s failed: %s: %s",
                attempt.run_id,
                exc.outcome,
                one_line(exc.message),
                extra=attempt.event(exc.outcome),
            )
            return exc.outcome, exc.message, _outcomes.reason_for(exc.outcome)
        except Exception as exc:  # a bug below the hook must still end as a recorded, denied login
            self._count_run(attempt, "error", None)
            logger.exception("hook run %s failed inside the proxy", attempt.run_id, extra=attempt.event("error"))
            return "error", f"internal error: {type(exc).__name__}", _outcomes.reason_for("error")
        attempt.duration_ms = result.duration * 1000
        attempt.stdout, attempt.stderr = result.stdout, result.stderr
        self._count_run(attempt, "ok", result.duration)
        try:
            values = validate_values(result.value)
        except ValuesInvalid as exc:
            logger.warning(
                "hook run %s returned invalid values: %s",
                attempt.run_id,
                one_line(exc.message),
                extra=attempt.event("invalid"),
            )
            where = f" ({one_line(exc.field, 80)})" if exc.field else ""
            return "invalid", exc.message, f"The login hook returned invalid values{where}."
        logger.info("hook run %s ok in %.1f ms", attempt.run_id, attempt.duration_ms, extra=attempt.event("ok"))
        return values

    def _count_run(self, attempt: _Attempt, outcome: str, seconds: float | None) -> None:
        """The metrics of one hook run: its duration by the runner's outcome, its host calls."""
        if seconds is not None:
            self.metrics.hook_call(outcome, seconds)
        host = attempt.host
        if host is not None:
            for call in host.calls:
                self.metrics.host_call(str(call.get("method", "")), str(call.get("outcome", "")))
            for _ in range(host.unrecorded):
                self.metrics.host_call("", "unrecorded")

    def _decide(self, values: UserValues, subject: str | None) -> UserValues:
        """Steps 3-5 of the module's order: identity overrides, then the policy, then ``admin_only``.

        Args:
            values: the hook's validated values (or the IdP defaults).
            subject: the identity provider's user: its ``id``, else its email.

        Raises:
            ValuesRefused: naming the field (``user_id``, ``user_email``, a policy field or ``ui_access_mode``).
        """
        admin_id = self.sso.proxy_admin_id
        promoted = False
        if admin_id is not None and values.user_id == admin_id:
            if subject != admin_id:
                raise ValuesRefused(
                    f"user_id: {values.user_id!r} is PROXY_ADMIN_ID, but the identity provider signed in "
                    f"{subject!r}: a hook may not log anyone else in as the proxy admin",
                    field="user_id",
                )
            values = values.model_copy(update={"user_role": "proxy_admin"})
            promoted = True
        domains = self.sso.allowed_email_domains
        if domains and values.user_email is not None and _email_domain(values.user_email) not in domains:
            raise ValuesRefused(
                f"user_email: {values.user_email!r} is not in ALLOWED_EMAIL_DOMAINS", field="user_email"
            )
        values = apply_policy(
            values, self.config.hook_settings.policy, self.config.model_names, check_role=not promoted
        )
        if self.config.general_settings.ui_access_mode == "admin_only" and values.user_role not in ADMIN_ROLES:
            raise ValuesRefused(
                f"ui_access_mode: admin_only, and the role is {values.user_role!r}", field="ui_access_mode"
            )
        return values

    async def _record(self, run: RunRecord) -> None:
        try:
            await self.database.record_run(run)
        except Exception:
            self.metrics.database_error("record_run")
            logger.exception("could not record hook run %s", run.run_id)


def _with_identity(openid: dict[str, Any]) -> dict[str, Any]:
    """The provider's dict with ``email_verified``, ``subject`` and ``issuer`` for every provider.

    The generic provider's convertor sets all three. fastapi-sso's Google and Microsoft providers set none:
    their ``id`` is the provider's stable user id (Google's ``sub``, Microsoft Graph's ``id``), the issuer is
    the provider's name, and Google's emails are verified (fastapi-sso refuses the others) while Microsoft
    does not say (``None``).
    """
    provider = openid.get("provider")
    verified = openid.get("email_verified")
    if "email_verified" not in openid and provider == "google":
        verified = True
    subject = openid.get("subject") if "subject" in openid else openid.get("id")
    issuer = openid.get("issuer") if "issuer" in openid else provider
    return openid | {
        "email_verified": verified if isinstance(verified, bool) else None,
        "subject": subject if isinstance(subject, str) and subject else None,
        "issuer": issuer if isinstance(issuer, str) and issuer else None,
    }


def _email_domain(email: str | None) -> str | None:
    """The lower-cased domain of an address with exactly one ``@`` and a non-empty local part, else ``None``."""
    if not email or email.count("@") != 1:
        return None
    local, _, domain = email.partition("@")
    return domain.lower() if local and domain else None
