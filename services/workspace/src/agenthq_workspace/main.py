"""The workspace service: Workspaces inside teams."""

from __future__ import annotations

from fastapi import FastAPI

from agenthq_common.auth import KeySource
from agenthq_common.membership import register_membership_handlers
from agenthq_common.service import Service
from agenthq_workspace.consumers import register_lifecycle_handlers
from agenthq_workspace.settings import WorkspaceSettings
from agenthq_workspace.workspaces.api import router as workspaces_router


def bootstrap(settings: WorkspaceSettings, *, key_source: KeySource | None = None) -> Service:
    service = Service(
        settings,
        key_source=key_source,
        title="AgentHQ workspace service",
        description="Workspaces inside teams.",
    )
    # One queue: a team's deletion marks the read model and deletes its
    # workspaces in one transaction, so no request sees one without the other.
    membership = service.consumer("workspace.membership")
    register_membership_handlers(membership)
    register_lifecycle_handlers(membership)
    service.include_router(workspaces_router)
    return service


def create_app() -> FastAPI:
    """Entry point for uvicorn (``--factory``): settings from the environment."""
    return bootstrap(WorkspaceSettings()).create_app()
