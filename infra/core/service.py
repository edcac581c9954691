"""The skeleton of every long-running Kafka service (ingest worker, processor groups, aggregator, finalize
worker), written once: start with backoff, ready, consume in batches, a failure boundary per message, flush
sinks before commit, drain, stop.

Failure boundary: a dependency failure (retry.py) retries the batch; after any other exception the batch
is handled again in halves, and a message that fails alone goes to `reject` (dead-letter it, and in
services that own videos, fail its video) and is committed past: one bad message costs only itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Sequence
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from reelscope.infra.core.kafka import (
    DeadLetters,
    consume_batches,
    make_consumer,
    make_producer,
    send_all,
    start_with_backoff,
)
from reelscope.infra.core.retry import is_dependency_failure
from reelscope.infra.core.settings import Settings
from reelscope.infra.core.sink import BatchingSink
from reelscope.schemas.events import Event, SchemaError, VideoFailed, decode

log = logging.getLogger(__name__)

Held = dict[TopicPartition, int] | None
E = TypeVar("E", bound=Event)


def describe(exc: BaseException) -> str:
    """An exception as a failure reason: its type and message."""
    return f"{type(exc).__name__}: {exc}"


class KafkaService:
    """Subclasses name their consumer group and topics and implement `handle`; `run` does the rest."""

    component: str = "service"
    """Name in metrics, logs and dead letters."""
    max_records: int = 500
    max_wait_ms: int = 200

    def __init__(self, settings: Settings, group_id: str, topics: Sequence[str]) -> None:
        self.settings = settings
        self.group_id = group_id
        self.topics = list(topics)
        self.stop = asyncio.Event()
        self.ready = asyncio.Event()
        self.sinks: list[BatchingSink] = []
        self.background: list[asyncio.Task] = []

    # hooks ----------------------------------------------------------------------------------------------
    async def setup(self) -> None:
        """Before the clients start (load models, create tables); a failure here ends the service."""

    def configure(self, consumer: AIOKafkaConsumer) -> None:
        """Adjust the consumer before it starts (e.g. its partition assignment)."""

    async def started(self) -> None:
        """After the clients started, before ready; start background tasks into `self.background`."""

    async def handle(self, records: list[ConsumerRecord]) -> Held:
        """Handle a batch; return lower offsets to commit for partitions whose records are still held."""
        raise NotImplementedError

    async def reject(self, record: ConsumerRecord, exc: BaseException) -> None:
        """A message that failed alone: dead-letter it."""
        await self.dead_letters.publish(record, describe(exc))

    # shared helpers -------------------------------------------------------------------------------------
    async def decoded(self, record: ConsumerRecord, expect: type[E] | tuple[type[Event], ...]) -> E | None:
        """The record's event, or None once a record that is not one of `expect` is dead-lettered."""
        try:
            return decode(record.value or b"", expect=expect)  # type: ignore[return-value]
        except SchemaError as exc:
            await self.dead_letters.publish(record, str(exc))
            return None

    async def fail_video(self, video_id: str, reason: str, stage: str) -> VideoFailed:
        """Publish VideoFailed on the lifecycle topic: the aggregator finishes the video with this reason."""
        failed = VideoFailed(
            video_id=video_id[:128], reason=reason[:2000], stage=stage, failed_at=time.time()
        )
        await send_all(self.producer, [(self.settings.topics.lifecycle, failed)])
        return failed

    # the skeleton ---------------------------------------------------------------------------------------
    async def run(self) -> None:
        await self.setup()
        producer = make_producer(self.settings)
        consumer = make_consumer(self.settings, self.topics, self.group_id)
        self.configure(consumer)
        if not await start_with_backoff(producer, f"{self.component} producer", self.stop):
            return
        try:
            if not await start_with_backoff(consumer, f"{self.component} consumer", self.stop):
                return
            self.producer = producer
            self.dead_letters = DeadLetters(
                producer,
                self.settings.topics.dead_letter,
                self.component,
                self.settings.kafka.max_event_bytes,
            )
            try:
                await self.started()
                self.ready.set()
                await self.consume(consumer)
            finally:
                await self.drain()
                await consumer.stop()
        finally:
            await producer.stop()

    async def consume(self, consumer: AIOKafkaConsumer) -> None:
        """Fetch, handle and commit until stopped: in fetch order, one fetched batch at a time, unless a
        service schedules its own (stream_processors/runtime.py)."""
        await consume_batches(
            consumer, self.guarded, self.stop, self.max_records, self.max_wait_ms, self.component
        )

    async def drain(self) -> None:
        """Stop background tasks; what was not committed is redelivered to the next owner."""
        for task in self.background:
            task.cancel()
        for task in self.background:
            with contextlib.suppress(BaseException):
                await task
        self.background.clear()

    async def guarded(self, records: list[ConsumerRecord]) -> Held:
        """The failure boundary around `handle` and the sinks' flush (before consume_batches commits)."""
        try:
            return await self.attempt(records)
        except Exception as exc:
            if is_dependency_failure(exc) or self.stop.is_set():
                raise
            log.warning("%s: a batch of %d failed (%s)", self.component, len(records), describe(exc))
            await self.bisect(records, exc)
        return await self.attempt([])  # what is still held, after the last record

    async def bisect(self, records: list[ConsumerRecord], exc: BaseException) -> None:
        """`records` failed together with `exc`: handle them again in halves, in order, until the message
        at fault is alone, and `reject` it."""
        if len(records) == 1:
            record = records[0]
            where = f"{record.topic}[{record.partition}]@{record.offset}"
            log.warning("%s: %s failed: %s", self.component, where, describe(exc))
            await self.reject(record, exc)
            return
        half = len(records) // 2
        for part in (records[:half], records[half:]):
            try:
                await self.attempt(part)
            except Exception as again:
                if is_dependency_failure(again) or self.stop.is_set():
                    raise
                await self.bisect(part, again)

    async def attempt(self, records: list[ConsumerRecord]) -> Held:
        held = await self.handle(records)
        for sink in self.sinks:
            await sink.flush()
        return held


def install_signal_handlers(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT finish the batch in hand, commit, and exit."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
