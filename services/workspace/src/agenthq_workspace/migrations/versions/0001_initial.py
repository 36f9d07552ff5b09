"""Workspaces, outbox, inbox and the membership read model.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from agenthq_common.migrations import (
    create_membership_read_model_v1,
    create_outbox_inbox_v1,
    drop_membership_read_model_v1,
    drop_outbox_inbox_v1,
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_inbox_v1(op)
    create_membership_read_model_v1(op)
    op.create_table(
        "workspaces",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("team_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("created_by", pg.UUID(as_uuid=True), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("archived_at", sa.DateTime(timezone=True)),
    )
    op.execute(
        "CREATE UNIQUE INDEX uq_workspaces_team_lower_name ON workspaces (team_id, lower(name))"
    )
    op.create_index("ix_workspaces_team_created", "workspaces", ["team_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_table("workspaces")
    drop_membership_read_model_v1(op)
    drop_outbox_inbox_v1(op)
