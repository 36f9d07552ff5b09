from typing import ClassVar

from pydantic import Field, field_validator

from agenthq_common.settings import DEFAULT_PORTS, ServiceSettings
from agenthq_gateway.edge.ratelimit import parse_limits

DEFAULT_RATE_LIMITS = {
    "auth": {"ip": "60/minute"},
    "reads": {"user": "1200/minute", "team": "6000/minute"},
    "writes": {"user": "300/minute", "team": "1200/minute"},
}


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
    upstream_timeout_reads_seconds: float = Field(
        default=15.0, gt=0, description="How long a service may take to answer a read (504 after)"
    )
    upstream_timeout_writes_seconds: float = Field(
        default=30.0, gt=0, description="How long a service may take to answer a write (504 after)"
    )
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
        default=10,
        ge=1,
        description="Failed logins per account from one address in the window before 429 "
        "for that address",
    )
    login_failure_window_seconds: int = Field(default=900, ge=1, description="Login failure window")
    login_account_max_failures: int = Field(
        default=50,
        ge=1,
        description="Failed logins per account from all addresses in the account window before "
        "429 for everyone (a distributed brute force)",
    )
    login_account_window_seconds: int = Field(
        default=300, ge=1, description="Window of the per-account (all addresses) failure count"
    )
    rate_limits: dict[str, dict[str, str]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_RATE_LIMITS.items()},
        description="Rate limits per route class (auth, reads, writes) and scope (ip, user, "
        'team), in the limits library\'s notation (JSON, e.g. {"reads": {"user": '
        '"1200/minute"}}); {} turns them off',
    )
    idempotency_ttl_seconds: int = Field(
        default=24 * 3600, ge=60, description="How long an Idempotency-Key's answer is kept"
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Largest request body accepted (413 beyond)"
    )
    max_header_bytes: int = Field(
        default=32 * 1024, ge=4096, description="Largest total of request headers (431 beyond)"
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to call the API from a browser (JSON list; [] allows none "
        "but the gateway's own)",
    )
    console_cookie_secure: bool = Field(
        default=False,
        description="Mark the console's session cookie Secure on every answer (set it where TLS "
        "ends at a proxy); requests that arrive over https get it anyway",
    )
    realtime_public_url: str | None = Field(
        default=None,
        description="Where browsers reach the realtime sockets, told to the console "
        "(default: ws://<the host the console was loaded from>:8005)",
    )
    web_dist: str | None = Field(
        default="web/dist",
        description="The built web console, served at / (relative to the working directory; "
        "empty: no console)",
    )

    @field_validator("rate_limits")
    @classmethod
    def _readable_limits(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        parse_limits(value)
        return value
