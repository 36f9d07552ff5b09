"""The activity service's tables (its own database only), as SQLAlchemy Core
tables: the migrations create them (``activity_logs`` partitioned, which the
ORM does not model), the code reads and writes them with SQL of its own."""

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import INET, JSONB, UUID

from agenthq_common.plumbing import NAMING_CONVENTION

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# One domain event: the seed's columns, the event id, and the record's place
# in its team's hash chain (chain.py). team_id and user_id are nullable (events
# without a team, system actions) and have no foreign keys: teams and users
# live in other services' databases. Partitioned by month of created_at.
activity_logs = Table(
    "activity_logs",
    metadata,
    Column("id", UUID(as_uuid=True), nullable=False),
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("team_id", UUID(as_uuid=True)),
    Column("user_id", UUID(as_uuid=True)),
    Column("action", String(100, collation="C"), nullable=False),
    Column("resource_type", String(50, collation="C")),
    Column("resource_id", String(200, collation="C")),
    Column("metadata", JSONB),
    Column("ip_address", INET),
    Column("user_agent", Text),
    Column("created_at", DateTime(timezone=True), primary_key=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("seq", BigInteger, nullable=False),
    Column("prev_hash", LargeBinary, nullable=False),
    Column("hash", LargeBinary, nullable=False),
    postgresql_partition_by="RANGE (created_at)",
)

# The head of each chain: where it ends (for appends and to catch records cut
# off its end) and where it starts once retention has removed a prefix.
activity_chains = Table(
    "activity_chains",
    metadata,
    Column("chain_key", UUID(as_uuid=True), primary_key=True),  # team id; nil: no team
    Column("last_seq", BigInteger, nullable=False),
    Column("last_hash", LargeBinary, nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("anchor_hash", LargeBinary, nullable=False),
    Column("pruned_at", DateTime(timezone=True)),
)
