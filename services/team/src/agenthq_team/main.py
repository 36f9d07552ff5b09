"""The team service: teams, members, invitations, roles."""

from __future__ import annotations

from fastapi import FastAPI

from agenthq_common.auth import KeySource
from agenthq_common.service import Service
from agenthq_team.access import TeamTablesResolver
from agenthq_team.consumers import register_user_handlers
from agenthq_team.internal_api import router as internal_router
from agenthq_team.invitations.api import router as invitations_router
from agenthq_team.members.api import router as members_router
from agenthq_team.permissions.api import router as permissions_router
from agenthq_team.roles.api import router as roles_router
from agenthq_team.settings import TeamSettings
from agenthq_team.teams.api import router as teams_router


def bootstrap(settings: TeamSettings, *, key_source: KeySource | None = None) -> Service:
    service = Service(
        settings,
        key_source=key_source,
        membership_resolver=TeamTablesResolver(),
        title="AgentHQ team service",
        description="Teams, members, invitations, roles and permissions.",
    )
    register_user_handlers(service.consumer("team.users"))
    for router in (
        teams_router,
        members_router,
        invitations_router,
        roles_router,
        permissions_router,
        internal_router,
    ):
        service.include_router(router)
    return service


def create_app() -> FastAPI:
    """Entry point for uvicorn (``--factory``): settings from the environment."""
    return bootstrap(TeamSettings()).create_app()
