"""Publish videos: `publish_video` decodes one video and sends its events; `IngestWorker` consumes the
ingest topic and publishes several requested videos at once, interleaved, each one's first seconds first.
Sending is bounded (at most `max_in_flight` unacknowledged events per video, and the processors' lag), so a
slow broker or slow processors slow the producer down instead of being flooded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import partial

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from reelscope.analyzers.registry import enabled_analyzers
from reelscope.infra.core.ingest import UriRejected, resolve_uri
from reelscope.infra.core.kafka import send_all, send_event
from reelscope.infra.core.metrics import VIDEOS_PUBLISHED
from reelscope.infra.core.retry import is_dependency_failure, retry_with_backoff
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
_FIRST_BATCHES = (1, 4, 16)
"""Sizes of a video's first decode batches: its started event and first frame go out as soon as they are
decoded, not after 32 events (about 2 s of a 15 fps clip) are."""
FREE_BATCHES = 2
"""With the bound in seconds of work (`producer.max_queue_s`), a video's first this many decode batches (its
started event and first few frames and chunks) go out without waiting on it: its first results come at
once, and the groups' schedulers put its first seconds first. The rest of its first seconds wait like
any other events (four videos' first 2 s at once were seconds of a slow group's work beyond the bound)."""


def topic_for(event: Event, settings: Settings) -> str:
    if isinstance(event, Frame):
        return settings.topics.frames
    if isinstance(event, AudioChunk):
        return settings.topics.audio
    return settings.topics.lifecycle


def media_time(event: Event) -> float | None:
    """Where in the media an event lies (frames, audio chunks); None for lifecycle events."""
    if isinstance(event, Frame):
        return event.pts_s
    if isinstance(event, AudioChunk):
        return event.start_s
    return None


class FirstSecondsFirst:
    """Orders the decoding of videos published at once: while any video is within its first `first_s`
    seconds of media, the others wait before their next batch, so a video pushed while others are being
    published reaches the processors in about the time its own first seconds take to decode, not a share
    of all of them. A video leaves the early phase at first_s of media or when it ends, whichever first,
    so no video waits longer than another's first seconds."""

    def __init__(self, first_s: float) -> None:
        self.first_s = first_s
        self.early = 0
        self.changed = asyncio.Condition()

    def enter(self) -> None:
        self.early += 1

    async def leave(self) -> None:
        async with self.changed:
            self.early -= 1
            self.changed.notify_all()

    async def clear(self) -> None:
        """Return once no video is in its first seconds."""
        if self.early:
            async with self.changed:
                await self.changed.wait_for(lambda: self.early == 0)


async def publish_events(
    producer: AIOKafkaProducer,
    settings: Settings,
    events: Iterator[Event],
    lag: LagWatcher | None = None,
    gate: FirstSecondsFirst | None = None,
    executor: Executor | None = None,
) -> Event:
    """Send events as the decoder yields them, never more than max_in_flight unacknowledged, and (with a
    LagWatcher) never more than `max_queue_s` seconds of work (at most max_lag_events) ahead of the slowest
    processor group (see backpressure.py).

    A video's first FREE_BATCHES batches (with the bound in seconds of work; with the event bound only,
    its first `batch.first_s` seconds of media: a bounded overshoot of first_s seconds per video at once)
    are sent without waiting on the lag, so its first results do not wait for other videos' backlog; the
    processors' schedulers give its first seconds priority too. With a gate, this video's first seconds go
    before the later seconds of videos published at the same time.

    Decoding runs in a worker thread (`executor`, default asyncio's), a batch at a time, so the event
    loop keeps heartbeating. Returns the last event (finished or failed)."""
    in_flight: list[asyncio.Future] = []
    last: Event | None = None
    # the lag is checked every few batches, so many short videos are throttled as well as one long one;
    # every batch when the bound is in seconds of work (four batches are seconds of a slow group's work)
    by_time = settings.producer.max_queue_s > 0
    check_every = min(settings.producer.max_in_flight, 4 * _BATCH)
    sent = 0
    first_s = settings.batch.first_s
    origin: float | None = None
    early = first_s > 0
    sizes = iter(_FIRST_BATCHES)
    due = not early  # check the lag before the next batch: at the start, or once the first seconds are out
    loop = asyncio.get_running_loop()
    if gate is not None and early:
        gate.enter()

    def next_batch(size: int) -> list[Event]:
        return [e for _, e in zip(range(size), events, strict=False)]

    async def end_early() -> None:
        nonlocal early, due
        if early:
            early, due = False, True
            if gate is not None:
                await gate.leave()

    try:
        while True:
            if not early and gate is not None:
                await gate.clear()
            if due and lag is not None:
                await _acknowledged(in_flight, lag)
                await lag.wait_below()
            due = False
            batch = await loop.run_in_executor(executor, next_batch, next(sizes, _BATCH))
            if not batch:
                break
            for event in batch:
                in_flight.append(await send_event(producer, topic_for(event, settings), event))
                last = event
                at = media_time(event)
                if at is not None and early:
                    origin = at if origin is None else origin
                    if at - origin >= first_s:
                        await end_early()
            sent += 1
            if len(in_flight) >= check_every:  # also bounds what is in flight without a LagWatcher
                await _acknowledged(in_flight, lag)
                due = not early
            if by_time and sent >= FREE_BATCHES:  # every batch but a video's first few waits on the bound
                due = True
        await _acknowledged(in_flight, lag)
    finally:
        await end_early()
    assert last is not None
    return last


async def _acknowledged(in_flight: list[asyncio.Future], lag: LagWatcher | None) -> None:
    for metadata in await asyncio.gather(*in_flight):
        if lag is not None:
            lag.record(metadata)
    in_flight.clear()


