"""The proxy's side of host calls: what a hook may ask during one login, checked, answered and recorded.

One :class:`LoginHost` per login is the runner's ``host=`` handler. For each request the hook sends it:

1. refuses a method that is not a host call (``PermissionError`` naming it) — nothing else in the proxy is
   reachable through this channel;
2. refuses a method the operator did not grant in ``hook_settings.permissions`` (``PermissionError`` naming the
   permission to add); both refusals are :func:`sdk.contract.check_granted`'s, word for word what the SDK's
   ``FakeHost`` answers;
3. checks the arguments with the wire contract's model (``Invalid``: the hook sees a 400-style error naming the
   field), and a user ``new_user`` would create against ``hook_settings.policy`` (``PermissionError``);
4. answers from the database through :mod:`proxy._directory`, shaped by the contract's result model;
5. records the call (method, arguments, outcome, time) for the hook-run record.

Writes are staged, not written: :class:`StagedRows` reads the database (the reads of one host call share a
short-lived session) with the login's own staged inserts laid over it, so the hook sees what it wrote, and
:attr:`LoginHost.staged` is committed by the login in the same transaction as the user upsert, the hook run
and the session — or dropped with the login. No database lock is held while the untrusted hook runs.

The runner caps the number of host calls and the size of each answer; this module caps the rows a login may
stage. Only the contract's errors reach the hook with their message; any other (the database's, a bug of
ours) would leak the proxy's internals: the hook gets a generic ``HostUnavailable`` (the SDK's
``HostUnavailableError``, 503) and the proxy logs the real one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Sequence, Set
from contextlib import asynccontextmanager
from typing import Any

import msgspec

from runner import HookError, HookLimitExceeded
from sdk.contract import (
    AddMemberArgs,
    Conflict,
    HostUnavailable,
    Invalid,
    NewUserArgs,
    NotFound,
    TeamInfoArgs,
    UserInfoArgs,
    check_granted,
    dump_result,
    error_code,
    parse_args,
)

from . import _directory
from ._config import HookPolicy
from ._db import Database, SessionRows, StagedWrites, Team, TeamMember, User
from ._text import one_line

__all__ = ("MAX_RECORDED_CALLS", "MAX_STAGED_ROWS", "HostUnavailable", "LoginHost", "StagedRows")

logger = logging.getLogger("hookjail.host")

#: The most rows (users plus memberships) the host calls of one login may create.
MAX_STAGED_ROWS = 1000
#: Host calls recorded per run; later ones are only counted (``hook_settings.max_host_calls`` may be 10,000).
MAX_RECORDED_CALLS = 200
#: Arguments longer than this (as JSON) are recorded cut short.
_MAX_RECORDED_ARGS = 1024
#: Arguments larger than this (msgpack) are not even turned into JSON to be cut short.
_MAX_MEASURED_ARGS = 64 * 1024
_encoder = msgspec.msgpack.Encoder()


class StagedRows:
    """The database as one login's host calls see it: committed rows plus the login's own staged inserts.

    Reads go to the database: inside :meth:`reading` (one host call) through one short-lived session, else
    each through a session of its own. Inserts are kept here until the login commits them (:meth:`writes`).

    Args:
        database: where committed rows are read.
        max_rows: the most rows that may be staged.
    """

    def __init__(self, database: Database, *, max_rows: int = MAX_STAGED_ROWS) -> None:
        self.database = database
        self.max_rows = max_rows
        self._teams: dict[str, Team] = {}
        self._users: dict[str, User] = {}
        self._memberships: dict[tuple[str, str], TeamMember] = {}
        self._current: SessionRows | None = None

    def writes(self) -> StagedWrites:
        """What was staged, for :meth:`proxy._db.Database.complete_login`."""
        return StagedWrites(
            teams=tuple(self._teams.values()),
            users=tuple(self._users.values()),
            memberships=tuple(self._memberships.values()),
        )

    @property
    def staged_rows(self) -> int:
        """How many rows are staged."""
        return len(self._teams) + len(self._users) + len(self._memberships)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[None]:
        """Share one database session between the reads made inside (one host call); closed on exit, so no
        session stays open while the hook runs."""
        async with self.database.reader() as rows:
            self._current = rows
            try:
                yield
            finally:
                self._current = None

    @asynccontextmanager
    async def _committed(self) -> AsyncIterator[SessionRows]:
        if self._current is not None:
            yield self._current
        else:
            async with self.database.reader() as rows:
                yield rows

    async def user(self, user_id: str) -> User | None:
        """The user with this id."""
        if user_id in self._users:
            return self._users[user_id]
        async with self._committed() as rows:
            return await rows.user(user_id)

    async def user_by_email(self, email: str) -> User | None:
        """The oldest user with this email (committed users first)."""
        async with self._committed() as rows:
            found = await rows.user_by_email(email)
        if found is not None:
            return found
        wanted = email.lower()
        return next((u for u in self._users.values() if u.email is not None and u.email.lower() == wanted), None)

    async def users(self, user_ids: Sequence[str]) -> dict[str, User]:
        """The users with these ids that exist."""
        async with self._committed() as rows:
            found = await rows.users([i for i in user_ids if i not in self._users])
        found.update({i: self._users[i] for i in user_ids if i in self._users})
        return found

    async def team(self, team_id: str) -> Team | None:
        """The team with this id."""
        if team_id in self._teams:
            return self._teams[team_id]
        async with self._committed() as rows:
            return await rows.team(team_id)

    async def memberships_of_user(self, user_id: str) -> list[TeamMember]:
        """The user's memberships: committed ones, then staged ones."""
        async with self._committed() as rows:
            found = await rows.memberships_of_user(user_id)
        return found + [m for (_, uid), m in self._memberships.items() if uid == user_id]

    async def memberships_of_team(self, team_id: str) -> list[TeamMember]:
        """The team's memberships: committed ones, then staged ones."""
        async with self._committed() as rows:
            found = await rows.memberships_of_team(team_id)
        return found + [m for (tid, _), m in self._memberships.items() if tid == team_id]

    async def add(self, row: User | Team | TeamMember) -> None:
        """Stage an insert.

        Raises:
            HookLimitExceeded: the login would stage more than ``max_rows`` rows (it stops the hook).
        """
        if self.staged_rows >= self.max_rows:
            raise HookLimitExceeded(
                f"the hook's host calls tried to create more than {self.max_rows} users and memberships",
                limit="host_writes",
            )
        if isinstance(row, User):
            self._users[row.id] = row
        elif isinstance(row, TeamMember):
            self._memberships[(row.team_id, row.user_id)] = row
        else:
            self._teams[row.id] = row


