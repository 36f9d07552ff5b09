"""The gateway's merged OpenAPI document, built offline from the code.

The console's API types are generated from it (``make web-types``); the
gateway serves the same document at ``/openapi.json``, merged from the
running services (a test checks that both are the same).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from agenthq_devctl.services import SERVICES


def public_document() -> dict[str, Any]:
    from agenthq_gateway.docs import own_openapi
    from agenthq_gateway.main import create_app
    from agenthq_gateway.openapi import merge

    services = {}
    for service in SERVICES:
        if service == "gateway":
            continue
        app = importlib.import_module(f"agenthq_{service}.main").create_app()
        services[service] = app.openapi()
    return merge(own_openapi(create_app()), services)


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write_document(path: Path) -> Path:
    path.write_text(render(public_document()))
    return path
