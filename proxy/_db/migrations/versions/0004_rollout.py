"""Safe rollout: hook versions, the runs' versions and granted values, candidate runs, recorded login inputs.

Also indexes ``hook_runs.user_id`` (a user's runs on the console).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("hook_runs", sa.Column("hook_sha256", sa.String(64), nullable=True))
    op.add_column("hook_runs", sa.Column("decided_values", sa.JSON(), nullable=True))
    op.create_index("ix_hook_runs_hook_sha256", "hook_runs", ["hook_sha256"])
    op.create_index("ix_hook_runs_user_id", "hook_runs", ["user_id"])
    op.create_table(
        "hook_versions",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("file", sa.String(256), nullable=False),
        sa.Column("function", sa.String(256), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=True),
        sa.Column("first_loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("loaded_by", sa.String(32), nullable=False),
        sa.Column("loads", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name="pk_hook_versions"),
    )
    op.create_table(
        "candidate_runs",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("decided_values", sa.JSON(), nullable=True),
        sa.Column("diff", sa.JSON(), nullable=False),
        sa.Column("agrees", sa.Boolean(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name="pk_candidate_runs"),
    )
    op.create_index("ix_candidate_runs_started_at", "candidate_runs", ["started_at"])
    op.create_table(
        "login_inputs",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("openid", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_login_inputs"),
    )
    op.create_index("ix_login_inputs_recorded_at", "login_inputs", ["recorded_at"])


def downgrade() -> None:
    op.drop_table("login_inputs")
    op.drop_table("candidate_runs")
    op.drop_table("hook_versions")
    op.drop_index("ix_hook_runs_user_id", "hook_runs")
    op.drop_index("ix_hook_runs_hook_sha256", "hook_runs")
    with op.batch_alter_table("hook_runs") as batch:
        batch.drop_column("decided_values")
        batch.drop_column("hook_sha256")
