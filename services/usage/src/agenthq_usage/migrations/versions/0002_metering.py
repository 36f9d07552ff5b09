"""Metering ledger, daily counters, plan history, quota breaches, invoices.

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
        CREATE TABLE metered_events (
            event_id uuid PRIMARY KEY,
            team_id uuid,
            user_id uuid,
            metric varchar(32) NOT NULL,
            quantity bigint NOT NULL,
            occurred_at timestamptz NOT NULL,
            source varchar(8) NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE usage_stats (
            team_id uuid NOT NULL,
            date date NOT NULL,
            tasks_created bigint NOT NULL DEFAULT 0,
            tasks_completed bigint NOT NULL DEFAULT 0,
            llm_tokens_used bigint NOT NULL DEFAULT 0,
            api_calls bigint NOT NULL DEFAULT 0,
            storage_bytes bigint NOT NULL DEFAULT 0,
            CONSTRAINT pk_usage_stats PRIMARY KEY (team_id, date)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE personal_usage_stats (
            user_id uuid NOT NULL,
            date date NOT NULL,
            api_calls bigint NOT NULL DEFAULT 0,
            CONSTRAINT pk_personal_usage_stats PRIMARY KEY (user_id, date)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE team_plans (
            team_id uuid NOT NULL,
            effective_at timestamptz NOT NULL,
            plan varchar(50) NOT NULL,
            CONSTRAINT pk_team_plans PRIMARY KEY (team_id, effective_at)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE quota_breaches (
            team_id uuid NOT NULL,
            metric varchar(32) NOT NULL,
            period varchar(7) NOT NULL,
            "limit" bigint NOT NULL,
            used bigint NOT NULL,
            reached_at timestamptz NOT NULL,
            CONSTRAINT pk_quota_breaches PRIMARY KEY (team_id, metric, period, "limit")
        )
        """
    )
    op.execute(
        """
        CREATE TABLE invoices (
            team_id uuid NOT NULL,
            period varchar(7) NOT NULL,
            currency varchar(3) NOT NULL,
            lines jsonb NOT NULL,
            total bigint NOT NULL,
            plans_version bigint NOT NULL,
            finalized_at timestamptz NOT NULL,
            CONSTRAINT pk_invoices PRIMARY KEY (team_id, period)
        )
        """
    )


def downgrade() -> None:
    for table in (
        "invoices",
        "quota_breaches",
        "team_plans",
        "personal_usage_stats",
        "usage_stats",
        "metered_events",
    ):
        op.execute(f"DROP TABLE {table}")
