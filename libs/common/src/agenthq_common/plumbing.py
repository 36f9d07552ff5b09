"""The tables every service has besides its own: the outbox and the inbox.

They live on a metadata of their own so that each service's Alembic
environment can include them next to its domain tables, and their shape is
defined once, here.
"""

from __future__ import annotations

from sqlalchemy import (
    DDL,
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    event,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

plumbing_metadata = MetaData(naming_convention=NAMING_CONVENTION)

# One row per event a transaction published. `seq` gives the relay a cheap,
# index-friendly order; `published_at` stays NULL until the broker confirmed it.
outbox = Table(
    "outbox",
    plumbing_metadata,
    Column("seq", BigInteger, Identity(always=True), primary_key=True),
    Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("event_type", String(200), nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("published_at", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    # Partial index: the relay only ever looks for what is still unpublished.
    Index("ix_outbox_unpublished", "seq", postgresql_where=text("published_at IS NULL")),
)

# The consumer's memory of what it has already applied: the effect of an event
# and its row here commit together, so a redelivery finds the row and stops.
inbox = Table(
    "inbox",
    plumbing_metadata,
    Column("consumer", String(200), primary_key=True),
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("event_type", String(200), nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


# NOTIFY channels are per database, and every service has its own database,
# so one channel name serves all. The trigger fires once per INSERT statement
# (not per row); PostgreSQL delivers the notification only when the inserting
# transaction commits, which is exactly when the relay can see the rows.
OUTBOX_CHANNEL = "agenthq_outbox"
OUTBOX_NOTIFY_DDL = [
    f"""CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_notify('{OUTBOX_CHANNEL}', ''); RETURN NULL; END $$""",
    """CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()""",
]
OUTBOX_NOTIFY_DROP = [
    "DROP TRIGGER IF EXISTS outbox_notify ON outbox",
    "DROP FUNCTION IF EXISTS outbox_notify()",
]

for _statement in OUTBOX_NOTIFY_DDL:
    # So that metadata.create_all (tests, tools) makes the same table the migrations do.
    event.listen(outbox, "after_create", DDL(_statement))
