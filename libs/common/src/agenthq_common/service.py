"""One service process: the parts every service has, wired in one place.

A service's ``bootstrap(settings)`` creates a ``Service``, adds its routers and
consumers, and asks it for the FastAPI app. Dependencies are passed in (tests
hand in their own settings, key source or consumers), never patched.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import redis.asyncio as aioredis
from fastapi import APIRouter, FastAPI
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from agenthq_common.auth import KeySource, RemoteJwks, TokenVerifier
from agenthq_common.authz import MembershipResolver
from agenthq_common.bus import Bus
from agenthq_common.db import Database
from agenthq_common.events import registry as default_registry
from agenthq_common.events.registry import EventRegistry
from agenthq_common.health import router as health_router
from agenthq_common.http import RequestContextMiddleware, install_error_handlers
from agenthq_common.inbox import EventConsumer
from agenthq_common.logging import configure_logging, get_logger
from agenthq_common.membership import ReadModelResolver
from agenthq_common.openapi import document_errors
from agenthq_common.outbox import OutboxRelay
from agenthq_common.settings import ServiceSettings
from agenthq_common.tracing import configure_tracing, flush_spans, instrument

log = get_logger(__name__)

Hook = Callable[[], Awaitable[Any]]
C = TypeVar("C")


class Service:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        title: str,
        description: str = "",
        key_source: KeySource | None = None,
        registry: EventRegistry = default_registry,
        configure_logs: bool = True,
        openapi_url: str | None = "/openapi.json",
        membership_resolver: MembershipResolver | None = None,
        database_settings: dict[str, str] | None = None,
    ) -> None:
        if settings.database_url is None:
            raise ValueError("settings.database_url is not set")
        self.settings = settings
        self.name = settings.service_name
        self.title = title
        self.description = description
        self.registry = registry
        self.openapi_url = openapi_url
        if configure_logs:
            configure_logging(self.name, settings.log_level, settings.log_json)
        configure_tracing(self.name, settings.otlp_endpoint)
        self.db = Database(
            settings.database_url,
            service=self.name,
            pool_size=settings.db_pool_size,
            server_settings=database_settings,
        )
        self.bus = Bus(
            settings.broker_url,
            namespace=settings.bus_namespace,
            prefetch=settings.consumer_prefetch,
            max_retries=settings.consumer_max_retries,
            retry_base_ms=settings.consumer_retry_base_ms,
            queue_type=settings.queue_type,
        )
        # A blocking pool: a burst (a thousand sockets connecting at once) waits
        # for a connection instead of failing with "Too many connections".
        self.redis: aioredis.Redis = aioredis.Redis.from_pool(  # closes the pool with it
            aioredis.BlockingConnectionPool.from_url(
                settings.redis_url,
                max_connections=settings.redis_max_connections,
                timeout=10,
                # After a Redis restart every pooled connection is dead and
                # fails its next command, minutes later if need be (the
                # failure drills saw a socket refused 50 s after Redis was
                # back). Retrying on a fresh connection hides that. A command
                # whose connection broke after it ran runs twice: a counter
                # counts one more, an idempotency claim answers "in progress",
                # which clients retry; rare, and better than failing them all.
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
                retry_on_error=[RedisConnectionError],
            )
        )
        self.key_source = key_source or RemoteJwks(settings.jwks_url)
        self.verifier = TokenVerifier(
            self.key_source,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            algorithm=settings.jwt_algorithm,
        )
        self.membership_resolver: MembershipResolver = membership_resolver or ReadModelResolver(
            settings.team_url
        )
        self.relay = OutboxRelay(
            self.db,
            self.bus,
            poll_interval=settings.outbox_poll_interval,
            lanes=settings.outbox_lanes,
        )
        self.consumers: list[EventConsumer] = []
        self.routers: list[APIRouter] = []
        self._on_startup: list[Hook] = []
        self._on_shutdown: list[Hook] = []
        self._background: list[Callable[[], Awaitable[None]]] = [self.relay.run]
        self._tasks: list[asyncio.Task[None]] = []
        self._components: dict[type[Any], Any] = {}
        self._middleware: list[tuple[type[Any], dict[str, Any]]] = []

    def consumer(
        self, queue: str, *, prefetch: int | None = None, max_batch: int = 100
    ) -> EventConsumer:
        """A durable queue of this service (e.g. ``activity.audit``)."""
        consumer = EventConsumer(
            queue, self.db, self.registry, prefetch=prefetch, max_batch=max_batch
        )
        self.consumers.append(consumer)
        return consumer

    def add_middleware(self, middleware: type[Any], **options: Any) -> None:
        """An ASGI middleware inside the request context (so its answers carry
        the request id and are logged); the first added is the outermost."""
        self._middleware.append((middleware, options))

    def provide(self, component: object) -> None:
        """Make ``component`` (one per type) available to this service's routes."""
        self._components[type(component)] = component

    def component(self, kind: type[C]) -> C:
        """The component of type ``kind`` that ``bootstrap`` provided."""
        return self._components[kind]  # type: ignore[no-any-return]

    def include_router(self, router: APIRouter) -> None:
        self.routers.append(router)

    def on_startup(self, hook: Hook) -> None:
        self._on_startup.append(hook)

    def on_shutdown(self, hook: Hook) -> None:
        self._on_shutdown.append(hook)

    def run_in_background(self, job: Callable[[], Awaitable[None]]) -> None:
        """A coroutine that runs for the life of the process (cancelled at shutdown)."""
        self._background.append(job)

    async def start(self) -> None:
        await self.bus.connect()
        for consumer in self.consumers:
            await consumer.start(self.bus)
        for hook in self._on_startup:
            await hook()
        self._tasks = [
            asyncio.create_task(job(), name=getattr(job, "__qualname__", "job"))
            for job in self._background
        ]
        # Everything allocated so far lives as long as the process: keep the
        # garbage collector from walking it again on every collection.
        gc.freeze()
        log.info("service started", consumers=[c.name for c in self.consumers])

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        # Shutdown must finish even when a task is stuck in a library that
        # does not honour cancellation: wait for them, but not for ever.
        if self._tasks:
            done, stuck = await asyncio.wait(self._tasks, timeout=10.0)
            for task in done:  # retrieved, so a failed job is not reported again at exit
                if not task.cancelled():
                    task.exception()
            if stuck:
                log.warning("tasks still running at shutdown", tasks=[t.get_name() for t in stuck])
        self._tasks = []
        closers: list[Hook] = [*reversed(self._on_shutdown), self.bus.close, self.redis.aclose]
        if isinstance(self.membership_resolver, ReadModelResolver):
            closers.append(self.membership_resolver.aclose)
        if isinstance(self.key_source, RemoteJwks):
            closers.append(self.key_source.aclose)
        closers.append(self.db.dispose)
        closers.append(self._flush_spans)
        for close in closers:
            # Shutdown must finish even when a dependency is gone or hangs.
            try:
                await asyncio.wait_for(close(), timeout=5.0)
            except Exception as exc:
                log.warning(
                    "shutdown step failed",
                    step=getattr(close, "__qualname__", "?"),
                    error=repr(exc),
                )
        log.info("service stopped")

    @staticmethod
    async def _flush_spans() -> None:
        await asyncio.to_thread(flush_spans)

    def readiness_checks(self) -> dict[str, Hook]:
        async def broker() -> None:
            if not self.bus.connected:
                raise ConnectionError("broker not connected")

        async def redis() -> None:
            await self.redis.ping()

        return {"database": self.db.ping, "broker": broker, "redis": redis}

    def create_app(self) -> FastAPI:
        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        app = FastAPI(
            title=self.title,
            description=self.description,
            version="0.1.0",
            lifespan=lifespan,
            openapi_url=self.openapi_url,
        )
        app.state.service = self
        app.state.readiness_checks = self.readiness_checks()
        for middleware, options in reversed(self._middleware):
            app.add_middleware(middleware, **options)
        app.add_middleware(RequestContextMiddleware)  # last added: outermost
        instrument(app)  # the trace span wraps even the request context
        install_error_handlers(app)
        app.include_router(health_router)
        for router in self.routers:
            document_errors(router)
            app.include_router(router)
        return app
