"""Domain events: the CloudEvents envelope, the catalogue of event types and
the registry that validates them both ways."""

from agenthq_common.events.catalog import registry
from agenthq_common.events.envelope import Actor, CloudEvent
from agenthq_common.events.registry import EventRegistry, EventTypeInfo, UnknownDataVersion

__all__ = [
    "Actor",
    "CloudEvent",
    "EventRegistry",
    "EventTypeInfo",
    "UnknownDataVersion",
    "registry",
]
