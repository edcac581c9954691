"""The aggregator: joins results and lifecycle events by video, writes ClickHouse, finishes videos.

Its join state lives in ClickHouse, not in memory: results are stored as they arrive (idempotently), the
videos row holds what the producer published, and completeness is a count query. A killed aggregator
therefore rebuilds its state from what is stored when it restarts. Offsets are committed only after the
batch is written (the sink is flushed before offsets commit), and while ClickHouse is unavailable the
write is retried with backoff and consumption stops: nothing is dropped.

A video completes when every expected result arrived, or after `completion_timeout_s` with the missing
analyzers recorded. Then the segments and the reconstruction are written and the reconstruction is
published on the reconstructions topic.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from reelscope.analyzers.base import ShotAnalyzer
from reelscope.analyzers.registry import enabled_analyzers
from reelscope.infra.core.kafka import (
    DeadLetters,
    consume_batches,
    make_consumer,
    make_producer,
    send_all,
    start_with_backoff,
)
from reelscope.infra.core.metrics import VIDEOS_FINISHED
from reelscope.infra.core.settings import Settings
from reelscope.schemas.events import (
    AnalyzerResult,
    Event,
    Reconstruction,
    SchemaError,
    ShotsReady,
    VideoFailed,
    VideoFinished,
    VideoPart,
    VideoStarted,
    decode,
)
from reelscope.schemas.records import TERMINAL, Media, VideoStatus
from reelscope.sinks import reconstruction
from reelscope.sinks.about import embedding_model
from reelscope.sinks.store import Store, now, utc

log = logging.getLogger(__name__)

LIFECYCLE = (VideoStarted, VideoFinished, VideoFailed)


def empty_video(video_id: str) -> dict[str, Any]:
    """The videos row of a video nothing is known about yet (a result can arrive before its start)."""
    return {
        "video_id": video_id,
        "uri": "",
        "status": VideoStatus.PROCESSING,
        "error": "",
        **Media().model_dump(),
        "metadata": "{}",
        "options": "{}",
        "expected": "{}",
        "frames_published": 0,
        "chunks_published": 0,
        "warnings": [],
        "submitted_at": None,
        "started_at": None,
        "published_at": None,
        "completed_at": None,
    }


def apply_lifecycle(row: dict[str, Any], event: Event) -> dict[str, Any]:
    """The videos row after a lifecycle event (events may arrive more than once, or out of order)."""
    row = dict(row)
    if isinstance(event, VideoStarted):
        if row["status"] in (*TERMINAL, VideoStatus.DESCRIBING):
            row["status"] = VideoStatus.PROCESSING  # the same video id was submitted again: process it again
            row["completed_at"] = None
        row.update(
            event.media.model_dump(),
            uri=event.uri,
            metadata=json.dumps(event.metadata),
            options=json.dumps(event.options),
            started_at=utc(event.started_at),
            submitted_at=utc(event.submitted_at),
        )
    elif isinstance(event, VideoFinished):
        if row["status"] == VideoStatus.PROCESSING:
            row["status"] = VideoStatus.PUBLISHED
        row.update(
            expected=json.dumps(event.expected),
            frames_published=event.frames_published,
            chunks_published=event.chunks_published,
            warnings=list(event.warnings),
            published_at=utc(event.finished_at),
        )
    elif isinstance(event, VideoFailed):
        row.update(status=VideoStatus.FAILED, error=event.reason, completed_at=utc(event.failed_at))
    return row


def result_row(result: AnalyzerResult, stamp: datetime) -> dict[str, Any]:
    """A results-table record of one analyzer result."""
    return {
        **result.model_dump(exclude={"payload", "error", "produced_at"}),
        "payload": json.dumps(result.payload, separators=(",", ":")),
        "error": result.error or "",
        "produced_at": utc(result.produced_at) or stamp,
        "updated_at": stamp,
    }


def segment_row(video_id: str, segment: dict[str, Any], stamp: datetime) -> dict[str, Any]:
    """A segments-table record: the segment's place, and every analyzer's fields as JSON."""
    place = ("index", "start_s", "end_s", "shot")
    return {
        "video_id": video_id,
        "segment_index": segment["index"],
        "start_s": segment["start_s"],
        "end_s": segment["end_s"],
        "shot_index": segment["shot"],
        "fields": json.dumps({k: v for k, v in segment.items() if k not in place}),
        "updated_at": stamp,
    }


class Aggregator:
    """Consumes results and lifecycle events; one instance per partition set of the consumer group."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.enabled = enabled_analyzers(settings.analyzers, settings)
        self.shot_analyzers = {n: c for n, c in self.enabled.items() if issubclass(c, ShotAnalyzer)}
        self.stop = asyncio.Event()
        self.ready = asyncio.Event()
        self.finalized: dict[str, str] = {}
        # caches of what is stored, so most batches need no read query; ClickHouse stays the truth
        self.rows: dict[str, dict[str, Any]] = {}
        self.seen: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.write_error: str | None = None
        """The last ClickHouse write failure while it persists (the API's /health reports it)."""
        self.progressed: dict[str, float] = {}
        """Video -> when its last result arrived: the completion timeout runs from the later of this and
        published_at, so a long video whose results keep coming is not cut off."""

    async def run(self) -> None:
        await self.store.call(self.store.create_tables)
        # the keyword/topic embedding model loads once, in the background, not during the first video
        warm_up = asyncio.create_task(asyncio.to_thread(embedding_model))
        producer = make_producer(self.settings)
        consumer = make_consumer(
            self.settings,
            [self.settings.topics.lifecycle, self.settings.topics.results],
            "reelscope.aggregator",
        )
        # range assignment gives one member the same partition of both topics: a video's lifecycle events
        # and its results (both keyed by video id) meet in the same process
        consumer._partition_assignment_strategy = (RangePartitionAssignor,)
        if not await start_with_backoff(producer, "aggregator producer", self.stop):
            return
        try:
            if not await start_with_backoff(consumer, "aggregator consumer", self.stop):
                return
            self.producer = producer
            self.dead_letters = DeadLetters(producer, self.settings.topics.dead_letter, "aggregator")
            self.ready.set()
            checker = asyncio.create_task(self._check_open_videos())
            try:
                await consume_batches(
                    consumer,
                    self.handle,
                    self.stop,
                    max_records=2000,
                    max_wait_ms=200,
                    component="aggregator",
                )
            finally:
                checker.cancel()
                warm_up.cancel()
                await consumer.stop()
        finally:
            await producer.stop()

    async def handle(self, records: list[ConsumerRecord]) -> None:
        results: list[AnalyzerResult] = []
        lifecycle: list[Event] = []
        for record in records:
            try:
                event = decode(record.value or b"", expect=(AnalyzerResult, *LIFECYCLE))
            except SchemaError as exc:
                await self.dead_letters.publish(record, str(exc))
                continue
            (results if isinstance(event, AnalyzerResult) else lifecycle).append(event)
        await self._write_with_retry(results, lifecycle)
        touched = {e.video_id for e in results} | {e.video_id for e in lifecycle}
        for video_id in touched:
            await self._maybe_finalize(video_id)

    async def _write_with_retry(self, results: list[AnalyzerResult], lifecycle: list[Event]) -> None:
        delay = 0.5
        while True:
            try:
                await self.store.call(self._write, results, lifecycle)
                self.write_error = None
                return
            except Exception as exc:  # ClickHouse down: hold the batch (and consumption) and retry
                self.write_error = f"{type(exc).__name__}: {exc}"[:300]
                if self.stop.is_set():
                    raise
                log.warning("ClickHouse write failed (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _write(self, results: list[AnalyzerResult], lifecycle: list[Event]) -> None:
        stamp = now()
        self.store.insert_results([result_row(r, stamp) for r in results])
        rows: dict[str, dict[str, Any]] = {}
        for event in lifecycle:
            vid = event.video_id
            row = rows.get(vid) or self.rows.get(vid) or self.store.video(vid) or empty_video(vid)
            rows[vid] = apply_lifecycle(row, event)
        for row in rows.values():
            self.store.upsert_video(row)
        self.rows.update(rows)
        for r in results:
            self.seen[r.video_id][r.analyzer].add(r.item_key)
            self.progressed[r.video_id] = time.time()

    async def _maybe_finalize(self, video_id: str, timed_out: bool = False, recheck: bool = False) -> None:
        """Finish the video if all its expected results are stored (or it timed out, or failed).

        The in-memory tally decides when to ask ClickHouse; `recheck` (the periodic check, which also
        covers a restarted aggregator with an empty tally) always asks."""
        video = self.rows.get(video_id)
        if video is None:
            video = await self.store.call(self.store.video, video_id)
            if video is not None:
                self.rows[video_id] = video
        if video is None or video["status"] in (VideoStatus.COMPLETE, VideoStatus.DEGRADED):
            return
        if video["status"] == VideoStatus.FAILED:
            if self.finalized.get(video_id) != VideoStatus.FAILED:
                await self._finalize(video, failed_reason=video["error"] or "failed")
            return
        if video["status"] not in (VideoStatus.PUBLISHED, VideoStatus.DESCRIBING):
            return
        expected: dict[str, int] = json.loads(video["expected"] or "{}")
        tally = self.seen.get(video_id, {})
        if not (timed_out or recheck) and any(len(tally.get(a, ())) < n for a, n in expected.items()):
            return
        counts = await self.store.call(self.store.result_counts, video_id)
        done = all(counts.get(name, (0, 0))[0] >= n for name, n in expected.items())
        if not (done or timed_out):
            return
        if video["status"] == VideoStatus.PUBLISHED and self.shot_analyzers and video["has_video"]:
            await self._request_shots(video)
        else:
            await self._finalize(video)

    async def _request_shots(self, video: dict[str, Any]) -> None:
        """Second phase: the frame and audio results are in, so the shots are known; ask the shot
        analyzers (captioning) for one result per shot plus the whole-video description."""
        video_id = video["video_id"]
        rows = await self.store.call(self.store.results, video_id)
        doc = await asyncio.to_thread(
            reconstruction.build,
            video,
            rows,
            self.enabled,
            self.settings.aggregator.segment_s,
            None,
            False,
            self.settings.producer.max_duration_s,
        )
        if not doc["shots"]:
            await self._finalize(video)
            return
        event = ShotsReady(
            video_id=video_id,
            shots=[{**shot, "context": reconstruction.shot_context(doc, shot)} for shot in doc["shots"]],
            transcript=(doc.get("transcript") or {}).get("text", ""),
            texts=[e["text"] for e in doc.get("text_events", [])],
            meta={
                "duration_s": doc["duration_s"],
                "width": video["width"],
                "height": video["height"],
                "title": doc["metadata"].get("caption") or doc["metadata"].get("title", ""),
            },
        )
        expected = json.loads(video["expected"] or "{}")
        # one result per shot, plus the whole-video description from those that write one
        expected.update(
            {name: len(doc["shots"]) + int(cls.describes_video) for name, cls in self.shot_analyzers.items()}
        )
        # published_at restarts the completion clock for the second phase
        row = {
            **video,
            "status": VideoStatus.DESCRIBING,
            "expected": json.dumps(expected),
            "published_at": now(),
        }
        await send_all(self.producer, [(self.settings.topics.shots, event)])
        await self.store.call(self.store.upsert_video, row)
        self.rows[video_id] = row

    async def _finalize(self, video: dict[str, Any], failed_reason: str | None = None) -> None:
        video_id = video["video_id"]
        rows = await self.store.call(self.store.results, video_id)
        doc = await asyncio.to_thread(  # video summaries can take a while (optical flow): off the loop
            reconstruction.build,
            video,
            rows,
            self.enabled,
            self.settings.aggregator.segment_s,
            failed_reason,
            max_span_s=self.settings.producer.max_duration_s,
        )
        completed = video.get("completed_at") or now()
        doc["timings"] = {
            "submitted_at": _iso(video.get("submitted_at")),
            "started_at": _iso(video.get("started_at")),
            "published_at": _iso(video.get("published_at")),
            "completed_at": _iso(completed),
        }
        document = json.dumps(doc, separators=(",", ":"))

        def write() -> None:
            stamp = now()
            self.store.replace_segments([segment_row(video_id, s, stamp) for s in doc["segments"]])
            self.store.write_details(video_id, doc)
            self.store.save_reconstruction(video_id, doc["status"], doc["format_version"], document)
            self.store.upsert_video({**video, "status": doc["status"], "completed_at": completed})
            self.rows.pop(video_id, None)
            self.seen.pop(video_id, None)
            self.progressed.pop(video_id, None)

        while True:
            try:
                await self.store.call(write)
                break
            except Exception as exc:
                if self.stop.is_set():
                    raise
                log.warning("ClickHouse write failed while finishing %s (%s); retrying", video_id, exc)
                await asyncio.sleep(1.0)
        topics = self.settings.topics
        parts = [
            (
                topics.part(p),
                VideoPart(
                    video_id=video_id,
                    part=p,
                    status=doc["status"],
                    document=reconstruction.part_for_event(doc, p, self.settings.kafka.max_event_bytes),
                ),
            )
            for p in topics.PARTS
            if doc.get(p)
        ]
        await send_all(
            self.producer,
            [
                (
                    topics.reconstructions,
                    Reconstruction(
                        video_id=video_id,
                        status=doc["status"],
                        document=reconstruction.for_event(doc, self.settings.kafka.max_event_bytes),
                    ),
                ),
                *parts,
            ],
        )
        self.finalized[video_id] = doc["status"]
        VIDEOS_FINISHED.labels(doc["status"]).inc()
        log.info("video %s %s", video_id, doc["status"])

    async def _check_open_videos(self) -> None:
        """Periodically finish videos whose results are all in (also after a restart) or timed out."""
        timeout = self.settings.aggregator.completion_timeout_s
        tick = 0
        while not self.stop.is_set():
            await asyncio.sleep(self.settings.aggregator.check_interval_s)
            tick += 1
            try:
                videos = await self.store.call(self.store.open_videos)
                for video in videos:
                    published = video.get("published_at")
                    since = (
                        max(_epoch(published), self.progressed.get(video["video_id"], 0.0))
                        if published
                        else 0.0
                    )
                    late = published is not None and time.time() - since > timeout
                    # count in ClickHouse for videos this process has no tally of (stored before a
                    # restart), and now and then for all, since a tally started mid-video stays short
                    recheck = video["video_id"] not in self.seen or tick % 5 == 0
                    await self._maybe_finalize(video["video_id"], timed_out=late, recheck=recheck)
            except Exception as exc:
                log.warning("open-video check failed: %s", exc)


def _epoch(value: datetime) -> float:
    """Seconds since the epoch; ClickHouse may hand back naive datetimes, which are UTC here."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
