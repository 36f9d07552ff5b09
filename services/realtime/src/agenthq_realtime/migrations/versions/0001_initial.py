"""Outbox, inbox and the membership read model.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from alembic import op

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


def downgrade() -> None:
    drop_membership_read_model_v1(op)
    drop_outbox_inbox_v1(op)
