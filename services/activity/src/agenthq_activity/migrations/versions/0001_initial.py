"""Activity log (partitioned by month, hash-chained), outbox, inbox and the
membership read model.

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

# Must stay the expression of agenthq_activity.activity.search.SEARCH_DOCUMENT
# (a test checks that searches use this index).
SEARCH_DOCUMENT = (
    "(to_tsvector('simple'::regconfig, (action::text || ' ' || "
    "coalesce(resource_type::text, '') || ' ' || coalesce(resource_id::text, ''))) || "
    "jsonb_to_tsvector('simple'::regconfig, coalesce(metadata, '{}'::jsonb), "
    '\'["string", "numeric"]\'::jsonb))'
)


def upgrade() -> None:
    create_outbox_inbox_v1(op)
    create_membership_read_model_v1(op)
    # GIN over (team_id, words): one index answers "this team, these words".
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    # The primary key has to include the partition key; an event's time never
    # changes, so (event_id, created_at) is as unique as event_id.
    op.execute(
        """
        CREATE TABLE activity_logs (
            id uuid NOT NULL,
            event_id uuid NOT NULL,
            team_id uuid,
            user_id uuid,
            action varchar(100) COLLATE "C" NOT NULL,
            resource_type varchar(50) COLLATE "C",
            resource_id varchar(200) COLLATE "C",
            metadata jsonb,
            ip_address inet,
            user_agent text,
            created_at timestamptz NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            seq bigint NOT NULL,
            prev_hash bytea NOT NULL,
            hash bytea NOT NULL,
            CONSTRAINT pk_activity_logs PRIMARY KEY (event_id, created_at)
        ) PARTITION BY RANGE (created_at)
        """
    )
    # Each index leads with team_id (every read is one team's) and ends with
    # the listing's order, so a page is an index range read in order.
    for name, columns in (
        ("team_time", "team_id, created_at DESC, id DESC"),
        ("team_user", "team_id, user_id, created_at DESC, id DESC"),
        ("team_action", "team_id, action, created_at DESC, id DESC"),
        ("team_resource", "team_id, resource_type, resource_id, created_at DESC, id DESC"),
        ("team_seq", "team_id, seq"),
    ):
        op.execute(f"CREATE INDEX ix_activity_logs_{name} ON activity_logs ({columns})")
    op.execute(
        "CREATE INDEX ix_activity_logs_team_search ON activity_logs "
        f"USING gin (team_id, {SEARCH_DOCUMENT})"
    )
    op.execute(
        """
        CREATE TABLE activity_chains (
            chain_key uuid PRIMARY KEY,
            last_seq bigint NOT NULL DEFAULT 0,
            last_hash bytea NOT NULL DEFAULT decode(repeat('00', 32), 'hex'),
            first_seq bigint NOT NULL DEFAULT 1,
            anchor_hash bytea NOT NULL DEFAULT decode(repeat('00', 32), 'hex'),
            pruned_at timestamptz
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE activity_chains")
    op.execute("DROP TABLE activity_logs")
    drop_membership_read_model_v1(op)
    drop_outbox_inbox_v1(op)
