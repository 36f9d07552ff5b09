from typing import ClassVar

from pydantic import Field

from agenthq_common.settings import DEFAULT_PORTS, ServiceSettings


def _local(service: str) -> str:
    return f"http://127.0.0.1:{DEFAULT_PORTS[service]}"


class GatewaySettings(ServiceSettings):
    service_name: ClassVar[str] = "gateway"
    database_url: str | None = Field(
        default=None,
        validation_alias="AGENTHQ_GATEWAY_DATABASE_URL",
        description="The gateway's database: users, refresh tokens, signing keys",
    )
    workspace_url: str = Field(
        default=_local("workspace"), description="Base URL of the workspace service"
    )
    activity_url: str = Field(
        default=_local("activity"), description="Base URL of the activity service"
    )
    usage_url: str = Field(default=_local("usage"), description="Base URL of the usage service")
    realtime_url: str = Field(
        default=_local("realtime"), description="Base URL of the realtime service"
    )
    access_token_ttl_seconds: int = Field(default=900, ge=60, description="Access token lifetime")
    refresh_token_ttl_seconds: int = Field(
        default=30 * 24 * 3600, ge=300, description="Refresh token lifetime"
    )
    upstream_timeout_seconds: float = Field(default=30.0, gt=0, description="Upstream read timeout")
    upstream_connect_timeout_seconds: float = Field(
        default=2.0, gt=0, description="Upstream connect timeout"
    )
    api_calls_flush_interval: float = Field(
        default=5.0,
        gt=0,
        le=10,
        description="Seconds between flushes of API call counts to the usage service "
        "(each 10-second window is flushed within this long after it closes)",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="CIDRs of load balancers whose X-Forwarded-For is believed (JSON list)",
    )
    login_max_failures: int = Field(
        default=10, ge=1, description="Failed logins per account in the window before 429"
    )
    login_failure_window_seconds: int = Field(default=900, ge=1, description="Login failure window")
