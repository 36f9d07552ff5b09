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
    instance_id: str | None = Field(
        default=None,
        validation_alias="AGENTHQ_REALTIME_INSTANCE_ID",
        description="This instance's name in presence entries (default: random per process)",
    )
    ws_host: str = Field(
        default="127.0.0.1",
        validation_alias="AGENTHQ_REALTIME_WS_HOST",
        description="Address the WebSocket endpoint listens on (0.0.0.0 in a container)",
    )
    ws_port: int = Field(
        default=8005,
        ge=0,
        le=65535,
        validation_alias="AGENTHQ_REALTIME_WS_PORT",
        description="Port of the WebSocket endpoint (REALTIME.md); the HTTP API has its own",
    )
    send_buffer_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        validation_alias="AGENTHQ_REALTIME_SEND_BUFFER_BYTES",
        description="Bytes waiting to be sent to one socket before a slow client is closed "
        "with 1013 (beyond what the kernel's socket buffer holds)",
    )
    history_frames: int = Field(
        default=5000,
        ge=1000,
        validation_alias="AGENTHQ_REALTIME_HISTORY_FRAMES",
        description="Frames kept per team for resuming (approximately; at least 1000)",
    )
    history_ttl_seconds: int = Field(
        default=86_400,
        ge=600,
        validation_alias="AGENTHQ_REALTIME_HISTORY_TTL_SECONDS",
        description="A team's history is dropped this long after its last frame (a million "
        "quiet teams would otherwise keep theirs in Redis for ever); at least 10 minutes",
    )
    presence_ttl_seconds: float = Field(
        default=30.0,
        gt=0,
        validation_alias="AGENTHQ_REALTIME_PRESENCE_TTL_SECONDS",
        description="How long the presence of a silent (crashed) instance lasts",
    )
    auth_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        validation_alias="AGENTHQ_REALTIME_AUTH_TIMEOUT_SECONDS",
        description="How long a socket may take to send its auth frame",
    )
