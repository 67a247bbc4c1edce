"""The tables. Changing them means a new migration in ``migrations/versions``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ("Base", "CandidateRun", "HookRun", "HookVersion", "LoginInput", "Team", "TeamMember", "UISession", "User")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    """A user as the hook last decided (the values are applied on every login, not only the first).

    Users created by the management API or by host calls before their first login get the role they were
    given, or ``internal_user_viewer``; their first login applies the hook's values.

    ``idp_issuer`` and ``idp_subject`` bind the user to one identity-provider account (its issuer and ``sub``):
    set by the user's first SSO login (``NULL`` until then), after which a login of another account that maps
    to this user id is refused (:mod:`proxy._login`).
    """

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(256), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    alias: Mapped[str | None] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(32))
    models: Mapped[list[str]] = mapped_column(JSON)
    max_budget: Mapped[float | None] = mapped_column(Float)
    budget_duration: Mapped[str | None] = mapped_column(String(16))
    provider: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # "metadata" is taken by SQLAlchemy's declarative base: the attribute has another name than the column
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    idp_issuer: Mapped[str | None] = mapped_column(String(512))
    idp_subject: Mapped[str | None] = mapped_column(String(256))


class Team(Base):
    """A team (created by the management API; hooks can read it and add members)."""

    __tablename__ = "teams"

    id: Mapped[str] = mapped_column(String(256), primary_key=True)
    alias: Mapped[str | None] = mapped_column(String(256))
    models: Mapped[list[str]] = mapped_column(JSON)
    max_budget: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TeamMember(Base):
    """A user's membership of a team."""

    __tablename__ = "team_members"

    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(32))
    max_budget_in_team: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UISession(Base):
    """A UI session; deleting the row revokes the cookie that names it."""

    __tablename__ = "ui_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class HookRun(Base):
    """One run of the hook for one login, whatever its outcome."""

    __tablename__ = "hook_runs"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    outcome: Mapped[str] = mapped_column(String(32))
    duration_ms: Mapped[float] = mapped_column(Float)
    subject: Mapped[str | None] = mapped_column(String(256))
    user_id: Mapped[str | None] = mapped_column(String(256), index=True)
    provider: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    fallback: Mapped[str | None] = mapped_column(String(32))
    stdout: Mapped[str | None] = mapped_column(Text)
    stderr: Mapped[str | None] = mapped_column(Text)
    #: other facts about the run: ``email`` (the identity provider's, when it gave one)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: every host call the run made, in order: ``{method, args, outcome, error?, ms}``
    host_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    http_status: Mapped[int | None] = mapped_column(Integer)
    #: the version of the hook that served the run (:class:`HookVersion`); ``NULL`` for runs from before 0004
    hook_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    #: the values the login was granted (validated, after the policy): only on runs that signed someone in
    decided: Mapped[dict[str, Any] | None] = mapped_column("decided_values", JSON)


class HookVersion(Base):
    """A version of a handler the proxy loaded (live or candidate), kept with its source."""

    __tablename__ = "hook_versions"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: the hook's file name (``custom_sso.py``) or its package's name and a slash (``my_hook/``)
    file: Mapped[str] = mapped_column(String(256))
    function: Mapped[str] = mapped_column(String(256))
    #: every source file, by its path (relative to the package for a package); ``NULL`` when too large to keep
    sources: Mapped[dict[str, str] | None] = mapped_column(JSON)
    first_loaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_loaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: what loaded it last: ``start``, ``reload`` (its file changed), ``sighup``, ``candidate``
    loaded_by: Mapped[str] = mapped_column(String(32))
    loads: Mapped[int] = mapped_column(Integer)


class CandidateRun(Base):
    """The candidate's run in the shadow of one login, compared with what the live hook decided."""

    __tablename__ = "candidate_runs"

    #: the login's run (``hook_runs.run_id``)
    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    sha256: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32))
    #: the candidate's values, validated and after the policy (``NULL`` unless its outcome is ``ok``)
    decided: Mapped[dict[str, Any] | None] = mapped_column("decided_values", JSON)
    #: ``{field: {"live": ..., "candidate": ...}}`` for each field that differs, ``outcome`` among them
    diff: Mapped[dict[str, Any]] = mapped_column(JSON)
    agrees: Mapped[bool] = mapped_column(Boolean)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)


class LoginInput(Base):
    """The OpenID one login's hook saw (``hook_settings.record_inputs``; personal data, deleted after
    ``record_retention_days``)."""

    __tablename__ = "login_inputs"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    openid: Mapped[dict[str, Any]] = mapped_column(JSON)
