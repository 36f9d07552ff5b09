"""The team service: teams, members, invitations, roles."""

from __future__ import annotations

from fastapi import FastAPI

from agenthq_common.auth import KeySource
from agenthq_common.service import Service
from agenthq_team.settings import TeamSettings
from agenthq_team.teams.api import router as teams_router


def bootstrap(settings: TeamSettings, *, key_source: KeySource | None = None) -> Service:
    service = Service(
        settings,
        key_source=key_source,
        title="AgentHQ team service",
        description="Teams, members, invitations, roles and permissions.",
    )
    service.include_router(teams_router)
    return service


def create_app() -> FastAPI:
    """Entry point for uvicorn (``--factory``): settings from the environment."""
    return bootstrap(TeamSettings()).create_app()
