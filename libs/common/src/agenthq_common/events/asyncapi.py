"""An AsyncAPI 3.0 document of the event contract, generated from the registry."""

from __future__ import annotations

from typing import Any

from agenthq_common.events.envelope import CONTENT_TYPE, CloudEvent
from agenthq_common.events.registry import EventRegistry

EXCHANGE = "agenthq.events"


def _envelope_schema() -> dict[str, Any]:
    schema = CloudEvent.model_json_schema()
    schema.pop("title", None)
    return schema


def build_asyncapi(registry: EventRegistry, *, version: str = "1.0.0") -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {"CloudEvent": _envelope_schema()}
    for info in registry.types():
        key = f"{info.type.replace('.', '_')}_v{info.version}"
        data_schema = info.data_model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in data_schema.pop("$defs", {}).items():
            schemas.setdefault(name, sub)
        schemas[f"{key}_data"] = data_schema
        messages[key] = {
            "name": info.type,
            "title": info.type,
            "summary": info.summary,
            "contentType": CONTENT_TYPE,
            "x-producer": info.producer,
            "x-dataversion": info.version,
            "payload": {
                "allOf": [
                    {"$ref": "#/components/schemas/CloudEvent"},
                    {
                        "type": "object",
                        "properties": {
                            "type": {"const": info.type},
                            "dataversion": {"const": info.version},
                            "data": {"$ref": f"#/components/schemas/{key}_data"},
                        },
                    },
                ]
            },
        }
        channels[key] = {
            "address": info.type,
            "description": f"Routing key `{info.type}` on the topic exchange `{EXCHANGE}`.",
            "messages": {key: {"$ref": f"#/components/messages/{key}"}},
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": {"name": EXCHANGE, "type": "topic", "durable": True},
                }
            },
        }
        operations[f"publish_{key}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{key}"},
            "summary": f"Published by {info.producer}",
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "AgentHQ collaboration domain events",
            "version": version,
            "description": "CloudEvents 1.0 (structured JSON) on RabbitMQ; see EVENTS.md.",
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "local": {"host": "127.0.0.1:5672", "protocol": "amqp", "protocolVersion": "0.9.1"}
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
