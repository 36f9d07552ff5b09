"""The six services, their settings classes and ports."""

from __future__ import annotations

import importlib

from agenthq_common.settings import DEFAULT_PORTS, ServiceSettings

SERVICES: tuple[str, ...] = ("gateway", "team", "workspace", "activity", "usage", "realtime")


def settings_class(service: str) -> type[ServiceSettings]:
    module = importlib.import_module(f"agenthq_{service}.settings")
    return getattr(module, f"{service.capitalize()}Settings")  # type: ignore[no-any-return]


def default_port(service: str) -> int:
    return DEFAULT_PORTS[service]


def default_ws_port() -> int:
    """The realtime service's WebSocket port (REALTIME.md)."""
    return int(settings_class("realtime").model_fields["ws_port"].default)
