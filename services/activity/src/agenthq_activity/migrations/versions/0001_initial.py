"""Activity log, outbox, inbox and the membership read model.

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
        "activity_logs",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("event_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("team_id", pg.UUID(as_uuid=True)),
        sa.Column("user_id", pg.UUID(as_uuid=True)),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("resource_type", sa.String(50)),
        sa.Column("resource_id", sa.String(200)),
        sa.Column("metadata", pg.JSONB),
        sa.Column("ip_address", pg.INET),
        sa.Column("user_agent", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.UniqueConstraint("event_id", name="uq_activity_logs_event_id"),
    )
    op.execute(
        "CREATE INDEX ix_activity_logs_team_created ON activity_logs "
        "(team_id, created_at DESC, id DESC)"
    )


def downgrade() -> None:
    for table in ("activity_logs",):
        op.drop_table(table)
    drop_membership_read_model_v1(op)
    drop_outbox_inbox_v1(op)
