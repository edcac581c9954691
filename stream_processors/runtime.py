"""The generic processor: one long-lived consumer per analyzer group, written once.

It loads the group's analyzers once, consumes frame and/or audio events in batches that mix videos, runs
each analyzer on the items that sampled it, publishes one result event per (analyzer, item), and commits
offsets only after the broker acknowledged the results. Frame and audio groups choose what to analyze next
from a window of fetched items (scheduler.py: fair across videos, first seconds first, bounded wait, stated
load shedding) and commit only the contiguous prefix of what is acknowledged. An item whose analyzer keeps failing is retried
alone, then reported as an error result (so the video completes with that gap reported) and sent to the
dead-letter topic; the partition never gets stuck. Several processes of one group share the partitions
through the Kafka consumer group.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import closing
from dataclasses import replace
from functools import partial
from typing import Any, ClassVar

import numpy as np
import simplejpeg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from PIL import Image
from reelscope.analyzers.base import Analyzer, AudioItem, FrameItem, Item, fit_to_side
from reelscope.analyzers.registry import create, groups
from reelscope.infra.core.kafka import commit_with_retry, send_event
from reelscope.infra.core.metrics import (
    ANALYZER_FAILURES,
    ANALYZER_SECONDS,
    BATCH_SECONDS,
    BATCH_SIZE,
    EVENTS_IN,
    RESULT_LATENCY,
    RESULTS_OUT,
)
from reelscope.infra.core.retry import retry_with_backoff
from reelscope.infra.core.service import KafkaService
from reelscope.infra.core.settings import Settings
from reelscope.infra.core.topics import group_id, media_topics, progress_group_id
from reelscope.schemas.events import (
    SOURCE_CHANNEL,
    AnalyzerResult,
    AudioChunk,
    Frame,
    Provenance,
    shed_payload,
)
from reelscope.stream_processors.heartbeat import Heartbeat
from reelscope.stream_processors.scheduler import Entry, Scheduler

log = logging.getLogger(__name__)


def item_key(event: Frame | AudioChunk) -> str:
    """Stable key of an input item within its video, so a redelivered result replaces the first one."""
    if isinstance(event, Frame):
        return f"f{event.index:07d}"
    channel = {-1: "m", SOURCE_CHANNEL: "s"}.get(event.channel, f"c{event.channel}")
    return f"{channel}{event.index:06d}"


def frame_image(frame: Frame) -> np.ndarray:
    """The frame's picture, RGB uint8: libjpeg-turbo straight into an array (simplejpeg, a third of
    Pillow's CPU on the cut detector's 160 px frames: 0.23 vs 0.64 ms); Pillow for what it refuses."""
    try:
        return simplejpeg.decode_jpeg(frame.jpeg, colorspace="RGB")
    except ValueError:
        return np.asarray(Image.open(io.BytesIO(frame.jpeg)).convert("RGB"))


def to_item(event: Frame | AudioChunk) -> Item:
    if isinstance(event, Frame):
        return FrameItem(
            event.video_id, event.index, event.pts_s, frame_image(event), event.final, event.first
        )
    samples = np.frombuffer(event.pcm, dtype="<i2").astype(np.float32) / 32768.0
    if event.channels > 1:
        samples = np.ascontiguousarray(samples.reshape(-1, event.channels).T)
    return AudioItem(
        event.video_id,
        event.index,
        event.start_s,
        event.end_s,
        samples,
        event.sample_rate,
        event.channel,
        event.final,
        tuple(event.hotwords),
        event.first,
    )


class BatchItems:
    """One batch's items: each event decoded once (when an analyzer first asks for it), and each frame
    handed to an analyzer at the analyzer's own `sampling.max_side`, made once per size (frames travel at
    the largest size any analyzer sampling them asked for: see `fit_to_side`)."""

    def __init__(self) -> None:
        self.decoded: dict[int, Item] = {}
        self.sized: dict[tuple[int, int], Item] = {}

    def get(self, event: Frame | AudioChunk, max_side: int) -> Item:
        key = id(event)
        if key not in self.decoded:
            self.decoded[key] = to_item(event)
        item = self.decoded[key]
        if not isinstance(item, FrameItem):
            return item
        if (key, max_side) not in self.sized:
            # shrunk from the smallest size already made that is large enough: less to average
            made = [i for (k, side), i in self.sized.items() if k == key and side >= max_side]
            source = min(made, key=lambda i: i.image.size, default=item)
            self.sized[key, max_side] = replace(item, image=fit_to_side(source.image, max_side))
        return self.sized[key, max_side]

    def batch(self, analyzer: Analyzer[Any], events: list[Frame | AudioChunk]) -> list[Item]:
        return [self.get(event, analyzer.sampling.max_side) for event in events]


def make_result(
    video_id: str,
    analyzer: str,
    key: str,
    model: tuple[str, Provenance],
    span: tuple[float, float],
    payload: dict[str, Any],
    error: str | None,
) -> AnalyzerResult:
    """The result event of one analyzer for one item (frame, chunk, shot or whole video), stamped now."""
    return AnalyzerResult(
        video_id=video_id,
        analyzer=analyzer,
        item_key=key,
        model=model[0],
        provenance=model[1],
        start_s=span[0],
        end_s=span[1],
        payload=payload,
        error=error,
        produced_at=time.time(),
    )


def item_span(event: Frame | AudioChunk) -> tuple[float, float]:
    if isinstance(event, Frame):
        return event.pts_s, event.pts_s
    return event.start_s, event.end_s


def stream_key(event: Frame | AudioChunk) -> tuple[str, str]:
    """One ordered stream of a video on one topic: its frames, or one audio channel."""
    return (event.video_id, "frames" if isinstance(event, Frame) else f"audio{event.channel}")


class OpenStreams:
    """Which video streams a stateful group has begun and not finished, per partition.

    Offsets are committed no further than the first record of an open stream, so a restarted process
    replays every open stream from its beginning; a stream not seen from its first item (the tail of one
    that finished before the restart, whose results are already out) is skipped.

    Age is idleness, never length: a stream stops holding commits back only after `max_age_s` without a
    new item (its producer died), and it is forgotten (its later items skipped) only past the bound on
    remembered streams. A long video that keeps streaming is never cut short: measuring age from a
    stream's first item dropped the tail of every stream open longer than the completion timeout.
    """

    MAX_BEGUN = 10_000
    """Streams remembered at most (the least recently active are forgotten first): bounds memory when
    producers die mid-stream and their streams never end."""

    def __init__(self) -> None:
        self.open: dict[TopicPartition, dict[tuple[str, str], tuple[int, float]]] = defaultdict(dict)
        self.begun: dict[tuple[str, str], float] = {}
        """Stream -> when its last item arrived (monotonic), in order of activity."""

    def admit(self, record: ConsumerRecord, event: Frame | AudioChunk) -> bool:
        key = stream_key(event)
        if event.first:
            self.begun[key] = time.monotonic()
        return key in self.begun

    def advance(self, record: ConsumerRecord, event: Frame | AudioChunk) -> None:
        tp = TopicPartition(record.topic, record.partition)
        key = stream_key(event)
        if event.final:
            self.open[tp].pop(key, None)
            self.begun.pop(key, None)
            return
        now = time.monotonic()
        self.begun.pop(key, None)  # re-inserted last: the dict stays ordered by activity
        self.begun[key] = now
        first = self.open[tp].get(key, (record.offset, now))[0]
        self.open[tp][key] = (first, now)
        while len(self.begun) > self.MAX_BEGUN:
            oldest = next(iter(self.begun))
            log.warning("forgetting stream %s: more than %d streams open", oldest, self.MAX_BEGUN)
            del self.begun[oldest]

    def watermarks(self, max_age_s: float) -> dict[TopicPartition, int]:
        """Per partition, the offset to commit up to; streams idle longer than max_age_s stop holding it
        back (their producer died; the video times out in the aggregator) but stay admitted."""
        now = time.monotonic()
        out = {}
        for tp, streams in self.open.items():
            for key in [k for k, (_, seen) in streams.items() if now - seen > max_age_s]:
                log.warning(
                    "stream %s idle for %.0f s: no longer holding commits back", key, now - streams[key][1]
                )
                del streams[key]
            if streams:
                out[tp] = min(offset for offset, _ in streams.values())
        return out


class Progress:
    """A stateful group's processed offsets, committed under its progress group id (never read back by a
    consumer): its own commits wait for each stream's end, so without these the producer could not tell
    how much of its work is queued. Best effort: a failed commit is retried with the next one."""

    def __init__(self, settings: Settings, group: str) -> None:
        self.settings, self.group = settings, group
        self.client: AIOKafkaConsumer | None = None
        self.offsets: dict[TopicPartition, int] = {}

    async def commit(self, offsets: dict[Any, int]) -> None:
        self.offsets.update(offsets)
        try:
            if self.client is None:
                self.client = AIOKafkaConsumer(
                    **self.settings.kafka.client_kwargs(),
                    group_id=progress_group_id(self.group),
                    enable_auto_commit=False,
                )
                await self.client.start()
            if not set(self.offsets) <= self.client.assignment():
                parts = set(self.offsets) | self.client.assignment()
                self.client.assign(list(parts))  # assigned only to commit: paused, never fetched
                self.client.pause(*parts)
            await self.client.commit(dict(self.offsets))
        except (KafkaError, OSError) as exc:
            log.debug("group %s: progress not committed: %s", self.group, exc)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.stop()


Ready = Callable[[int, dict[str, Any], str | None], None]
"""Told each item's (index in the batch, payload, error) as soon as it is known."""


