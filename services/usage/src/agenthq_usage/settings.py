from typing import ClassVar

from pydantic import Field

from agenthq_common.settings import ServiceSettings


class UsageSettings(ServiceSettings):
    service_name: ClassVar[str] = "usage"
    database_url: str | None = Field(
        default=None,
        validation_alias="AGENTHQ_USAGE_DATABASE_URL",
        description="The usage service's database (default: <postgres_url>/agenthq_usage)",
    )
