"""SQL of plans over time, quota breaches and finalized invoices."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg


class BillingRepository:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def record_plan(self, team_id: uuid.UUID, plan: str, effective_at: datetime) -> None:
        await self.conn.execute(
            "INSERT INTO team_plans (team_id, effective_at, plan) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING",
            team_id,
            effective_at,
            plan,
        )

    async def plan_history(self, team_id: uuid.UUID) -> list[tuple[datetime, str]]:
        rows = await self.conn.fetch(
            "SELECT effective_at, plan FROM team_plans WHERE team_id = $1 ORDER BY effective_at",
            team_id,
        )
        return [(r["effective_at"], r["plan"]) for r in rows]

    async def current_plans(self, team_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        """Each team's latest plan, in one query."""
        rows = await self.conn.fetch(
            "SELECT DISTINCT ON (team_id) team_id, plan FROM team_plans "
            "WHERE team_id = ANY($1::uuid[]) ORDER BY team_id, effective_at DESC",
            team_ids,
        )
        return {r["team_id"]: r["plan"] for r in rows}

    async def record_breach(
        self, team_id: uuid.UUID, metric: str, period: str, limit: int, used: int, at: datetime
    ) -> bool:
        """True the first time this limit is reached in this period."""
        inserted = await self.conn.fetchval(
            'INSERT INTO quota_breaches (team_id, metric, period, "limit", used, reached_at) '
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING true",
            team_id,
            metric,
            period,
            limit,
            used,
            at,
        )
        return bool(inserted)

    async def finalized(self, team_id: uuid.UUID, period: str | None = None) -> list[Any]:
        query = "SELECT * FROM invoices WHERE team_id = $1"
        args: list[Any] = [team_id]
        if period is not None:
            query += " AND period = $2"
            args.append(period)
        return await self.conn.fetch(query + " ORDER BY period DESC", *args)

    async def insert_invoice(
        self,
        team_id: uuid.UUID,
        period: str,
        currency: str,
        lines: list[dict[str, Any]],
        total: int,
        plans_version: int,
        at: datetime,
    ) -> bool:
        """Store a final invoice; False when the period was finalized before (never changed)."""
        inserted = await self.conn.fetchval(
            "INSERT INTO invoices (team_id, period, currency, lines, total, plans_version, "
            "finalized_at) VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7) "
            "ON CONFLICT DO NOTHING RETURNING true",
            team_id,
            period,
            currency,
            json.dumps(lines),
            total,
            plans_version,
            at,
        )
        return bool(inserted)

    async def teams_to_finalize(self, period_end: datetime, period: str) -> list[uuid.UUID]:
        """Teams that existed before the period ended and have no invoice for it."""
        rows = await self.conn.fetch(
            "SELECT DISTINCT p.team_id FROM team_plans p WHERE p.effective_at < $1 "
            "AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.team_id = p.team_id "
            "AND i.period = $2) ORDER BY 1",
            period_end,
            period,
        )
        return [r["team_id"] for r in rows]
