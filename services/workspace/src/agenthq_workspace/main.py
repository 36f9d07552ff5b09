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
    register_membership_handlers(service.consumer("workspace.membership"))
    register_lifecycle_handlers(service.consumer("workspace.lifecycle"))
    service.include_router(workspaces_router)
    return service


def create_app() -> FastAPI:
    """Entry point for uvicorn (``--factory``): settings from the environment."""
    return bootstrap(WorkspaceSettings()).create_app()
