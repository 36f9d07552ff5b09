"""The tables every service has besides its own: the outbox and the inbox.

They live on a metadata of their own so that each service's Alembic
environment can include them next to its domain tables, and their shape is
defined once, here.
"""

from __future__ import annotations

from sqlalchemy import (
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


def notify_channel(service: str) -> str:
    """The LISTEN/NOTIFY channel on which a service's relay is woken."""
    return f"outbox_{service}"
