from typing import ClassVar

from pydantic import Field

from agenthq_common.settings import ServiceSettings


class RealtimeSettings(ServiceSettings):
    service_name: ClassVar[str] = "realtime"
    database_url: str | None = Field(
        default=None,
        validation_alias="AGENTHQ_REALTIME_DATABASE_URL",
        description="The realtime service's database (default: <postgres_url>/agenthq_realtime)",
    )
