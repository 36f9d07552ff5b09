"""The web console, served by the gateway at ``/``, same-origin with the API.

The console is a single-page app built into ``AGENTHQ_WEB_DIST`` (``make
web``). Its hashed assets never change under a name, so browsers keep them a
year; ``index.html`` names the current ones, so it is checked on every load.
Any other path that is not the API's is a route of the app, answered with
``index.html`` (the app's router takes it from there).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from agenthq_common.errors import NotFound
from agenthq_common.logging import get_logger

log = get_logger(__name__)

ASSETS_CACHE = "public, max-age=31536000, immutable"
INDEX_CACHE = "no-cache"
# The console's own code only; the realtime sockets are on another port, so
# WebSocket origins are allowed by scheme. Styles set through the DOM (React's
# style props) are not inline styles as far as CSP goes.
CONSOLE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self' ws: wss:; object-src 'none'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# Paths that belong to the API or the gateway itself: never the app's routes.
_NOT_THE_APP = ("v1/", ".well-known/", "openapi.json", "docs", "healthz", "readyz", "metrics")


class ConsoleFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        if path.startswith(_NOT_THE_APP):
            raise HTTPException(404)
        try:
            response = await super().get_response(path, scope)
        except HTTPException as exc:
            if exc.status_code != 404 or path.startswith("assets/"):
                raise  # a missing asset is a 404, not the app's page
            response = await super().get_response("index.html", scope)
            path = "index.html"
        cache = ASSETS_CACHE if path.startswith("assets/") else INDEX_CACHE
        response.headers["Cache-Control"] = cache
        response.headers["Content-Security-Policy"] = CONSOLE_POLICY
        return response


def mount_console(app: FastAPI, dist: str | None, realtime_url: str | None = None) -> bool:
    """Serve the built console at ``/`` (after every other route); False when
    it is not built, and ``/`` says how to build it."""

    @app.get("/console-config.json", include_in_schema=False)
    async def console_config(request: Request) -> dict[str, str]:
        """What the console cannot know by itself: where the realtime sockets
        are (REALTIME.md: port 8005 of the same host, unless configured)."""
        scheme = "wss" if request.url.scheme == "https" else "ws"
        return {"realtime_url": realtime_url or f"{scheme}://{request.url.hostname}:8005"}

    index = Path(dist or "").joinpath("index.html")
    if not dist or not index.is_file():
        log.info("web console not built; serving the API only", dist=dist)

        @app.get("/", include_in_schema=False)
        async def console_missing() -> Response:
            raise NotFound(
                "The web console is not built: run `make web` (Node.js 20.19 or later)",
                code="console_not_built",
            )

        return False
    app.mount("/", ConsoleFiles(directory=dist, html=True), name="console")
    return True