class ResultOutbox:
    """Sends the results the analysis thread hands over as they are made, in order, on the event loop, so an
    item's result goes out when it is ready, not when its whole batch is (a window transcribed among
    buffered chunks, one analyzer's results before the next analyzer of the group has run). Results made
    within `linger_s` of each other go out together: one wake-up of the loop and few produce requests, and a
    batch shorter than that publishes everything at its end, as before (sending each analyzer's results at
    once, the light group's CPU seconds rose from 3.9-4.4 to 4.8-5.1 in alternating load tests).
    `flush` waits for every acknowledgement and says when each item's last result was acknowledged."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, group: str, linger_s: float) -> None:
        self.producer, self.topic, self.group, self.linger_s = producer, topic, group, linger_s
        self.loop = asyncio.get_running_loop()
        self.lock = threading.Lock()
        self.pending: list[AnalyzerResult] = []
        """Handed over by the thread, not yet queued on the loop (a wake-up is scheduled while any is)."""
        self.queue: asyncio.Queue[list[AnalyzerResult] | None] = asyncio.Queue()
        self.acks: list[asyncio.Future[Any]] = []
        self.acked: dict[tuple[str, str], float] = {}
        """(video id, item key) -> when its latest result was acknowledged (epoch seconds)."""
        self.sender = asyncio.create_task(self._send())

    def put(self, result: AnalyzerResult) -> None:
        """From the analysis thread: send `result` within `linger_s`."""
        with self.lock:
            self.pending.append(result)
            if len(self.pending) > 1:
                return  # a wake-up is already on its way
        self.loop.call_soon_threadsafe(self.loop.call_later, self.linger_s, self._wake)

    def _wake(self) -> None:
        with self.lock:
            results, self.pending = self.pending, []
        if results:
            self.queue.put_nowait(results)

    async def _send(self) -> None:
        while (results := await self.queue.get()) is not None:
            for result in results:
                ack = await send_event(self.producer, self.topic, result)
                key = (result.video_id, result.item_key)
                ack.add_done_callback(partial(self._acked, key, result.analyzer))
                self.acks.append(ack)

    def _acked(self, key: tuple[str, str], analyzer: str, ack: asyncio.Future[Any]) -> None:
        if not ack.cancelled() and ack.exception() is None:
            self.acked[key] = time.time()
            RESULTS_OUT.labels(self.group, analyzer).inc()

    async def flush(self) -> dict[tuple[str, str], float]:
        """Wait until every result put so far is acknowledged (raises what a send raised)."""
        self._wake()
        self.queue.put_nowait(None)
        await self.sender
        if self.acks:
            await asyncio.gather(*self.acks)
        return self.acked

    def cancel(self) -> None:
        """The batch failed: stop sending (what went out stays; a retry publishes the same keys again)."""
        self.sender.cancel()


Planned = tuple[ConsumerRecord, Frame | AudioChunk, dict[str, int], int]
"""An input record, its event, the analyzers that shed it (name -> stride), and the stride its economical
analyzers run their economy mode under (1: full analysis)."""


class GroupProcessor(KafkaService):
    """Runs one analyzer group against the broker until stopped."""

    schedulable: ClassVar[bool] = True
    """Whether `batch.schedule` applies (shot groups keep their own order)."""

    def __init__(self, settings: Settings, group: str, analyzers: list[Analyzer[Any]] | None = None) -> None:
        if analyzers is None:
            classes = groups(settings.analyzers, settings).get(group)
            if not classes:
                raise ValueError(f"no enabled analyzer belongs to group {group!r}")
            analyzers = [create(cls, settings) for cls in classes]
        super().__init__(settings, group_id(group), media_topics(settings, {a.input for a in analyzers}))
        self.group = group
        self.component = f"group:{group}"
        self.max_records = settings.batch.max_size
        self.max_wait_ms = settings.batch.max_wait_ms
        self.analyzers = {a.name: a for a in analyzers}
        self.stateful = any(a.stateful for a in analyzers)
        self.streams = OpenStreams()
        self.scheduled = settings.batch.schedule and self.schedulable
        allowed = set(settings.batch.shed_analyzers)
        sheddable = {a.name for a in analyzers if a.input == "frame" and not a.stateful and a.name in allowed}
        self.economical = {
            a.name for a in analyzers if a.economy and a.input == "audio" and a.name in allowed
        }
        """Analyzers that take items in their economy mode while the group is behind (`Analyzer.economy`)."""
        self.scheduler = Scheduler(settings.batch, sheddable)
        self.planned: dict[tuple[str, int, int], Entry] = {}
        """The batch in hand, by (topic, partition, offset): decoded at intake, with its shed analyzers."""
        self.heartbeat = Heartbeat(settings, group)

    def load(self) -> float:
        """Load every analyzer's model once; returns the seconds it took. Fails loudly at start."""
        t0 = time.monotonic()
        for analyzer in self.analyzers.values():
            analyzer.load()
            log.info("group %s: loaded %s (%s, %s)", self.group, analyzer.name, *analyzer.describe_model())
        return time.monotonic() - t0

    async def setup(self) -> None:
        load_s = await asyncio.to_thread(self.load)
        log.info("group %s: models loaded in %.2f s; consuming %s", self.group, load_s, self.topics)

    # scheduled consumption ------------------------------------------------------------------------------
    async def consume(self, consumer: AIOKafkaConsumer) -> None:
        """Keep up to `batch.window` fetched items, analyze the scheduler's choice of them batch by batch,
        and commit each partition's acknowledged contiguous prefix (never past an item still waiting)."""
        if not self.scheduled:
            await super().consume(consumer)
            return
        self.progress = Progress(self.settings, self.group)
        try:
            await self._consume_scheduled(consumer)
        finally:
            await self.progress.close()

    async def _consume_scheduled(self, consumer: AIOKafkaConsumer) -> None:
        while not self.stop.is_set():
            room = self.settings.batch.window - len(self.scheduler)
            if room > 0:
                try:
                    wait = 0 if len(self.scheduler) else self.max_wait_ms
                    fetched = await consumer.getmany(timeout_ms=wait, max_records=room)
                except KafkaError as exc:
                    log.warning("fetch failed (%s); retrying", exc)
                    await asyncio.sleep(0.5)
                    continue
                await self.intake([r for part in fetched.values() for r in part])
            batch = self.scheduler.take(time.time())
            if batch:
                await self.analyze_planned(batch)
            offsets = self.scheduler.commits()
            if offsets and self.stateful:  # and never past the first item of an open stream
                await self.progress.commit(offsets)  # what is processed, for the producer's backpressure
                held = self.streams.watermarks(self.settings.aggregator.completion_timeout_s)
                offsets = {tp: min(o, held.get(tp, o)) for tp, o in offsets.items()}
            if offsets:
                await commit_with_retry(consumer, offsets, self.stop)  # type: ignore[arg-type]

    async def intake(self, records: list[ConsumerRecord]) -> None:
        """Decode fetched records into the scheduler, in offset order; what has nothing to analyze (a bad
        event, dead-lettered; a stream's tail from before a restart) is settled at once."""
        if not records:
            return
        EVENTS_IN.labels(self.component).inc(len(records))
        now = time.time()
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            event = await self.decoded(record, (Frame, AudioChunk))
            if event is None or (self.stateful and not self.streams.admit(record, event)):  # type: ignore[arg-type]
                self.scheduler.passed(tp, record.offset)
                continue
            start, _ = item_span(event)  # type: ignore[arg-type]
            entry = Entry(
                tp=tp,
                offset=record.offset,
                video=event.video_id,
                stream=stream_key(event),  # type: ignore[arg-type]
                media_s=start,
                published=record.timestamp / 1000,
                analyzers=tuple(n for n in event.targets if n in self.analyzers),  # type: ignore[union-attr]
                first=event.first,  # type: ignore[union-attr]
                final=event.final,  # type: ignore[union-attr]
                item=(record, event),
            )
            self.scheduler.offer(entry, now)

    async def analyze_planned(self, batch: list[Entry]) -> None:
        """One scheduled batch through the failure boundary (retried while a dependency is down)."""
        self.planned = {(e.item[0].topic, e.item[0].partition, e.item[0].offset): e for e in batch}
        BATCH_SIZE.labels(self.component).observe(len(batch))
        started = time.monotonic()
        try:
            await retry_with_backoff(
                partial(self.guarded, [e.item[0] for e in batch]),
                f"{self.component}: handling a batch",
                self.stop,
                initial_s=0.5,
            )
        finally:
            self.planned = {}
        took = time.monotonic() - started
        BATCH_SECONDS.labels(self.component).observe(took)
        self.scheduler.observe(sum(bool(set(e.analyzers) - e.skip.keys()) for e in batch), took)
        self.scheduler.settle(batch)

    # one batch ------------------------------------------------------------------------------------------
    async def planned_events(self, records: list[ConsumerRecord]) -> list[Planned]:
        """The batch's events: as the scheduler planned them, or decoded here (unscheduled consumption)."""
        events: list[Planned] = []
        for record in records:
            entry = self.planned.get((record.topic, record.partition, record.offset))
            if entry is not None:
                events.append((record, entry.item[1], entry.skip, entry.economy))
                continue
            event = await self.decoded(record, (Frame, AudioChunk))
            if event is None:
                continue
            if self.stateful and not self.streams.admit(record, event):  # type: ignore[arg-type]
                continue
            events.append((record, event, {}, 1))  # type: ignore[arg-type]
        return events

    async def handle(self, records: list[ConsumerRecord]) -> dict[TopicPartition, int] | None:
        events = await self.planned_events(records)
        outbox = ResultOutbox(
            self.producer,
            self.settings.topics.results,
            self.group,
            self.settings.batch.publish_linger_ms / 1000,
        )
        try:
            async with self.heartbeat.beating(self.producer, (ev.video_id for _, ev, _, _ in events)):
                _, failed = await asyncio.to_thread(self.analyze_batch, events, outbox.put)
        except BaseException:
            outbox.cancel()
            raise
        acked = await outbox.flush()
        for record, reason in failed:
            await self.dead_letters.publish(record, reason)
        for record, event, skip, _ in events:
            if set(event.targets) & self.analyzers.keys() - skip.keys():  # shed items are not a latency
                done = acked.get((event.video_id, item_key(event)), time.time())
                RESULT_LATENCY.labels(self.group).observe(max(0.0, done - record.timestamp / 1000))
        if not self.stateful:
            return None
        for record, event, _, _ in events:
            self.streams.advance(record, event)
        return self.streams.watermarks(self.settings.aggregator.completion_timeout_s)

    def analyze_batch(
        self, events: list[Planned], publish: Callable[[AnalyzerResult], None] | None = None
    ) -> tuple[list[AnalyzerResult], list[tuple[ConsumerRecord, str]]]:
        """Run each analyzer on the items that sampled it and were not shed (in a worker thread): the
        results (shed items' results say so), each also handed to `publish` as soon as it is made, and the
        input records an analyzer gave up on, with the reason, for the dead-letter topic."""
        failed: list[tuple[ConsumerRecord, str]] = []
        items = BatchItems()
        results: list[AnalyzerResult] = []

        def made(result: AnalyzerResult) -> None:
            results.append(result)
            if publish is not None:
                publish(result)

        for analyzer in self.analyzers.values():
            failed += self.run_analyzer(analyzer, events, items, made)
        return results, failed

    def run_analyzer(
        self,
        analyzer: Analyzer[Any],
        events: list[Planned],
        items: BatchItems,
        made: Callable[[AnalyzerResult], None],
    ) -> list[tuple[ConsumerRecord, str]]:
        """One analyzer over the batch's items that sampled it: each result to `made` as soon as it is made
        (shed items' results last); returns the records it gave up on, with the reason."""
        name, model = analyzer.name, analyzer.describe_model()

        def result(ev: Frame | AudioChunk, payload: dict[str, Any], error: str | None) -> AnalyzerResult:
            return make_result(ev.video_id, name, item_key(ev), model, item_span(ev), payload, error)

        mine = [(rec, ev, k) for rec, ev, skip, k in events if name in ev.targets and name not in skip]
        failed: list[tuple[ConsumerRecord, str]] = []
        if mine:
            batch = items.batch(analyzer, [ev for _, ev, _ in mine])
            if name in self.economical:
                batch = [replace(i, economy=k) for i, (_, _, k) in zip(batch, mine, strict=True)]
            t0 = time.monotonic()
            payloads = self.analyze_with_retries(
                analyzer, batch, lambda i, p, e: made(result(mine[i][1], p, e))
            )
            ANALYZER_SECONDS.labels(name).inc(time.monotonic() - t0)
            failed = [(rec, error) for (rec, _, _), (_, error) in zip(mine, payloads, strict=True) if error]
        for _, ev, skip, _ in events:
            if name in ev.targets and name in skip:
                made(result(ev, shed_payload(skip[name]), None))
        return failed

    def analyze_with_retries(
        self, analyzer: Analyzer[Any], batch: list[Item], ready: Ready | None = None
    ) -> list[tuple[dict[str, Any], str | None]]:
        """(payload, None) per item, or ({}, error) for an item that failed alone `max_retries` times; each
        is also handed to `ready` (index, payload, error) as soon as it is known. After a failure the items
        the analyzer had not yet made are retried one by one."""
        out: list[tuple[dict[str, Any], str | None] | None] = [None] * len(batch)

        def settle(i: int, payload: dict[str, Any], error: str | None) -> None:
            out[i] = (payload, error)
            if ready is not None:
                ready(i, payload, error)

        try:
            with closing(analyzer.analyze_ready(batch)) as made:  # closed at once if we stop early
                for i, payload in made:
                    if not 0 <= i < len(batch) or out[i] is not None:
                        raise RuntimeError(f"made item {i} twice or out of the batch of {len(batch)}")
                    settle(i, payload, None)
            if None in out:
                raise RuntimeError(f"made {len(batch) - out.count(None)} payloads for {len(batch)} items")
        except Exception as exc:
            log.warning(
                "group %s: %s failed on a batch of %d (%s); retrying item by item",
                self.group,
                analyzer.name,
                len(batch),
                exc,
            )
        for i, item in enumerate(batch):
            if out[i] is not None:
                continue
            error = ""
            for _attempt in range(self.settings.batch.max_retries):
                try:
                    settle(i, self._checked(analyzer, [item])[0], None)
                    break
                except Exception as exc:
                    error = f"{analyzer.name}: {type(exc).__name__}: {exc}"
            else:
                settle(i, {}, error)
                ANALYZER_FAILURES.labels(analyzer.name).inc()
        return [o for o in out if o is not None]

    @staticmethod
    def _checked(analyzer: Analyzer[Any], batch: list[Item]) -> list[dict[str, Any]]:
        payloads = analyzer.analyze(batch)
        if len(payloads) != len(batch):
            raise RuntimeError(f"returned {len(payloads)} payloads for {len(batch)} items")
        return payloads
