from typing import ClassVar

from pydantic import Field

from agenthq_common.settings import ServiceSettings


class ActivitySettings(ServiceSettings):
    service_name: ClassVar[str] = "activity"
    database_url: str | None = Field(
        default=None,
        validation_alias="AGENTHQ_ACTIVITY_DATABASE_URL",
        description="The activity service's database (default: <postgres_url>/agenthq_activity)",
    )
