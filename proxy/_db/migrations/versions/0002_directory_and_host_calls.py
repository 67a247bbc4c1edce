"""Users and teams for the host API and the management API; host calls recorded with each hook run.

- ``users.alias``, ``users.metadata`` (LiteLLM's ``user_alias`` and ``metadata``).
- ``team_members.max_budget_in_team`` and an index on ``team_members.user_id`` (a user's teams).
- ``hook_runs.host_calls``: the host calls a run made, in order.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


# Only added columns (plain ALTER TABLE ADD COLUMN on SQLite). Changing a column would make batch mode copy the
# table and drop the old one, which with foreign keys on deletes the sessions and memberships in cascade.


def upgrade() -> None:
    op.add_column("users", sa.Column("alias", sa.String(256), nullable=True))
    op.add_column("users", sa.Column("metadata", sa.JSON(), nullable=True))
    op.add_column("team_members", sa.Column("max_budget_in_team", sa.Float(), nullable=True))
    op.create_index("ix_team_members_user_id", "team_members", ["user_id"])
    op.add_column("hook_runs", sa.Column("host_calls", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hook_runs") as batch:
        batch.drop_column("host_calls")
    op.drop_index("ix_team_members_user_id", table_name="team_members")
    with op.batch_alter_table("team_members") as batch:
        batch.drop_column("max_budget_in_team")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("metadata")
        batch.drop_column("alias")
