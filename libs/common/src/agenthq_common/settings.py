"""Settings shared by every service.

Every variable starts with ``AGENTHQ_``. Shared infrastructure (broker, Redis,
JWT) has one name for all services; what belongs to one service (its
database, its port) carries the service's name, e.g. ``AGENTHQ_TEAM_DATABASE_URL``,
so that one environment can configure all six processes without clashes.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PORTS: dict[str, int] = {
    "gateway": 8000,
    "team": 8001,
    "workspace": 8002,
    "activity": 8003,
    "usage": 8004,
    "realtime": 8006,  # its HTTP API; the WebSocket endpoint is on 8005
}


class ServiceSettings(BaseSettings):
    """What every service needs. Subclasses set ``service_name``."""

    model_config = SettingsConfigDict(env_prefix="AGENTHQ_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "common"

    # Where each service's own database lives when no per-service URL is given:
    # the database name is ``agenthq_<service>`` on this server.
    postgres_url: str = Field(
        default="postgresql+asyncpg://postgres@127.0.0.1:5432",
        description="PostgreSQL server used for every service database not configured on its own",
    )
    database_url: str | None = Field(
        default=None,
        description="This service's own database (default: <postgres_url>/agenthq_<service>)",
    )
    broker_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672/", description="RabbitMQ URL"
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis URL")
    db_pool_size: int = Field(
        default=10,
        ge=1,
        description="Database connections kept per process (as many more on bursts); "
        "replicas x services x this must fit PostgreSQL's max_connections",
    )
    redis_max_connections: int = Field(
        default=64,
        ge=1,
        description="Connections to Redis per process; beyond them, callers wait their turn",
    )
    bus_namespace: str = Field(
        default="",
        description="Prefix for every exchange and queue name (tests isolate runs with it)",
    )
    jwt_issuer: str = Field(
        default="agenthq-gateway", description="Expected `iss` of access tokens"
    )
    jwt_audience: str = Field(default="agenthq", description="Expected `aud` of access tokens")
    jwt_algorithm: str = Field(
        default="EdDSA", description="The only signature algorithm accepted for access tokens"
    )
    jwks_url: str = Field(
        default="http://127.0.0.1:8000/.well-known/jwks.json",
        description="Where the gateway publishes the public keys that verify access tokens",
    )
    team_url: str = Field(
        default=f"http://127.0.0.1:{DEFAULT_PORTS['team']}",
        description="Base URL of the team service (memberships not yet in the read model)",
    )
    log_level: str = Field(default="INFO", description="Log level")
    log_json: bool = Field(default=True, description="JSON log lines (false: human-readable)")
    outbox_poll_interval: float = Field(
        default=1.0, description="Seconds between outbox polls when no NOTIFY arrives"
    )
    outbox_lanes: int = Field(
        default=2,
        ge=1,
        description="Outbox relay passes in flight at once, each on a database connection "
        "of its own (plus one that listens for commits)",
    )
    consumer_prefetch: int = Field(default=64, description="Unacked messages per consumer")
    consumer_max_retries: int = Field(
        default=5, ge=1, description="Retries of a failing message before it is dead-lettered"
    )
    consumer_retry_base_ms: int = Field(
        default=200, description="First retry delay; each retry doubles it"
    )

    otlp_endpoint: str | None = Field(
        default=None,
        description="OpenTelemetry collector's OTLP/HTTP base URL (spans go to <url>/v1/traces); "
        "unset: spans are made (trace ids travel and are logged) but not exported",
    )

    queue_type: Literal["classic", "quorum"] = Field(
        default="classic",
        description="RabbitMQ queue type of the consumers' queues: quorum on a cluster "
        "(replicated), classic on a single broker. Changing it needs new queues (docs/deploy.md)",
    )

    @model_validator(mode="after")
    def _default_database(self) -> ServiceSettings:
        self.postgres_url = asyncpg_url(self.postgres_url)
        if self.database_url is None and self.service_name != "common":
            self.database_url = f"{self.postgres_url.rstrip('/')}/agenthq_{self.service_name}"
        elif self.database_url is not None:
            self.database_url = asyncpg_url(self.database_url)
        return self

    @property
    def port(self) -> int:
        return DEFAULT_PORTS.get(self.service_name, 8000)


def asyncpg_url(url: str) -> str:
    """A PostgreSQL URL for SQLAlchemy's asyncpg driver. Operators hand out plain
    ``postgresql://`` URIs (CloudNativePG's ``<cluster>-app`` secret, for one)."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+asyncpg://" + url[len(scheme) :]
    return url


def env_name(settings_cls: type[BaseSettings], field_name: str) -> str:
    """The environment variable one settings field is read from."""
    alias = settings_cls.model_fields[field_name].validation_alias
    if isinstance(alias, str):
        return alias.upper()
    return f"{settings_cls.model_config.get('env_prefix', '')}{field_name}".upper()


def env_names(settings_cls: type[BaseSettings]) -> set[str]:
    """Every environment variable a settings class reads (for docs and checks)."""
    return {env_name(settings_cls, name) for name in settings_cls.model_fields}
