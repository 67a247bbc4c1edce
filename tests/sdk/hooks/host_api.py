"""Hooks that exercise the host API from inside the sandbox; each prints what it saw as one JSON line."""

from __future__ import annotations

import json
from typing import Any

from sdk import (
    ConflictError,
    HostUnavailableError,
    InvalidRequestError,
    LitellmUserRoles,
    Member,
    NewUserRequest,
    NotFoundError,
    OpenID,
    ProxyException,
    SSOUserDefinedValues,
    TeamMemberAddRequest,
    add_new_member,
    new_user,
    team_info,
    user_info,
)
from sdk._hostapi import UserAPIKeyAuth


def _report(seen: dict[str, Any]) -> None:
    print(json.dumps(seen))


def _values(user: OpenID) -> SSOUserDefinedValues:
    return SSOUserDefinedValues(
        models=[],
        user_id=user.id or "anonymous",
        user_email=user.email,
        user_role=LitellmUserRoles.INTERNAL_USER.value,
        max_budget=1.0,
        budget_duration="1d",
    )


def _error(exc: ProxyException) -> dict[str, Any]:
    return {"type": type(exc).__name__, "status": exc.status_code, "code": exc.code, "message": exc.message}


async def lookup_user(user: OpenID) -> SSOUserDefinedValues:
    found = await user_info(user_id=user.id, user_api_key_dict=UserAPIKeyAuth(), request=None)
    _report(
        {
            "user_id": found.user_id,
            "role": found.user_info.user_role,
            "role_by_key": found["user_info"]["user_role"],
            "teams": [team.team_id for team in found.teams],
            "members": [m.user_id for team in found.teams for m in team.members_with_roles],
            "keys": found.keys,
        }
    )
    return _values(user)


async def lookup_unknown_user(user: OpenID) -> SSOUserDefinedValues:
    try:
        await user_info(user_id=user.id)
    except NotFoundError as exc:
        _report({**_error(exc), "is_lookup_error": isinstance(exc, LookupError)})
    return _values(user)


async def lookup_when_unavailable(user: OpenID) -> SSOUserDefinedValues:
    try:
        await user_info(user_id=user.id)
    except ProxyException as exc:
        _report({**_error(exc), "is_host_unavailable": isinstance(exc, HostUnavailableError)})
    return _values(user)


async def lookup_without_grant(user: OpenID) -> SSOUserDefinedValues:
    try:
        await team_info(team_id="eng")
    except PermissionError as exc:
        _report({"type": type(exc).__name__, "message": str(exc)})
    return _values(user)


async def lookup_with_bad_arguments(user: OpenID) -> SSOUserDefinedValues:
    try:
        await user_info(user_id=123)  # type: ignore[arg-type]
    except InvalidRequestError as exc:
        _report({**_error(exc), "is_value_error": isinstance(exc, ValueError)})
    return _values(user)


async def create_user(user: OpenID) -> SSOUserDefinedValues:
    created = await new_user(
        data=NewUserRequest(
            user_id=f"{user.id}-created",
            user_email=user.email,
            user_role=LitellmUserRoles.INTERNAL_USER,
            models=["gpt-4o-mini"],
            max_budget=5,
            budget_duration="30d",
            teams=["eng"],
            tpm_limit=100,  # type: ignore[call-arg]  # a LiteLLM field hookjail accepts and does not store
        ),
        user_api_key_dict=UserAPIKeyAuth(user_role=LitellmUserRoles.PROXY_ADMIN),
    )
    _report({"key": created.key, "user_id": created.user_id, "teams": created.teams, "role": created.user_role})
    return _values(user)


async def create_user_from_dict(user: OpenID) -> SSOUserDefinedValues:
    created = await new_user({"user_id": f"{user.id}-created", "user_email": user.email})
    _report({"user_id": created.user_id, "email": created.user_email})
    return _values(user)


async def create_existing_user(user: OpenID) -> SSOUserDefinedValues:
    try:
        await new_user(NewUserRequest(user_id=user.id))
    except ConflictError as exc:
        _report(_error(exc))
    return _values(user)


async def create_user_with_bad_role(user: OpenID) -> SSOUserDefinedValues:
    try:
        await new_user({"user_id": "x", "user_role": "root"})
    except InvalidRequestError as exc:
        _report(_error(exc))
    return _values(user)


async def add_member(user: OpenID) -> SSOUserDefinedValues:
    added = await add_new_member(
        data=TeamMemberAddRequest(team_id="eng", member=Member(user_id=user.id, role="user")),
        user_api_key_dict=UserAPIKeyAuth(),
    )
    _report(
        {
            "team_id": added.team_id,
            "members": [m.user_id for m in added.members_with_roles],
            "updated_users": [u.user_id for u in added.updated_users],
            "memberships": [[m.team_id, m.user_id] for m in added.updated_team_memberships],
        }
    )
    return _values(user)


async def add_member_to_unknown_team(user: OpenID) -> SSOUserDefinedValues:
    try:
        await add_new_member({"team_id": "nope", "member": [{"user_id": user.id}]})
    except NotFoundError as exc:
        _report(_error(exc))
    return _values(user)


async def lookup_team(user: OpenID) -> SSOUserDefinedValues:
    team = await team_info(team_id="eng")
    _report(
        {
            "team_id": team.team_id,
            "alias": team.team_info.team_alias,
            "members": [[m.user_id, m.role] for m in team.team_info.members_with_roles],
            "memberships": [m.user_id for m in team.team_memberships],
        }
    )
    return _values(user)
