from typing import ClassVar

from pydantic import Field, field_validator

from agenthq_common.settings import ServiceSettings


class ActivitySettings(ServiceSettings):
    service_name: ClassVar[str] = "activity"
    database_url: str | None = Field(
        default=None,
        validation_alias="AGENTHQ_ACTIVITY_DATABASE_URL",
        description="The activity service's database (default: <postgres_url>/agenthq_activity)",
    )
    retention_days: dict[str, int] = Field(
        default={"free": 30, "pro": 365, "enterprise": 730},
        validation_alias="AGENTHQ_ACTIVITY_RETENTION_DAYS",
        description="Days of activity kept per team plan (JSON object, e.g. "
        '{"free": 30, "pro": 365, "enterprise": 2555})',
    )
    retention_default_days: int = Field(
        default=365,
        ge=1,
        validation_alias="AGENTHQ_ACTIVITY_RETENTION_DEFAULT_DAYS",
        description="Days kept for teams of a plan not in retention_days, and for events "
        "without a team",
    )
    retention_interval: float = Field(
        default=3600.0,
        gt=0,
        validation_alias="AGENTHQ_ACTIVITY_RETENTION_INTERVAL",
        description="Seconds between runs of the retention and partition-maintenance job",
    )
    audit_prefetch: int = Field(
        default=512,
        ge=1,
        validation_alias="AGENTHQ_ACTIVITY_AUDIT_PREFETCH",
        description="Unacked events the activity.audit consumer holds (bigger batches)",
    )
    audit_max_batch: int = Field(
        default=256,
        ge=1,
        validation_alias="AGENTHQ_ACTIVITY_AUDIT_MAX_BATCH",
        description="Most events appended to the log in one transaction",
    )

    @field_validator("retention_days")
    @classmethod
    def _positive(cls, value: dict[str, int]) -> dict[str, int]:
        for plan, days in value.items():
            if days < 1:
                raise ValueError(f"retention of plan {plan!r} must be at least 1 day")
        return value
