"""Users and teams, LiteLLM-shaped: the operations behind both the hook's host calls and the management API.

Each operation is written once against :class:`Rows`, the few reads and inserts it needs. The management API
runs them on a database transaction (:class:`proxy._db.SessionRows`); a login's host calls run them on a view
that reads the database and keeps the login's own writes aside until the login commits
(:class:`proxy._host.StagedRows`). Results and errors are the wire contract's (:mod:`sdk._hostapi`):
``NotFound`` (404), ``Conflict`` (409), ``Invalid`` (400).

hookjail's writes are inserts only (new users, new memberships, new teams): nothing a hook does changes or
removes an existing row.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from sdk.contract import (
    DEFAULT_MEMBER_ROLE,
    DEFAULT_USER_ROLE,
    AddMemberArgs,
    Conflict,
    Invalid,
    MemberArgs,
    NewUserArgs,
    NewUserResponse,
    NotFound,
    TeamAddMemberResponse,
    TeamInfoResponse,
    TeamMemberRecord,
    TeamMembershipRecord,
    TeamRecord,
    UserInfoResponse,
    UserRecord,
)

from ._db import Team, TeamMember, User, utcnow

__all__ = (
    "DEFAULT_MEMBER_ROLE",
    "DEFAULT_USER_ROLE",
    "MAX_METADATA_BYTES",
    "Rows",
    "add_members",
    "check_metadata",
    "member_exists",
    "new_team",
    "new_user",
    "team_info",
    "team_record",
    "user_info",
    "user_record",
)

#: The largest ``metadata`` a user may carry, as JSON.
MAX_METADATA_BYTES = 64 * 1024


class Rows(Protocol):
    """The reads and inserts the operations need."""

    async def user(self, user_id: str) -> User | None:
        """The user with this id."""

    async def user_by_email(self, email: str) -> User | None:
        """The oldest user with this email (compared case-insensitively)."""

    async def users(self, user_ids: Sequence[str]) -> dict[str, User]:
        """The users with these ids that exist."""

    async def team(self, team_id: str) -> Team | None:
        """The team with this id."""

    async def memberships_of_user(self, user_id: str) -> list[TeamMember]:
        """The user's team memberships, oldest first."""

    async def memberships_of_team(self, team_id: str) -> list[TeamMember]:
        """The team's memberships, oldest first."""

    async def add(self, row: User | Team | TeamMember) -> None:
        """Insert a new row (visible to the reads above from then on)."""


def user_record(user: User, team_ids: Iterable[str] = ()) -> UserRecord:
    """A user row as LiteLLM's ``LiteLLM_UserTable`` fields hookjail has."""
    return UserRecord(
        user_id=user.id,
        user_email=user.email,
        user_alias=user.alias,
        user_role=user.role,
        models=list(user.models or []),
        max_budget=user.max_budget,
        budget_duration=user.budget_duration,
        spend=0.0,
        teams=list(team_ids),
        metadata=dict(user.meta or {}),
    )


async def team_record(rows: Rows, team: Team) -> TeamRecord:
    """A team row with its ``members_with_roles``."""
    memberships = await rows.memberships_of_team(team.id)
    users = await rows.users([m.user_id for m in memberships])
    return TeamRecord(
        team_id=team.id,
        team_alias=team.alias,
        models=list(team.models or []),
        max_budget=team.max_budget,
        members_with_roles=[
            TeamMemberRecord(
                user_id=m.user_id,
                user_email=users[m.user_id].email if m.user_id in users else None,
                role=m.role,
            )
            for m in memberships
        ],
    )


def _membership(m: TeamMember) -> TeamMembershipRecord:
    return TeamMembershipRecord(user_id=m.user_id, team_id=m.team_id, max_budget_in_team=m.max_budget_in_team)


async def user_info(rows: Rows, user_id: str) -> UserInfoResponse:
    """LiteLLM's ``/user/info``: the user, their teams (with members), no keys.

    Raises:
        NotFound: no such user (``"User <id> not found"``, as LiteLLM says).
    """
    user = await rows.user(user_id)
    if user is None:
        raise NotFound(f"User {user_id} not found")
    memberships = await rows.memberships_of_user(user_id)
    teams: list[TeamRecord] = []
    for membership in memberships:
        team = await rows.team(membership.team_id)
        if team is not None:
            teams.append(await team_record(rows, team))
    return UserInfoResponse(
        user_id=user.id,
        user_info=user_record(user, (m.team_id for m in memberships)),
        keys=[],
        teams=teams,
    )


async def team_info(rows: Rows, team_id: str) -> TeamInfoResponse:
    """LiteLLM's ``/team/info``: the team, its members and memberships, no keys.

    Raises:
        NotFound: no such team.
    """
    team = await rows.team(team_id)
    if team is None:
        raise NotFound(f"Team {team_id} not found")
    memberships = await rows.memberships_of_team(team_id)
    return TeamInfoResponse(
        team_id=team.id,
        team_info=await team_record(rows, team),
        keys=[],
        team_memberships=[_membership(m) for m in memberships],
    )


