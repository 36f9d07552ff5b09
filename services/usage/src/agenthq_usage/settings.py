from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr

from agenthq_common.settings import ServiceSettings


class UsageSettings(ServiceSettings):
    service_name: ClassVar[str] = "usage"
    database_url: str | None = Field(
        default=None,
        validation_alias="AGENTHQ_USAGE_DATABASE_URL",
        description="The usage service's database (default: <postgres_url>/agenthq_usage)",
    )
    ingest_credentials: list[SecretStr] = Field(
        default=[],
        validation_alias="AGENTHQ_USAGE_INGEST_CREDENTIALS",
        description="Service credentials accepted by POST /v1/usage/events (JSON list of "
        "strings; empty: HTTP ingest refuses everyone)",
    )
    plans_file: Path | None = Field(
        default=None,
        validation_alias="AGENTHQ_USAGE_PLANS_FILE",
        description="The plans catalogue (TOML; default: the one shipped with the service)",
    )
    invoice_interval: float = Field(
        default=3600.0,
        gt=0,
        validation_alias="AGENTHQ_USAGE_INVOICE_INTERVAL",
        description="Seconds between runs of the job that finalizes closed months' invoices",
    )
