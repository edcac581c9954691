"""Publish videos: `publish_video` decodes one video and sends its events; `IngestWorker` consumes the
ingest topic and publishes each requested video. Sending is bounded (at most `max_in_flight` unacknowledged
events), so a slow broker or slow processors slow the producer down instead of being flooded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

from aiokafka import AIOKafkaProducer, ConsumerRecord
from reelscope.analyzers.registry import enabled_analyzers
from reelscope.infra.core.ingest import UriRejected, resolve_uri
from reelscope.infra.core.kafka import send_all, send_event
from reelscope.infra.core.metrics import VIDEOS_PUBLISHED
from reelscope.infra.core.service import KafkaService, describe
from reelscope.infra.core.settings import Settings
from reelscope.infra.core.topics import PRODUCER_GROUP, read_by
from reelscope.producers.backpressure import LagWatcher
from reelscope.producers.events import VideoEventSource
from reelscope.schemas.events import (
    AudioChunk,
    Event,
    Frame,
    IngestRequest,
    VideoFailed,
)
from reelscope.schemas.records import VideoStatus

log = logging.getLogger(__name__)

_BATCH = 32


def topic_for(event: Event, settings: Settings) -> str:
    if isinstance(event, Frame):
        return settings.topics.frames
    if isinstance(event, AudioChunk):
        return settings.topics.audio
    return settings.topics.lifecycle


async def publish_events(
    producer: AIOKafkaProducer, settings: Settings, events: Iterator[Event], lag: LagWatcher | None = None
) -> Event:
    """Send events as the decoder yields them, never more than max_in_flight unacknowledged, and (with a
    LagWatcher) never more than max_lag_events ahead of the slowest stateless processor group.

    Decoding runs in a worker thread, a batch at a time, so the event loop keeps heartbeating.
    Returns the last event (finished or failed)."""
    in_flight: list[asyncio.Future] = []
    last: Event | None = None
    # the lag is checked before the first event and every few batches, so many short videos are throttled
    # as well as one long one
    check_every = min(settings.producer.max_in_flight, 4 * _BATCH)
    if lag is not None:
        await lag.wait_below(settings.producer.max_lag_events)

    def next_batch() -> list[Event]:
        return [e for _, e in zip(range(_BATCH), events, strict=False)]

    while batch := await asyncio.to_thread(next_batch):
        for event in batch:
            in_flight.append(await send_event(producer, topic_for(event, settings), event))
            last = event
        if len(in_flight) >= check_every:
            await _acknowledged(in_flight, lag)
            if lag is not None:
                await lag.wait_below(settings.producer.max_lag_events)
    await _acknowledged(in_flight, lag)
    assert last is not None
    return last


async def _acknowledged(in_flight: list[asyncio.Future], lag: LagWatcher | None) -> None:
    for metadata in await asyncio.gather(*in_flight):
        if lag is not None:
            lag.record(metadata)
    in_flight.clear()


async def publish_video(
    producer: AIOKafkaProducer, settings: Settings, request: IngestRequest, lag: LagWatcher | None = None
) -> Event:
    """Decode the requested video once and publish all its events; failures become a failed event."""
    try:
        path = resolve_uri(request.uri, settings)
    except UriRejected as exc:
        failed = VideoFailed(
            video_id=request.video_id, reason=str(exc), stage="ingest", failed_at=time.time()
        )
        await send_all(producer, [(settings.topics.lifecycle, failed)])
        return failed
    source = VideoEventSource(
        video_id=request.video_id,
        path=path,
        uri=request.uri,
        analyzers=enabled_analyzers(settings.analyzers, settings),
        settings=settings.producer,
        max_event_bytes=settings.kafka.max_event_bytes,
        metadata=request.metadata,
        options=request.options,
        submitted_at=request.submitted_at,
        hotwords=[str(w) for w in request.options.get("hotwords", [])][:100],
    )
    return await publish_events(producer, settings, source.events(), lag)


class IngestWorker(KafkaService):
    """Consumes ingest requests and publishes each video's events; one video at a time per worker.

    A request that fails for any reason but the broker (a URI the OS refuses, options of the wrong type)
    fails its video with the reason; the worker goes on with the next request."""

    component = "producer"
    max_records = 1
    max_wait_ms = 500

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, PRODUCER_GROUP, read_by(settings, PRODUCER_GROUP))

    async def started(self) -> None:
        self.lag = LagWatcher(self.settings)
        self.background.append(asyncio.create_task(self.lag.refresh(self.stop)))

    async def drain(self) -> None:
        await super().drain()
        if hasattr(self, "lag"):
            await self.lag.close()

    async def handle(self, records: list[ConsumerRecord]) -> None:
        for record in records:
            request = await self.decoded(record, IngestRequest)
            if request is None:
                continue
            t0 = time.monotonic()
            last = await publish_video(self.producer, self.settings, request, self.lag)
            status = VideoStatus.FAILED if isinstance(last, VideoFailed) else VideoStatus.PUBLISHED
            VIDEOS_PUBLISHED.labels(status).inc()
            log.info("published %s (%s) in %.2f s", request.video_id, last.KIND, time.monotonic() - t0)

    async def reject(self, record: ConsumerRecord, exc: BaseException) -> None:
        """Fail the requested video (its id is the message key) and dead-letter the request."""
        await super().reject(record, exc)
        if record.key:
            await self.fail_video(record.key.decode("utf-8", "replace"), describe(exc), "ingest")
        VIDEOS_PUBLISHED.labels(VideoStatus.FAILED).inc()
