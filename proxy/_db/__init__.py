"""Persistence: SQLAlchemy 2 (async) models, Alembic migrations shipped in this package, and the store."""

from __future__ import annotations

from ._models import CandidateRun as CandidateRun
from ._models import HookRun as HookRun
from ._models import HookVersion as HookVersion
from ._models import LoginInput as LoginInput
from ._models import Team as Team
from ._models import TeamMember as TeamMember
from ._models import UISession as UISession
from ._models import User as User
from ._store import CandidateRecord as CandidateRecord
from ._store import Database as Database
from ._store import IdentityMismatch as IdentityMismatch
from ._store import LoginRecord as LoginRecord
from ._store import RunRecord as RunRecord
from ._store import SessionRows as SessionRows
from ._store import StagedWrites as StagedWrites
from ._store import VersionRecord as VersionRecord
from ._store import as_utc as as_utc
from ._store import normalize_url as normalize_url
from ._store import utcnow as utcnow

__all__ = (
    "CandidateRecord",
    "CandidateRun",
    "Database",
    "HookRun",
    "HookVersion",
    "IdentityMismatch",
    "LoginInput",
    "LoginRecord",
    "RunRecord",
    "SessionRows",
    "StagedWrites",
    "Team",
    "TeamMember",
    "UISession",
    "User",
    "VersionRecord",
    "as_utc",
    "normalize_url",
    "utcnow",
)
