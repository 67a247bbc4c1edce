"""An in-memory host for tests: answers a hook's host calls exactly as the wire contract in
:mod:`sdk.contract` says, from seeded users and teams, and records every call.

Where the proxy's answer depends on more than its data it uses the same code as the proxy: the refusal of an
unknown or ungranted method (:func:`~sdk.contract.check_granted`), the argument checks
(:func:`~sdk.contract.parse_args`), the result shapes (:func:`~sdk.contract.dump_result`), the error codes
(:func:`~sdk.contract.error_code`) and the default roles. ``tests/proxy/test_host.py`` runs the same calls
against both and compares the answers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .contract import (
    DEFAULT_MEMBER_ROLE,
    DEFAULT_USER_ROLE,
    METHODS,
    AddMemberArgs,
    Conflict,
    NewUserArgs,
    NewUserResponse,
    NotFound,
    TeamAddMemberResponse,
    TeamInfoArgs,
    TeamInfoResponse,
    TeamMemberRecord,
    TeamMembershipRecord,
    TeamRecord,
    UserInfoArgs,
    UserInfoResponse,
    UserRecord,
    check_granted,
    dump_result,
    error_code,
    parse_args,
)

__all__ = ("FakeHost", "RecordedCall")


@dataclass(frozen=True)
class RecordedCall:
    """One host call a hook made: the method, the arguments as sent, and how it ended ("ok" or the code of
    the error answered, e.g. "PermissionError", "NotFound")."""

    method: str
    args: dict[str, Any]
    outcome: str


class FakeHost:
    """An in-memory stand-in for the proxy's host API, to pass as ``host=`` to :func:`sdk.testing.run_hook`.

    It implements exactly the proxy's contract: the same argument checks, result shapes and error types.
    Writes (``new_user``, ``add_new_member``) change its memory, so a test can look at :attr:`users` after
    the call.

    Args:
        users: seeded users: :class:`~sdk._hostapi.UserRecord` objects or dicts with their fields
            (``user_id`` required).
        teams: seeded teams: :class:`~sdk._hostapi.TeamRecord` objects or dicts (``team_id`` required);
            ``members_with_roles`` entries make memberships of existing users.
        grants: the host calls the hook may make, as ``hook_settings.permissions`` (default: ``user_info``).

    Attributes:
        users: user id -> user.
        teams: team id -> team.
        grants: the granted methods.
        calls: every host call, in order.

    Example:
        >>> host = FakeHost(users=[{"user_id": "alice", "user_role": "proxy_admin"}])
        >>> import asyncio
        >>> asyncio.run(host("user_info", {"user_id": "alice"}))["user_info"]["user_role"]
        'proxy_admin'
        >>> host.calls[0].outcome
        'ok'
    """

    def __init__(
        self,
        *,
        users: Iterable[UserRecord | Mapping[str, Any]] = (),
        teams: Iterable[TeamRecord | Mapping[str, Any]] = (),
        grants: Iterable[str] = ("user_info",),
    ) -> None:
        self.grants = set(grants)
        unknown = self.grants - set(METHODS)
        if unknown:
            raise ValueError(f"unknown host calls in grants: {', '.join(sorted(unknown))} (known: {METHODS})")
        self.users: dict[str, UserRecord] = {}
        self.teams: dict[str, TeamRecord] = {}
        self.memberships: dict[tuple[str, str], TeamMembershipRecord] = {}
        self.calls: list[RecordedCall] = []
        for user in users:
            record = UserRecord.model_validate(user)
            self.users[record.user_id] = record
        for team in teams:
            team_record = TeamRecord.model_validate(team)
            self.teams[team_record.team_id] = team_record
            for member in team_record.members_with_roles:
                if member.user_id is not None:
                    self._join(team_record.team_id, member.user_id, None)

    async def __call__(self, method: str, args: dict[str, Any]) -> Any:
        """Answer one host call (the runner's ``host=`` signature)."""
        try:
            value = self._answer(method, args)
        except Exception as exc:
            self.calls.append(RecordedCall(method, dict(args), error_code(exc)))
            raise
        self.calls.append(RecordedCall(method, dict(args), "ok"))
        return value

    def calls_to(self, method: str) -> list[RecordedCall]:
        """The recorded calls of one method."""
        return [call for call in self.calls if call.method == method]

    # --- the methods ----------------------------------------------------------------------------------------

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        check_granted(method, self.grants)
        parsed = parse_args(method, args)
        if isinstance(parsed, UserInfoArgs):
            return dump_result(method, self._user_info(parsed))
        if isinstance(parsed, NewUserArgs):
            return dump_result(method, self._new_user(parsed))
        if isinstance(parsed, AddMemberArgs):
            return dump_result(method, self._add_new_member(parsed))
        assert isinstance(parsed, TeamInfoArgs)
        return dump_result(method, self._team_info(parsed))

    def _user_info(self, args: UserInfoArgs) -> UserInfoResponse:
        user = self.users.get(args.user_id)
        if user is None:
            raise NotFound(f"User {args.user_id} not found")
        teams = [self.teams[team_id] for team_id in user.teams if team_id in self.teams]
        return UserInfoResponse(user_id=user.user_id, user_info=user, keys=[], teams=teams)

    def _new_user(self, args: NewUserArgs) -> NewUserResponse:
        user_id = args.user_id or str(uuid.uuid4())
        if user_id in self.users:
            raise Conflict(f"User with id {user_id} already exists")
        missing = [team_id for team_id in args.teams if team_id not in self.teams]
        if missing:
            raise NotFound(f"Team {missing[0]} not found")
        user = UserRecord(
            user_id=user_id,
            user_email=args.user_email,
            user_alias=args.user_alias,
            user_role=args.user_role or DEFAULT_USER_ROLE,
            models=list(args.models),
            max_budget=args.max_budget,
            budget_duration=args.budget_duration,
            metadata=dict(args.metadata),
        )
        self.users[user_id] = user
        for team_id in args.teams:
            self._add_to_team(team_id, user, "user", None)
        created = self.users[user_id]
        return NewUserResponse.model_validate({**created.model_dump(exclude={"spend"}), "key": None})

    def _add_new_member(self, args: AddMemberArgs) -> TeamAddMemberResponse:
        team = self.teams.get(args.team_id)
        if team is None:
            raise NotFound(f"Team {args.team_id} not found")
        updated_users: list[UserRecord] = []
        updated_memberships: list[TeamMembershipRecord] = []
        for member in args.members:
            user = self._find_or_create(member.user_id, member.user_email)
            if (args.team_id, user.user_id) in self.memberships:
                raise Conflict(f"User {user.user_id} is already in team {args.team_id}")
            updated_memberships.append(self._add_to_team(args.team_id, user, member.role, args.max_budget_in_team))
            updated_users.append(self.users[user.user_id])
        team = self.teams[args.team_id]
        return TeamAddMemberResponse(
            **team.model_dump(), updated_users=updated_users, updated_team_memberships=updated_memberships
        )

    def _team_info(self, args: TeamInfoArgs) -> TeamInfoResponse:
        team = self.teams.get(args.team_id)
        if team is None:
            raise NotFound(f"Team {args.team_id} not found")
        memberships = [m for (team_id, _), m in self.memberships.items() if team_id == args.team_id]
        return TeamInfoResponse(team_id=team.team_id, team_info=team, keys=[], team_memberships=memberships)

    # --- helpers --------------------------------------------------------------------------------------------

    def _find_or_create(self, user_id: str | None, email: str | None) -> UserRecord:
        if user_id is not None and user_id in self.users:
            return self.users[user_id]
        if user_id is None and email is not None:
            for user in self.users.values():
                if user.user_email is not None and user.user_email.lower() == email.lower():
                    return user
        # As LiteLLM does, a member who is not a user yet becomes one.
        user = UserRecord(user_id=user_id or str(uuid.uuid4()), user_email=email, user_role=DEFAULT_MEMBER_ROLE)
        self.users[user.user_id] = user
        return user

    def _join(self, team_id: str, user_id: str, budget: float | None) -> TeamMembershipRecord:
        membership = TeamMembershipRecord(user_id=user_id, team_id=team_id, max_budget_in_team=budget)
        self.memberships[(team_id, user_id)] = membership
        user = self.users.get(user_id)
        if user is not None and team_id not in user.teams:
            self.users[user_id] = user.model_copy(update={"teams": [*user.teams, team_id]})
        return membership

    def _add_to_team(self, team_id: str, user: UserRecord, role: str, budget: float | None) -> TeamMembershipRecord:
        team = self.teams[team_id]
        member = TeamMemberRecord(user_id=user.user_id, user_email=user.user_email, role=role)
        self.teams[team_id] = team.model_copy(update={"members_with_roles": [*team.members_with_roles, member]})
        return self._join(team_id, user.user_id, budget)