async def publish_video(
    producer: AIOKafkaProducer,
    settings: Settings,
    request: IngestRequest,
    lag: LagWatcher | None = None,
    gate: FirstSecondsFirst | None = None,
    executor: Executor | None = None,
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
    return await publish_events(producer, settings, source.events(), lag, gate, executor)


PUBLISHED_MEMORY = 4096
"""Requests an ingest worker remembers having published (see IngestWorker.published)."""


class IngestWorker(KafkaService):
    """Consumes ingest requests and publishes up to `producer.concurrent_videos` videos at once.

    A request is taken as soon as a slot is free, even while others are being published; the videos'
    events interleave, each video's first seconds first (FirstSecondsFirst). Offsets stay at-least-once:
    a partition's commit never passes a request whose video is not fully published (`handle` returns the
    lowest such offset as held, see consume_batches), so a kill mid-publish publishes it again (the
    aggregator is idempotent). A request that fails for any reason but the broker (a URI the OS refuses,
    options of the wrong type) fails its video with the reason; a broker failure publishes the video again
    from its start once the broker is back."""

    component = "producer"
    max_records = 1
    max_wait_ms = 500

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, PRODUCER_GROUP, read_by(settings, PRODUCER_GROUP))
        self.concurrency = settings.producer.concurrency()
        self.slots = asyncio.Semaphore(self.concurrency)
        self.pending: dict[tuple[TopicPartition, int], asyncio.Task | None] = {}
        """(partition, offset) of every request taken and not yet fully published (None: waiting for a
        slot): what the commit must not pass."""
        self.published: OrderedDict[tuple[TopicPartition, int], None] = OrderedDict()
        """The last PUBLISHED_MEMORY requests this worker published in full: a rebalance between the end of a
        publish and its commit hands the same request back, and publishing it again would restart a
        finished video (its status back to processing, its reconstruction emitted twice)."""
        self.gate = FirstSecondsFirst(settings.batch.first_s)
        self.executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="decode")

    async def started(self) -> None:
        self.lag = LagWatcher(self.settings)
        self.background.append(asyncio.create_task(self.lag.refresh(self.stop)))

    async def drain(self) -> None:
        """Stop publishing: the videos in hand were not committed, so the next owner publishes them again."""
        tasks = [t for t in self.pending.values() if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        await super().drain()
        if hasattr(self, "lag"):
            await self.lag.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def held(self) -> dict[TopicPartition, int]:
        """Per partition, the lowest offset whose video is not fully published: commit no further."""
        out: dict[TopicPartition, int] = {}
        for tp, offset in self.pending:
            out[tp] = min(out.get(tp, offset), offset)
        return out

    async def handle(self, records: list[ConsumerRecord]) -> dict[TopicPartition, int]:
        stopping = False
        for record in records:
            key = (TopicPartition(record.topic, record.partition), record.offset)
            if key in self.pending or key in self.published:  # redelivered (a rebalance): in hand or done
                continue
            if stopping:
                self.pending[key] = None  # not taken: held, uncommitted
                continue
            request = await self.decoded(record, IngestRequest)
            if request is None:
                continue
            self.pending[key] = None
            if not await self._slot():
                stopping = True
                continue
            self.pending[key] = asyncio.create_task(self._publish(key, record, request))
        return self.held()

    async def _slot(self) -> bool:
        """Wait for a free publishing slot; False if the service stops first."""
        acquire = asyncio.ensure_future(self.slots.acquire())
        stopped = asyncio.ensure_future(self.stop.wait())
        await asyncio.wait([acquire, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if acquire.done() and not acquire.cancelled():
            if not self.stop.is_set():
                return True
            self.slots.release()
        acquire.cancel()
        return False

    async def _publish(
        self, key: tuple[TopicPartition, int], record: ConsumerRecord, request: IngestRequest
    ) -> None:
        """Publish one video (again from its start after a broker failure); a failure of the request
        itself fails its video. Only a completed request is released for the commit."""
        try:
            await retry_with_backoff(
                partial(self._publish_once, record, request), "producer: publishing a video", self.stop
            )
        except Exception as exc:  # stopping while the broker is away, or even the failure could not be
            # reported: left uncommitted, so the next owner of the partition publishes it again
            log.error(
                "publishing %s stopped; its request stays uncommitted: %s", request.video_id, describe(exc)
            )
            return
        finally:
            self.slots.release()
        del self.pending[key]
        self.published[key] = None
        while len(self.published) > PUBLISHED_MEMORY:
            self.published.popitem(last=False)

    async def _publish_once(self, record: ConsumerRecord, request: IngestRequest) -> None:
        t0 = time.monotonic()
        try:
            last = await publish_video(
                self.producer, self.settings, request, self.lag, self.gate, self.executor
            )
        except Exception as exc:
            if is_dependency_failure(exc) or self.stop.is_set():
                raise
            log.warning("%s: request for %s failed: %s", self.component, request.video_id, describe(exc))
            await self.reject(record, exc)
            return
        status = VideoStatus.FAILED if isinstance(last, VideoFailed) else VideoStatus.PUBLISHED
        VIDEOS_PUBLISHED.labels(status).inc()
        log.info("published %s (%s) in %.2f s", request.video_id, last.KIND, time.monotonic() - t0)

    async def reject(self, record: ConsumerRecord, exc: BaseException) -> None:
        """Fail the requested video (its id is the message key) and dead-letter the request."""
        await super().reject(record, exc)
        if record.key:
            await self.fail_video(record.key.decode("utf-8", "replace"), describe(exc), "ingest")
        VIDEOS_PUBLISHED.labels(VideoStatus.FAILED).inc()
