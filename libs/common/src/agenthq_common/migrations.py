"""Alembic support shared by every service.

Each service keeps its own migrations (``agenthq_<name>/migrations``) for its
own database only. The shared tables (outbox, inbox, the membership read
model) are created by the frozen steps below, which service migrations call:
a later change to a shared table gets a new step here and a new migration in
each service, so a fresh database and an upgraded one end up the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_engine_from_config

from agenthq_common.plumbing import OUTBOX_NOTIFY_DDL, OUTBOX_NOTIFY_DROP


def create_outbox_inbox_v1(op: object) -> None:
    o = op  # alembic.op, passed in so this module imports without a migration context
    o.create_table(  # type: ignore[attr-defined]
        "outbox",
        sa.Column("seq", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.Column("event_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("payload", pg.JSONB, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.Column("attempts", sa.Integer, server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text),
        sa.PrimaryKeyConstraint("seq", name="pk_outbox"),
        sa.UniqueConstraint("event_id", name="uq_outbox_event_id"),
    )
    o.create_index(  # type: ignore[attr-defined]
        "ix_outbox_unpublished", "outbox", ["seq"], postgresql_where=sa.text("published_at IS NULL")
    )
    for statement in OUTBOX_NOTIFY_DDL:
        o.execute(statement)  # type: ignore[attr-defined]
    o.create_table(  # type: ignore[attr-defined]
        "inbox",
        sa.Column("consumer", sa.String(200), nullable=False),
        sa.Column("event_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column(
            "processed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("consumer", "event_id", name="pk_inbox"),
    )


def drop_outbox_inbox_v1(op: object) -> None:
    o = op
    o.drop_table("inbox")  # type: ignore[attr-defined]
    o.drop_table("outbox")  # type: ignore[attr-defined]
    for statement in OUTBOX_NOTIFY_DROP:
        o.execute(statement)  # type: ignore[attr-defined]


def drop_membership_read_model_v1(op: object) -> None:
    for table in ("rm_roles", "rm_members", "rm_teams"):
        op.drop_table(table)  # type: ignore[attr-defined]


def create_membership_read_model_v1(op: object) -> None:
    o = op
    o.create_table(  # type: ignore[attr-defined]
        "rm_teams",
        sa.Column("team_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("name", sa.String(255)),
        sa.Column("owner_id", pg.UUID(as_uuid=True)),
        sa.Column("plan", sa.String(50)),
        sa.Column("max_members", sa.Integer),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("team_id", name="pk_rm_teams"),
    )
    o.create_table(  # type: ignore[attr-defined]
        "rm_members",
        sa.Column("team_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("user_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("role", sa.String(100), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("team_id", "user_id", name="pk_rm_members"),
    )
    o.create_index("ix_rm_members_user_id", "rm_members", ["user_id"])  # type: ignore[attr-defined]
    o.create_table(  # type: ignore[attr-defined]
        "rm_roles",
        sa.Column("team_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("permissions", pg.ARRAY(sa.String(100)), nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("team_id", "name", name="pk_rm_roles"),
    )


# pg_advisory_xact_lock's key for migrations (any constant; one per database).
MIGRATION_LOCK = 0x61676E7468716D  # "agnthqm"


def run_env(database_url: str | None, target_metadata: Sequence[MetaData]) -> None:
    """The body of every service's ``migrations/env.py``."""
    config = context.config
    url = config.get_main_option("sqlalchemy.url") or database_url
    if not url:
        raise RuntimeError("no database URL for migrations")

    def do_run(connection: Connection) -> None:
        context.configure(
            connection=connection, target_metadata=list(target_metadata), compare_type=True
        )
        with context.begin_transaction():
            # Replicas that start together (init containers) migrate one at a
            # time: the second waits here, then finds the schema at head. The
            # lock ends with the migrations' transaction.
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
            )
            context.run_migrations()

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=list(target_metadata), literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    async def run_async() -> None:
        engine = async_engine_from_config(
            {"sqlalchemy.url": url}, prefix="sqlalchemy.", poolclass=pool.NullPool
        )
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
        await engine.dispose()

    asyncio.run(run_async())


def alembic_config(service: str, database_url: str) -> Config:
    """Alembic config for ``service``'s migrations, usable from any directory."""
    cfg = Config()
    cfg.set_main_option("script_location", f"agenthq_{service}:migrations")
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(service: str, database_url: str, revision: str = "head") -> None:
    """Migrate ``service``'s database (call from sync code: Alembic runs its own loop)."""
    command.upgrade(alembic_config(service, database_url), revision)


async def create_database_if_missing(database_url: str) -> bool:
    """Create the database a URL names on its server; True if it was created."""
    import asyncpg

    url = sa.engine.make_url(database_url)
    name = url.database
    if not name:
        raise ValueError(f"no database name in {url.render_as_string(hide_password=True)}")
    conn = await asyncpg.connect(_admin_dsn(url))
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        await conn.execute(f'CREATE DATABASE "{name}"')
        return True
    finally:
        await conn.close()


async def drop_database(database_url: str) -> None:
    import asyncpg

    url = sa.engine.make_url(database_url)
    conn = await asyncpg.connect(_admin_dsn(url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    finally:
        await conn.close()


def _admin_dsn(url: sa.engine.URL) -> str:
    return url.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
