"""Prometheus metrics shared by every service (each process exposes its own)."""

from prometheus_client import Counter, Histogram

HTTP_REQUESTS = Counter(
    "agenthq_http_requests_total", "HTTP requests served", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "agenthq_http_request_seconds", "HTTP request latency", ["method", "route"]
)
OUTBOX_PUBLISHED = Counter(
    "agenthq_outbox_published_total", "Outbox events confirmed by the broker"
)
OUTBOX_FAILED = Counter(
    "agenthq_outbox_publish_failures_total", "Outbox publish attempts that failed"
)
EVENTS_CONSUMED = Counter(
    "agenthq_events_consumed_total", "Events handled by a consumer", ["consumer", "outcome"]
)
