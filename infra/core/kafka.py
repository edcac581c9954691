"""Kafka plumbing written once: clients, start-up with backoff, dead letters and the commit-after-ack loop.

Every consumer in reelscope (the ingest worker, each processor group, the aggregator) runs `consume_batches`:
fetch a batch, hand it to the handler, and commit the batch's offsets only after the handler returned, which
means its outputs were acknowledged by the broker or written to ClickHouse (at-least-once delivery).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from reelscope.infra.core.metrics import BATCH_SECONDS, BATCH_SIZE, DEAD_LETTERS, EVENTS_IN
from reelscope.infra.core.retry import retry_with_backoff
from reelscope.infra.core.settings import Settings
from reelscope.schemas.events import DeadLetter, Event, encode

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[ConsumerRecord]], Awaitable[dict[TopicPartition, int] | None]]
"""Handles a batch; may return lower offsets to commit for partitions whose records it still holds."""


def make_producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **settings.kafka.client_kwargs(),
        acks="all",
        linger_ms=5,
        max_request_size=settings.kafka.max_event_bytes + 65_536,
        compression_type=settings.kafka.compression,
    )


def make_consumer(settings: Settings, topics: Sequence[str], group_id: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        **settings.kafka.client_kwargs(),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.kafka.session_timeout_ms,
        heartbeat_interval_ms=settings.kafka.heartbeat_interval_ms,
        max_poll_interval_ms=600_000,
        max_partition_fetch_bytes=max(settings.kafka.max_event_bytes * 2, 1_048_576),
        fetch_max_bytes=64 * 1_048_576,
    )


async def start_with_backoff(
    client: AIOKafkaProducer | AIOKafkaConsumer, what: str, stop: asyncio.Event
) -> bool:
    """Start a client, retrying with exponential backoff while the broker is unreachable.

    Returns False if `stop` was set before the broker answered.
    """

    def unreachable(exc: BaseException) -> bool:
        return isinstance(exc, (KafkaError, OSError))

    try:
        await retry_with_backoff(client.start, f"{what}: broker unreachable;", stop, unreachable)
    except (KafkaError, OSError):
        if stop.is_set():
            return False
        raise
    return True


CONTENT_TYPE = "application/msgpack"
Headers = list[tuple[str, bytes]]


def event_headers(event: Event) -> Headers:
    """The Kafka headers of every event: a consumer can route or skip a message by kind and version
    without decoding it (docs/schemas/README.md)."""
    return [
        ("content-type", CONTENT_TYPE.encode()),
        ("event-kind", event.KIND.encode()),
        ("schema-version", str(event.VERSION).encode()),
        ("video-id", event.video_id.encode()),
    ]


def tombstone_headers(kind: str, video_id: str) -> Headers:
    """Headers of a tombstone (a null value, Kafka's delete marker): no content type; the kind of event it
    deletes."""
    return [("event-kind", kind.encode()), ("video-id", video_id.encode())]


async def send_event(producer: AIOKafkaProducer, topic: str, event: Event) -> asyncio.Future:
    """Queue one event keyed by its video id, with its headers; the future resolves on the broker's ack.

    The one path by which reelscope publishes an event."""
    return await producer.send(
        topic, encode(event), key=event.video_id.encode(), headers=event_headers(event)
    )


async def send_tombstone(producer: AIOKafkaProducer, topic: str, kind: str, video_id: str) -> None:
    """Publish a tombstone for a video on a compacted topic and wait for the ack."""
    await producer.send_and_wait(
        topic, None, key=video_id.encode(), headers=tombstone_headers(kind, video_id)
    )


async def send_all(producer: AIOKafkaProducer, sends: list[tuple[str, Event]]) -> None:
    """Send events keyed by video id and wait until the broker acknowledged every one."""
    futures = [await send_event(producer, topic, event) for topic, event in sends]
    if futures:
        await asyncio.gather(*futures)


DEAD_LETTER_ROOM = 16_384
"""Bytes of a dead letter's message left for its fields other than the original."""


class DeadLetters:
    """Publishes events nobody can process to the dead-letter topic, with the reason.

    The original is embedded up to what fits in one message (`max_event_bytes`), with its size and sha256,
    so a dead letter is never itself too large to publish."""

    def __init__(
        self, producer: AIOKafkaProducer, topic: str, consumer: str, max_event_bytes: int = 900_000
    ) -> None:
        self.producer, self.topic, self.consumer = producer, topic, consumer
        self.max_original = max(1024, max_event_bytes - DEAD_LETTER_ROOM)

    def letter(self, record: ConsumerRecord, error: str, video_id: str | None = None) -> DeadLetter:
        key = record.key.decode("utf-8", "replace") if record.key else None
        original = record.value or b""
        return DeadLetter(
            video_id=(video_id or key or "unknown")[:128],
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            original=original[: self.max_original],
            original_size=len(original),
            original_sha256=hashlib.sha256(original).hexdigest(),
            truncated=len(original) > self.max_original,
            error=error[:2000],
            consumer=self.consumer,
            failed_at=time.time(),
        )

    async def publish(self, record: ConsumerRecord, error: str, video_id: str | None = None) -> None:
        log.warning("dead-letter %s[%d]@%d: %s", record.topic, record.partition, record.offset, error[:500])
        DEAD_LETTERS.labels(self.consumer).inc()
        await send_all(self.producer, [(self.topic, self.letter(record, error, video_id))])


HELD_RECHECK_S = 1.0
"""How often an idle consumer whose handler holds records asks it again (see consume_batches)."""


async def consume_batches(
    consumer: AIOKafkaConsumer,
    handler: BatchHandler,
    stop: asyncio.Event,
    max_records: int,
    max_wait_ms: int,
    component: str = "consumer",
) -> None:
    """Fetch, handle, commit; until stop is set.

    A dependency failure inside the handler (results not acknowledged, ClickHouse down: see retry.py)
    retries the same batch with backoff: the outputs are idempotent, so a retry duplicates nothing. Any
    other handler exception stops the loop without committing (services catch those per message first,
    see service.py), so the batch is redelivered to whichever process takes over the partitions.

    A partition the handler held back is committed again once released, even by a batch without records
    of it: the describe group releases a video's frames when its shots event arrives on another topic, and
    committing only the batch's partitions left the frames' commit behind (an idle lag that never cleared).
    While it holds some and no records come, it is called with none every HELD_RECHECK_S, so what it lets
    go with time (a stream idle past the completion timeout) is committed without waiting for traffic."""
    behind: set[TopicPartition] = set()
    """Partitions committed below what was consumed of them: the handler still held, or holds, records."""
    handled_at = time.monotonic()
    while not stop.is_set():
        try:
            batches = await consumer.getmany(timeout_ms=max_wait_ms, max_records=max_records)
        except KafkaError as exc:
            log.warning("fetch failed (%s); retrying", exc)
            await asyncio.sleep(0.5)
            continue
        records = [r for part in batches.values() for r in part]
        if records:
            EVENTS_IN.labels(component).inc(len(records))
            BATCH_SIZE.labels(component).observe(len(records))
        elif not behind or time.monotonic() - handled_at < HELD_RECHECK_S:
            continue
        started = time.monotonic()
        held = await retry_with_backoff(
            partial(handler, records), f"{component}: handling a batch", stop, initial_s=0.5
        )
        handled_at = time.monotonic()
        if records:
            BATCH_SECONDS.labels(component).observe(handled_at - started)
        offsets = {
            TopicPartition(tp.topic, tp.partition): part[-1].offset + 1 for tp, part in batches.items()
        }
        for tp in (behind & consumer.assignment()) - offsets.keys():
            offsets[tp] = await consumer.position(tp)  # reset to the committed offset if it was reassigned
        consumed = dict(offsets)
        for tp, offset in (held or {}).items():
            if tp in offsets:
                offsets[tp] = min(offsets[tp], offset)
        behind = {tp for tp, offset in offsets.items() if offset < consumed[tp]}
        await commit_with_retry(consumer, offsets, stop)


async def commit_with_retry(
    consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int], stop: asyncio.Event
) -> None:
    async def commit() -> None:
        try:
            await consumer.commit(offsets)
        except CommitFailedError as exc:
            # The group rebalanced: another member owns these partitions now and will redeliver; writes
            # are idempotent, so nothing is lost or duplicated.
            log.warning("offsets not committed after a rebalance (%s)", exc)

    await retry_with_backoff(commit, "offset commit", stop, max_s=5.0)
