from typing import ClassVar

from pydantic import Field

from agenthq_common.settings import ServiceSettings


class WorkspaceSettings(ServiceSettings):
    service_name: ClassVar[str] = "workspace"
    database_url: str | None = Field(
        default=None,
        validation_alias="AGENTHQ_WORKSPACE_DATABASE_URL",
        description="The workspace service's database (default: <postgres_url>/agenthq_workspace)",
    )