def check_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """``metadata`` if it is JSON data of a reasonable size.

    Raises:
        Invalid: naming ``metadata``.
    """
    try:
        encoded = json.dumps(metadata, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        raise Invalid("metadata: must be JSON data (strings, numbers, booleans, null, lists, objects)") from None
    if len(encoded) > MAX_METADATA_BYTES:
        raise Invalid(f"metadata: {len(encoded)} bytes as JSON, more than the {MAX_METADATA_BYTES} allowed")
    return metadata


async def new_user(rows: Rows, args: NewUserArgs, *, now: datetime | None = None) -> NewUserResponse:
    """LiteLLM's ``/user/new`` without an API key: create a user, optionally in teams (as "user").

    Raises:
        Conflict: a user with this id exists.
        NotFound: one of ``teams`` does not exist.
        Invalid: ``metadata`` is not JSON data or too large.
    """
    now = now or utcnow()
    user_id = args.user_id or str(uuid.uuid4())
    metadata = check_metadata(dict(args.metadata))
    if await rows.user(user_id) is not None:
        raise Conflict(f"User with id {user_id} already exists")
    team_ids = list(dict.fromkeys(args.teams))
    for team_id in team_ids:
        if await rows.team(team_id) is None:
            raise NotFound(f"Team {team_id} not found")
    user = User(
        id=user_id,
        email=args.user_email,
        alias=args.user_alias,
        role=args.user_role or DEFAULT_USER_ROLE,
        models=list(args.models),
        max_budget=args.max_budget,
        budget_duration=args.budget_duration,
        meta=metadata or None,
        provider=None,
        created_at=now,
        updated_at=now,
        last_login_at=None,
    )
    await rows.add(user)
    for team_id in team_ids:
        await rows.add(TeamMember(team_id=team_id, user_id=user_id, role="user", created_at=now))
    return NewUserResponse(key=None, **user_record(user, team_ids).model_dump(exclude={"spend"}))


async def member_exists(rows: Rows, member: MemberArgs) -> bool:
    """True when the user a member names exists (else adding the member creates it)."""
    if member.user_id is not None:
        return await rows.user(member.user_id) is not None
    return member.user_email is not None and await rows.user_by_email(member.user_email) is not None


async def _member_user(rows: Rows, member: MemberArgs, now: datetime) -> User:
    """The user a member names, created (as LiteLLM does) when there is none yet."""
    user: User | None = None
    if member.user_id is not None:
        user = await rows.user(member.user_id)
    elif member.user_email is not None:
        user = await rows.user_by_email(member.user_email)
    if user is None:
        user = User(
            id=member.user_id or str(uuid.uuid4()),
            email=member.user_email,
            role=DEFAULT_MEMBER_ROLE,
            models=[],
            created_at=now,
            updated_at=now,
        )
        await rows.add(user)
    return user


async def add_members(
    rows: Rows,
    args: AddMemberArgs,
    *,
    now: datetime | None = None,
) -> TeamAddMemberResponse:
    """LiteLLM's ``/team/member_add``: add one or more members to a team, creating users that do not exist.

    Raises:
        NotFound: no such team.
        Conflict: a member is already in the team.
    """
    now = now or utcnow()
    team = await rows.team(args.team_id)
    if team is None:
        raise NotFound(f"Team {args.team_id} not found")
    updated_users: list[UserRecord] = []
    memberships: list[TeamMembershipRecord] = []
    for member in args.members:
        user = await _member_user(rows, member, now)
        current = await rows.memberships_of_user(user.id)
        if any(m.team_id == team.id for m in current):
            raise Conflict(f"User {user.id} is already in team {team.id}")
        membership = TeamMember(
            team_id=team.id,
            user_id=user.id,
            role=member.role,
            max_budget_in_team=args.max_budget_in_team,
            created_at=now,
        )
        await rows.add(membership)
        updated_users.append(user_record(user, [*(m.team_id for m in current), team.id]))
        memberships.append(_membership(membership))
    record = await team_record(rows, team)
    return TeamAddMemberResponse(
        **record.model_dump(), updated_users=updated_users, updated_team_memberships=memberships
    )


async def new_team(
    rows: Rows,
    *,
    team_id: str | None,
    team_alias: str | None,
    models: Sequence[str],
    max_budget: float | None,
    members: Sequence[MemberArgs],
    now: datetime | None = None,
) -> TeamRecord:
    """LiteLLM's ``/team/new``: create a team with its first members (users created if needed).

    Raises:
        Conflict: a team with this id exists, or a member is named twice.
    """
    now = now or utcnow()
    team_id = team_id or str(uuid.uuid4())
    if await rows.team(team_id) is not None:
        raise Conflict(f"Team with id {team_id} already exists")
    team = Team(id=team_id, alias=team_alias, models=list(models), max_budget=max_budget, created_at=now)
    await rows.add(team)
    if members:
        await add_members(rows, AddMemberArgs(team_id=team_id, member=list(members)), now=now)
    return await team_record(rows, team)
