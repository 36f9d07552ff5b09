"""The quota read model: teams over a hard limit, and plan changes that lift it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE quota_blocks (
            team_id uuid NOT NULL,
            metric varchar(32) NOT NULL,
            period varchar(7) NOT NULL,
            "limit" bigint NOT NULL,
            used bigint NOT NULL,
            reached_at timestamptz NOT NULL,
            CONSTRAINT pk_quota_blocks PRIMARY KEY (team_id, period, metric, "limit")
        )
        """
    )
    op.execute(
        """
        CREATE TABLE quota_resets (
            team_id uuid PRIMARY KEY,
            reset_at timestamptz NOT NULL
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE quota_resets")
    op.execute("DROP TABLE quota_blocks")
