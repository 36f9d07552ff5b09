"""What a service's OpenAPI document says each public route answers."""

from __future__ import annotations

from typing import Any

import httpx


async def documented_statuses(client: httpx.AsyncClient) -> dict[str, set[str]]:
    """``{"GET /v1/...": {"200", "401", ...}}`` for every public route of the
    service behind ``client``; asserts that every error it documents has the
    contract's body."""
    paths: dict[str, dict[str, Any]] = (await client.get("/openapi.json")).json()["paths"]
    documented = {
        f"{method.upper()} {path}": operation["responses"]
        for path, operations in paths.items()
        if path.startswith("/v1/")
        for method, operation in operations.items()
    }
    for label, responses in documented.items():
        for status, response in responses.items():
            if not status.startswith("2"):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (label, status)
    return {label: set(responses) for label, responses in documented.items()}
