from typing import ClassVar

from pydantic import Field

from agenthq_common.settings import ServiceSettings


class TeamSettings(ServiceSettings):
    service_name: ClassVar[str] = "team"
    database_url: str | None = Field(
        default=None,
        validation_alias="AGENTHQ_TEAM_DATABASE_URL",
        description="The team service's database (default: <postgres_url>/agenthq_team)",
    )
    invitation_ttl_seconds: int = Field(
        default=7 * 24 * 3600, ge=60, description="How long an invitation stays valid"
    )
