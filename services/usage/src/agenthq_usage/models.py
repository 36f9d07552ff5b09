"""The usage service's tables (its own database only), as SQLAlchemy Core
tables; the code writes them with SQL of its own (upserts)."""

from sqlalchemy import BigInteger, Column, Date, DateTime, MetaData, String, Table, func
from sqlalchemy.dialects.postgresql import JSONB, UUID

from agenthq_common.plumbing import NAMING_CONVENTION

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Every metered event, once: the key that makes counting exact across the bus
# and HTTP ingest, forever (the inbox alone is per consumer).
metered_events = Table(
    "metered_events",
    metadata,
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("team_id", UUID(as_uuid=True)),
    Column("user_id", UUID(as_uuid=True)),
    Column("metric", String(32), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("source", String(8), nullable=False),  # bus | http
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The seed's usage_stats: one row per team and UTC day (BIGINT counters).
# storage_bytes is the day's net change of stored bytes.
usage_stats = Table(
    "usage_stats",
    metadata,
    Column("team_id", UUID(as_uuid=True), primary_key=True),
    Column("date", Date, primary_key=True),
    Column("tasks_created", BigInteger, nullable=False, server_default="0"),
    Column("tasks_completed", BigInteger, nullable=False, server_default="0"),
    Column("llm_tokens_used", BigInteger, nullable=False, server_default="0"),
    Column("api_calls", BigInteger, nullable=False, server_default="0"),
    Column("storage_bytes", BigInteger, nullable=False, server_default="0"),
)

# API calls made outside any team: the user's personal scope, never billed.
personal_usage_stats = Table(
    "personal_usage_stats",
    metadata,
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("date", Date, primary_key=True),
    Column("api_calls", BigInteger, nullable=False, server_default="0"),
)

# Each team's plan over time (team.created, team.plan_changed): what quotas
# and invoices, prorated by day, are computed from.
team_plans = Table(
    "team_plans",
    metadata,
    Column("team_id", UUID(as_uuid=True), primary_key=True),
    Column("effective_at", DateTime(timezone=True), primary_key=True),
    Column("plan", String(50), nullable=False),
)

# One row per hard limit a team reached in a period: publishes
# usage.quota_exceeded once (a new limit after a plan change is a new row).
quota_breaches = Table(
    "quota_breaches",
    metadata,
    Column("team_id", UUID(as_uuid=True), primary_key=True),
    Column("metric", String(32), primary_key=True),
    Column("period", String(7), primary_key=True),
    Column("limit", BigInteger, primary_key=True),
    Column("used", BigInteger, nullable=False),
    Column("reached_at", DateTime(timezone=True), nullable=False),
)

# Finalized invoices (drafts are computed, never stored): never updated.
invoices = Table(
    "invoices",
    metadata,
    Column("team_id", UUID(as_uuid=True), primary_key=True),
    Column("period", String(7), primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("lines", JSONB, nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("plans_version", BigInteger, nullable=False),
    Column("finalized_at", DateTime(timezone=True), nullable=False),
)
