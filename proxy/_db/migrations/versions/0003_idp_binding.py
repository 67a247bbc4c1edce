"""Bind users to their identity-provider account: ``users.idp_issuer`` and ``users.idp_subject``.

Both nullable: existing users stay unbound until their next SSO login binds them (see :mod:`proxy._login`).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


# Only added columns (plain ALTER TABLE ADD COLUMN on SQLite), as in 0002.


def upgrade() -> None:
    op.add_column("users", sa.Column("idp_issuer", sa.String(512), nullable=True))
    op.add_column("users", sa.Column("idp_subject", sa.String(256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("idp_subject")
        batch.drop_column("idp_issuer")
