"""``/openapi.json`` (the merged document) and ``/docs`` (interactive docs)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)


def own_openapi(app: FastAPI) -> dict[str, Any]:
    """The gateway's own routes' document (before the services' are merged in)."""
    return get_openapi(
        title="AgentHQ collaboration API",
        version=app.version,
        description="The public API of every AgentHQ collaboration service, "
        "served through the gateway.",
        routes=app.routes,
    )


@router.get("/openapi.json")
async def openapi(request: Request) -> dict[str, Any]:
    return await request.app.state.gateway.openapi.document(own_openapi(request.app))


@router.get("/docs")
async def docs() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="AgentHQ API")