class LoginHost:
    """Answers the host calls of one login's hook run (the runner's ``host=`` handler).

    Args:
        database: the proxy's database.
        grants: the methods the operator granted (``hook_settings.permissions``).
        max_reply_bytes: the largest answer (msgpack) a host call may get; a larger one stops the hook (the
            runner checks it too; checking here records which call it was).
        max_staged_rows: the most users and memberships the login's host calls may create.
        policy: ``hook_settings.policy``; the users ``new_user`` creates must obey it (``PermissionError``).
        reserved_user_ids: user ids a hook may not create (``PROXY_ADMIN_ID``): identity rules key on the
            identity provider's claims, so no hook makes the admin's account.
        allowed_email_domains: ``ALLOWED_EMAIL_DOMAINS``: the users a hook creates or adds must be in them.
        model_names: the ``model_name`` of every ``model_list`` entry (for ``policy.models_must_exist``).

    Attributes:
        calls: the host calls, in order, as recorded with the hook run: ``{"method", "args", "outcome",
            "error"?, "ms"}`` (``outcome``: "ok", "limit" or the error type); the first
            :data:`MAX_RECORDED_CALLS` only.
        unrecorded: how many calls came after those.
        rows: the login's view of users and teams, holding its staged writes.
    """

    def __init__(
        self,
        database: Database,
        grants: Sequence[str],
        *,
        max_reply_bytes: int = 1024 * 1024,
        max_staged_rows: int = MAX_STAGED_ROWS,
        policy: HookPolicy | None = None,
        model_names: Set[str] = frozenset(),
        reserved_user_ids: Set[str] = frozenset(),
        allowed_email_domains: Set[str] = frozenset(),
    ) -> None:
        self.reserved_user_ids = frozenset(reserved_user_ids)
        self.allowed_email_domains = frozenset(allowed_email_domains)
        self.grants = frozenset(grants)
        self.policy = policy
        self.model_names = frozenset(model_names)
        self.max_reply_bytes = max_reply_bytes
        self._database = database
        self._max_staged_rows = max_staged_rows
        self.rows = StagedRows(database, max_rows=max_staged_rows)
        self.calls: list[dict[str, Any]] = []
        self.unrecorded = 0

    def reset(self) -> None:
        """Forget everything an attempt of the hook did: the runner calls this before it runs a call again
        whose worker was lost with its template, so the lost attempt's staged writes are never committed."""
        self.rows = StagedRows(self._database, max_rows=self._max_staged_rows)
        self.calls = []
        self.unrecorded = 0

    @property
    def staged(self) -> StagedWrites:
        """The writes to commit with the login."""
        return self.rows.writes()

    def record(self) -> list[dict[str, Any]]:
        """The host calls for the hook-run record (a last ``{"unrecorded": n}`` entry if some were left out)."""
        calls = [dict(call) for call in self.calls]
        return [*calls, {"unrecorded": self.unrecorded}] if self.unrecorded else calls

    async def __call__(self, method: str, args: dict[str, Any]) -> Any:
        """Answer one host call; raising sends the error into the hook (its class name is the error type)."""
        started = time.perf_counter()
        record: dict[str, Any] = {"method": method[:64], "outcome": "unfinished"}
        if len(self.calls) < MAX_RECORDED_CALLS:
            record["args"] = _recorded_args(args)
            self.calls.append(record)
        else:
            self.unrecorded += 1
        try:
            value = await self._answer(method, args)
            size = len(_encoder.encode(value))
            if size > self.max_reply_bytes:
                raise HookLimitExceeded(
                    f"the answer to host call {method!r} is {size} bytes, more than the {self.max_reply_bytes} allowed",
                    limit="host_reply",
                )
        except HookError as exc:  # a limit of ours: the runner stops the hook
            record.update(outcome="limit", error=exc.message)
            raise
        except (PermissionError, NotFound, Invalid, Conflict) as exc:  # the contract's answers
            record.update(outcome=error_code(exc), error=str(exc)[:300])
            raise
        except Exception:  # the database or a bug of ours: the hook must not see its details
            logger.exception("host call %s of a hook failed inside the proxy", one_line(method, 64))
            record.update(outcome="HostUnavailable", error="internal error (see the proxy's log)")
            raise HostUnavailable("the proxy could not answer this host call; try the login again") from None
        finally:
            record["ms"] = round((time.perf_counter() - started) * 1000, 2)
        record["outcome"] = "ok"
        return value

    async def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        check_granted(method, self.grants)
        parsed = parse_args(method, args)
        rows = self.rows
        async with rows.reading():
            if isinstance(parsed, UserInfoArgs):
                result: Any = await _directory.user_info(rows, parsed.user_id)
            elif isinstance(parsed, TeamInfoArgs):
                result = await _directory.team_info(rows, parsed.team_id)
            elif isinstance(parsed, NewUserArgs):
                self._check_identity(method, parsed.user_id, parsed.user_email)
                self._check_policy(
                    "new_user", parsed.user_role or _directory.DEFAULT_USER_ROLE, parsed.max_budget, parsed.models
                )
                result = await _directory.new_user(rows, parsed)
            else:
                assert isinstance(parsed, AddMemberArgs)
                # Members who are not users yet are created as DEFAULT_MEMBER_ROLE with no budget: the policy
                # applies to them too, checked before anything is staged.
                for member in parsed.members:
                    if not await _directory.member_exists(rows, member):
                        self._check_identity(method, member.user_id, member.user_email)
                        self._check_policy("add_new_member", _directory.DEFAULT_MEMBER_ROLE, None, [])
                result = await _directory.add_members(rows, parsed)
        return dump_result(method, result)

    def _check_identity(self, method: str, user_id: str | None, email: str | None) -> None:
        """The identity rules a login's values obey apply to the users a hook creates too."""
        if user_id is not None and user_id in self.reserved_user_ids:
            raise PermissionError(f"{method}: user_id {user_id!r} is PROXY_ADMIN_ID; a hook may not create it")
        if self.allowed_email_domains and email is not None:
            domain = email.rpartition("@")[2].lower()
            if domain not in self.allowed_email_domains:
                raise PermissionError(f"{method}: {email!r} is not in ALLOWED_EMAIL_DOMAINS")

    def _check_policy(self, method: str, role: str, max_budget: float | None, models: Sequence[str]) -> None:
        """``hook_settings.policy`` applies to the users a hook creates as to the values it returns."""
        policy = self.policy
        if policy is None:
            return
        if policy.allowed_roles is not None and role not in policy.allowed_roles:
            raise PermissionError(f"{method}: a new user's role {role!r} is not in hook_settings.policy.allowed_roles")
        if policy.max_budget is not None and (max_budget is None or max_budget > policy.max_budget):
            given = "unlimited" if max_budget is None else f"{max_budget:g}"
            raise PermissionError(
                f"{method}: a new user's max_budget {given} is over hook_settings.policy.max_budget "
                f"({policy.max_budget:g})"
            )
        if policy.models_must_exist:
            unknown = sorted(set(models) - self.model_names)
            if unknown:
                raise PermissionError(f"{method}: models not in model_list: {', '.join(unknown)}")


def _recorded_args(args: Any) -> Any:
    """The arguments as recorded: JSON data, cut short when long (measured first: a hook's megabyte of
    arguments is never turned into JSON on the event loop)."""
    try:
        size = len(_encoder.encode(args))
    except (TypeError, ValueError, OverflowError, RecursionError):
        size = 0
    if size > _MAX_MEASURED_ARGS:
        return f"<{size} bytes of arguments, not recorded>"
    try:
        encoded = json.dumps(args, allow_nan=False, default=_not_json, separators=(",", ":"))
    except (ValueError, RecursionError):
        encoded = "<not JSON data>"
    if len(encoded) <= _MAX_RECORDED_ARGS:
        try:
            return json.loads(encoded)
        except ValueError:
            return encoded
    return encoded[:_MAX_RECORDED_ARGS] + f"... ({len(encoded)} characters)"


def _not_json(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    return f"<{type(value).__name__}>"
