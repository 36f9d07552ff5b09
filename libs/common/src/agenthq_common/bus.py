"""RabbitMQ: the topology of ``EVENTS.md``, confirmed publishing, and
consumers with bounded, backed-off retries and dead-lettering.

Topology, per consuming queue ``q``::

    agenthq.events (topic) --binding--> q --reject--> agenthq.dlx --q--> q.dlq
                                        ^
    q.retry.<delay>ms, one per attempt (TTL base * 2^k) --expire--> default exchange -> q

A failing message is re-published to the retry queue of its attempt and acked;
when the queue's TTL expires, RabbitMQ dead-letters it straight back into
``q`` (and only ``q``: re-publishing to the topic exchange would hand a second
copy to every other consumer). One retry queue per attempt keeps each queue's
messages on one TTL, so a long back-off never holds up a short one. After the
last retry the message is rejected into ``q.dlq``: never dropped, never
retried forever.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from opentelemetry.trace import StatusCode, use_span

from agenthq_common.events.envelope import CONTENT_TYPE, CloudEvent
from agenthq_common.logging import get_logger
from agenthq_common.outages import is_outage
from agenthq_common.tracing import (
    message_headers,
    start_consumer_span,
    start_producer_span,
)

log = get_logger(__name__)

RETRY_HEADER = "x-agenthq-retries"


class PermanentFailure(Exception):
    """Raised by a handler for a message that no retry can fix: dead-letter at once."""


@dataclass(frozen=True)
class Topology:
    namespace: str = ""

    @property
    def exchange(self) -> str:
        return f"{self.namespace}agenthq.events"

    @property
    def dlx(self) -> str:
        return f"{self.namespace}agenthq.dlx"

    def queue(self, name: str) -> str:
        return f"{self.namespace}{name}"


# What the outbox hands the bus: routing key, body, message id, the event's traceparent.
Outgoing = tuple[str, bytes, str, str | None]
MessageHandler = Callable[[AbstractIncomingMessage], Awaitable[None]]
BatchHandler = Callable[[list[AbstractIncomingMessage]], Awaitable[list[Exception | None]]]


class Bus:
    def __init__(
        self,
        url: str,
        *,
        namespace: str = "",
        prefetch: int = 64,
        max_retries: int = 5,
        retry_base_ms: int = 200,
        publish_timeout: float = 10.0,
        queue_type: str = "classic",
    ) -> None:
        if max_retries < 1:
            # Outages wait on the retry queues: there must be at least one.
            raise ValueError("max_retries must be at least 1")
        self.url = url
        # "quorum": replicated on a RabbitMQ cluster (its recommended type for
        # data safety); "classic" (the default) for a single local broker.
        self.queue_type = queue_type
        self.publish_timeout = publish_timeout
        self.topology = Topology(namespace)
        self.prefetch = prefetch
        self.max_retries = max_retries
        self.retry_base_ms = retry_base_ms
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._consumer_channels: list[AbstractChannel] = []
        self._workers: list[asyncio.Task[None]] = []

    async def connect(self) -> None:
        # connect_robust reconnects after a broker restart and re-declares the
        # channels, exchanges, queues, bindings and consumers it knew.
        name = f"agenthq {self.topology.namespace}".strip()
        self._connection = await aio_pika.connect_robust(
            self.url, client_properties={"connection_name": name}
        )
        self._publish_channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await self._declare_exchanges(self._publish_channel)

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up now. A robust connection is
        "closed" only once we close it: while it reconnects (the broker
        restarting) only its ``connected`` event tells that it is down."""
        connection = self._connection
        return connection is not None and not connection.is_closed and connection.connected.is_set()

    async def _declare_exchanges(self, channel: AbstractChannel) -> AbstractExchange:
        await channel.declare_exchange(
            self.topology.dlx, aio_pika.ExchangeType.DIRECT, durable=True
        )
        return await channel.declare_exchange(
            self.topology.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )

    async def publish(self, event: CloudEvent) -> None:
        await self.publish_raw(event.type, event.to_bytes(), str(event.id), event.traceparent)

    async def publish_raw(
        self, routing_key: str, body: bytes, message_id: str, traceparent: str | None = None
    ) -> None:
        """Publish and wait for the broker's confirm (raises if it nacks).

        In a producer span, a child of ``traceparent`` (the event's own trace
        context), whose context travels in the message's headers."""
        if self._exchange is None:
            raise RuntimeError("bus not connected")
        span = start_producer_span(routing_key, traceparent)
        message = aio_pika.Message(
            body,
            headers=message_headers(span, traceparent),
            message_id=message_id,
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            type=routing_key,
        )
        try:
            # Bounded: a confirm lost in a broker restart must fail (and be retried), not hang.
            await self._exchange.publish(
                message, routing_key=routing_key, mandatory=False, timeout=self.publish_timeout
            )
        except BaseException as exc:
            if span is not None:
                span.record_exception(exc)
                span.set_status(StatusCode.ERROR, repr(exc))
            raise
        finally:
            if span is not None:
                span.end()

    async def publish_many(self, events: Sequence[Outgoing]) -> list[BaseException | None]:
        """Publish concurrently; confirms pipeline instead of one round trip each."""
        results = await asyncio.gather(
            *(self.publish_raw(*event) for event in events), return_exceptions=True
        )
        return [r if isinstance(r, BaseException) else None for r in results]

    async def declare_consumer_queue(
        self, channel: AbstractChannel, name: str, bindings: Sequence[str]
    ) -> AbstractQueue:
        queue_name = self.topology.queue(name)
        exchange = await self._declare_exchanges(channel)
        dlq = await channel.declare_queue(
            f"{queue_name}.dlq", durable=True, arguments=self._queue_arguments()
        )
        await dlq.bind(self.topology.dlx, routing_key=queue_name)
        queue = await channel.declare_queue(
            queue_name,
            durable=True,
            arguments=self._queue_arguments(
                {
                    "x-dead-letter-exchange": self.topology.dlx,
                    "x-dead-letter-routing-key": queue_name,
                }
            ),
        )
        for pattern in bindings:
            await queue.bind(exchange, routing_key=pattern)
        for attempt in range(1, self.max_retries + 1):
            await channel.declare_queue(
                self._retry_queue(queue_name, attempt),
                durable=True,
                arguments=self._queue_arguments(
                    {
                        "x-message-ttl": self.retry_delay_ms(attempt),
                        "x-dead-letter-exchange": "",
                        "x-dead-letter-routing-key": queue_name,
                    }
                ),
            )
        return queue

    def _queue_arguments(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        # Classic queues are declared without x-queue-type, as they always
        # were: a broker compares arguments on every redeclaration.
        arguments = dict(extra or {})
        if self.queue_type != "classic":
            arguments["x-queue-type"] = self.queue_type
        return arguments

    def retry_delay_ms(self, attempt: int) -> int:
        return self.retry_base_ms * 2 ** (attempt - 1)

    def _retry_queue(self, queue_name: str, attempt: int) -> str:
        # Named by delay, not attempt number: a changed back-off setting then
        # declares new queues instead of clashing with the old ones' TTL (which
        # RabbitMQ refuses), and the old ones still drain into the queue.
        return f"{queue_name}.retry.{self.retry_delay_ms(attempt)}ms"

    async def consume(
        self,
        name: str,
        bindings: Sequence[str],
        handler: MessageHandler,
        *,
        prefetch: int | None = None,
    ) -> AbstractQueue:
        """Start consuming ``name`` one message at a time; returning normally acks."""

        async def one_by_one(messages: list[AbstractIncomingMessage]) -> list[Exception | None]:
            try:
                await handler(messages[0])
            except Exception as exc:
                return [exc]
            return [None]

        return await self.consume_batches(
            name, bindings, one_by_one, prefetch=prefetch, max_batch=1
        )

    async def consume_batches(
        self,
        name: str,
        bindings: Sequence[str],
        handler: BatchHandler,
        *,
        prefetch: int | None = None,
        max_batch: int = 100,
    ) -> AbstractQueue:
        """Start consuming ``name`` in batches of what has already arrived.

        ``handler`` gets up to ``max_batch`` messages and returns one outcome
        per message (None: done, acked; an exception: retried or
        dead-lettered). Batches form only from messages already delivered, so
        a quiet queue adds no waiting; a busy one shares one transaction
        among many messages.
        """
        if self._connection is None:
            raise RuntimeError("bus not connected")
        channel = await self._connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=prefetch or self.prefetch)
        self._consumer_channels.append(channel)
        queue = await self.declare_consumer_queue(channel, name, bindings)
        inbound: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

        async def work() -> None:
            while True:
                batch = [await inbound.get()]
                while len(batch) < max_batch and not inbound.empty():
                    batch.append(inbound.get_nowait())
                spans = [
                    start_consumer_span(queue.name, m.routing_key, m.message_id, m.headers)
                    for m in batch
                ]
                try:
                    # One message: its span is current, so what the handler
                    # does (and logs) belongs to the message's trace.
                    current = spans[0] if len(batch) == 1 else None
                    with (
                        contextlib.nullcontext()
                        if current is None
                        else use_span(current, end_on_exit=False)
                    ):
                        outcomes = await handler(batch)
                except Exception as exc:  # the handler itself broke: treat all as failed
                    outcomes = [exc] * len(batch)
                for span, outcome in zip(spans, outcomes, strict=True):
                    if span is None:
                        continue
                    if outcome is not None:
                        span.set_status(StatusCode.ERROR, repr(outcome))
                    span.end()
                if all(outcome is None for outcome in outcomes):
                    # One frame acks the whole batch: deliveries on a channel are
                    # acked in order, and this worker alone settles this channel's.
                    await self._settle(channel, queue.name, batch[-1], None, multiple=True)
                    continue
                for message, outcome in zip(batch, outcomes, strict=True):
                    await self._settle(channel, queue.name, message, outcome)

        self._workers.append(asyncio.create_task(work(), name=f"consume:{queue.name}"))
        await queue.consume(inbound.put)
        return queue

    async def _settle(
        self,
        channel: AbstractChannel,
        queue_name: str,
        message: AbstractIncomingMessage,
        outcome: Exception | None,
        *,
        multiple: bool = False,
    ) -> None:
        try:
            if outcome is None:
                await message.ack(multiple=multiple)
            elif isinstance(outcome, PermanentFailure):
                log.error(
                    "message dead-lettered",
                    queue=queue_name,
                    reason=str(outcome),
                    message_id=message.message_id,
                )
                await message.reject(requeue=False)
            else:  # any other failure may be transient: retry
                await self._retry_or_dead_letter(channel, queue_name, message, outcome)
        except Exception as exc:
            # The channel went away (broker restart): the broker redelivers
            # what we could not settle, and the inbox makes that harmless.
            log.warning(
                "could not settle message",
                queue=queue_name,
                error=repr(exc),
                message_id=message.message_id,
            )

    async def _retry_or_dead_letter(
        self,
        channel: AbstractChannel,
        queue_name: str,
        message: AbstractIncomingMessage,
        exc: Exception,
    ) -> None:
        retries = int((message.headers or {}).get(RETRY_HEADER, 0) or 0)
        if is_outage(exc):
            # A dependency is down: nothing is wrong with the message. Retry it
            # (at the longest back-off once the others are spent) until the
            # dependency is back, without spending the retries of bad messages.
            retries = min(retries, self.max_retries - 1)
        elif retries >= self.max_retries:
            log.error(
                "message dead-lettered after retries",
                queue=queue_name,
                retries=retries,
                error=repr(exc),
                message_id=message.message_id,
            )
            await message.reject(requeue=False)
            return
        attempt = retries + 1
        log.warning(
            "message failed, retrying",
            queue=queue_name,
            attempt=attempt,
            delay_ms=self.retry_delay_ms(attempt),
            error=repr(exc),
            message_id=message.message_id,
            exc_info=exc,
        )
        retry = aio_pika.Message(
            message.body,
            headers={**(message.headers or {}), RETRY_HEADER: attempt},
            message_id=message.message_id,
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            type=message.type,
        )
        try:
            await channel.default_exchange.publish(
                retry,
                routing_key=self._retry_queue(queue_name, attempt),
                timeout=self.publish_timeout,
            )
        except Exception:
            # Could not park it for later: hand it back to the queue rather than lose it.
            await message.nack(requeue=True)
            return
        await message.ack()

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers = []
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
            self._exchange = None
