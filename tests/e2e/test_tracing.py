"""One trace from a client's request through the gateway, the owning service,
its outbox relay and the bus to every consumer of the event (OpenTelemetry,
exported over OTLP to a collector the test runs)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from agenthq_common.testing.otlp import OtlpCollector, ReceivedSpan
from agenthq_common.testing.plugin import eventually
from agenthq_devctl.supervisor import Stack

from .people import create_team, sign_up

pytestmark = pytest.mark.e2e


def one(spans: list[ReceivedSpan], service: str, kind: str, name: str) -> ReceivedSpan:
    found = [s for s in spans if s.service == service and s.kind == kind and name in s.name]
    assert len(found) == 1, (service, kind, name, [(s.service, s.kind, s.name) for s in spans])
    return found[0]


async def test_one_trace_from_the_gateway_through_the_relay_to_every_consumer(
    stack: Stack, gateway: httpx.AsyncClient, otlp: OtlpCollector
) -> None:
    owner = await sign_up(gateway, "tracer")
    team_id = await create_team(gateway, owner, "Traced")
    trace_id, client_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    created = await gateway.post(
        f"/v1/teams/{team_id}/workspaces",
        json={"name": "Followed"},
        headers={**owner["headers"], "traceparent": f"00-{trace_id}-{client_span}-01"},
    )
    assert created.status_code == 201, created.text

    async def arrived() -> list[ReceivedSpan] | None:
        # Each process exports on its own schedule: wait for every hop.
        spans = otlp.trace(trace_id)
        hops = {(s.service, s.kind) for s in spans}
        expected = {
            ("agenthq-gateway", "SERVER"),
            ("agenthq-workspace", "SERVER"),
            ("agenthq-workspace", "PRODUCER"),
            ("agenthq-activity", "CONSUMER"),
            ("agenthq-realtime", "CONSUMER"),
        }
        return spans if expected <= hops else None

    try:
        spans = await eventually(arrived, within=15.0, interval=0.2)
    except AssertionError:
        seen = [(s.service, s.kind, s.name) for s in otlp.trace(trace_id)]
        raise AssertionError(f"hops of the trace so far: {seen}; {len(otlp.spans)} spans") from None

    edge = one(spans, "agenthq-gateway", "SERVER", "POST /v1/")  # its catch-all route
    assert edge.parent_span_id == client_span  # the gateway continued the client's trace
    owner_span = one(spans, "agenthq-workspace", "SERVER", "/v1/teams/{team_id}/workspaces")
    assert owner_span.parent_span_id == edge.span_id
    # The relay published the event in a span under the request that wrote it.
    published = one(spans, "agenthq-workspace", "PRODUCER", "publish workspace.created")
    assert published.parent_span_id == owner_span.span_id
    # Each consumer processed it under the relay's span, from the message headers.
    audit = one(spans, "agenthq-activity", "CONSUMER", "activity.audit")
    fanout = one(spans, "agenthq-realtime", "CONSUMER", "realtime.fanout")
    for consumed in (audit, fanout):
        assert consumed.parent_span_id == published.span_id
        assert consumed.attributes["messaging.rabbitmq.destination.routing_key"] == (
            "workspace.created"
        )
    assert audit.attributes["messaging.message.id"] == fanout.attributes["messaging.message.id"]
