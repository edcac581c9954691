"""The aggregator: joins results and lifecycle events by video, writes ClickHouse, finishes videos.

Its join state lives in ClickHouse, not in memory: results are stored as they arrive (idempotently), the
videos row holds what the producer published, and completeness is a count query. A killed aggregator
therefore rebuilds its state from what is stored when it restarts. Offsets are committed only after the
batch is written (its ClickHouse sink is flushed before offsets commit), and while ClickHouse is
unavailable the write is retried with backoff and consumption stops: nothing is dropped.

A video completes when every expected result arrived, or after `completion_timeout_s` with the missing
analyzers recorded. The aggregator then hands the video to the finalize group (VideoReady on the finalize
topic: the videos row and the stored results), which finds the shots (first phase, for the shot
analyzers) or builds the document (final phase) and sends it back (VideoDocument on the documents topic).
The aggregator stores the document and publishes the Reconstruction and VideoPart events: once per
completion, serialised per video; after a restart a completion may be published again, with the same
`completion_id` (output events are at-least-once, keyed by video id).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import msgpack
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from reelscope.analyzers.base import ShotAnalyzer
from reelscope.analyzers.registry import enabled_analyzers
from reelscope.infra.core.chunks import Assembler, patience, split
from reelscope.infra.core.kafka import send_all
from reelscope.infra.core.metrics import VIDEOS_FINISHED
from reelscope.infra.core.retry import is_dependency_failure, retry_with_backoff
from reelscope.infra.core.service import KafkaService, describe
from reelscope.infra.core.settings import Settings
from reelscope.infra.core.sink import BatchingSink
from reelscope.infra.core.topics import AGGREGATOR_GROUP, read_by
from reelscope.schemas.events import (
    AnalyzerResult,
    Event,
    ProcessorHeartbeat,
    Reconstruction,
    SchemaError,
    VideoDocument,
    VideoFailed,
    VideoFinished,
    VideoPart,
    VideoReady,
    VideoStarted,
    decode,
)
from reelscope.schemas.records import TERMINAL, Media, VideoStatus
from reelscope.sinks import reconstruction
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


SAME_SUBMISSION_S = 0.002
"""Submission times closer than this are one request (the store keeps milliseconds)."""

DONE = (VideoStatus.COMPLETE, VideoStatus.DEGRADED)


def duplicate_run(row: dict[str, Any], event: VideoStarted) -> bool:
    """A VideoStarted of the request that already finished this video, published again (at-least-once:
    a rebalance hands a published but uncommitted request to another ingest worker), not a resubmission:
    a resubmission (API, CLI) is a new request with a new `submitted_at`."""
    stored = row.get("submitted_at")
    return (
        row["status"] in TERMINAL
        and bool(event.submitted_at)
        and isinstance(stored, datetime)
        and abs(_epoch(stored) - event.submitted_at) < SAME_SUBMISSION_S
    )


def apply_lifecycle(row: dict[str, Any], event: Event) -> dict[str, Any]:
    """The videos row after a lifecycle event (events may arrive more than once, or out of order).

    A duplicate run of a finished video's request changes nothing: its VideoStarted is ignored, so the
    completion id stays, and a VideoFinished never touches a complete or degraded video (it is a duplicate
    run's, or redelivered); the duplicate's results are the same rows again."""
    row = dict(row)
    if isinstance(event, VideoStarted):
        if duplicate_run(row, event):
            log.info("video %s: its finished request was published again; ignored", event.video_id)
            return row
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
        if row["status"] in DONE:
            return row
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


class ResultSink(BatchingSink[Event]):
    """The aggregator's ClickHouse sink: the results and lifecycle events of a batch, in one write."""

    def __init__(self, aggregator: Aggregator) -> None:
        super().__init__("ClickHouse", aggregator.stop)
        self.aggregator = aggregator

    async def write(self, batch: list[Event]) -> None:
        results = [e for e in batch if isinstance(e, AnalyzerResult)]
        lifecycle = [e for e in batch if not isinstance(e, AnalyzerResult)]
        try:
            await self.aggregator.store.call(self.aggregator._write, results, lifecycle)
        except Exception as exc:
            if is_dependency_failure(exc):  # the API's /health reports it while it persists
                self.aggregator.write_error = describe(exc)[:300]
            raise
        self.aggregator.write_error = None


def completion_id(video: dict[str, Any]) -> str:
    """Stable id of one completion of a video: the same for every attempt, new when the id is resubmitted."""
    started = video.get("started_at") or video.get("submitted_at")
    seconds = int(_epoch(started)) if isinstance(started, datetime) else 0
    return hashlib.sha256(f"{video['video_id']}|{seconds}".encode()).hexdigest()[:16]


def _plain(video: dict[str, Any]) -> dict[str, Any]:
    """The videos row for the wire: datetimes as ISO text."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in video.items()}


class Aggregator(KafkaService):
    """Consumes results, lifecycle events and documents; one instance per partition set of the group."""

    component = "aggregator"
    max_records = 2000
    max_wait_ms = 200

    def __init__(self, settings: Settings, store: Store) -> None:
        super().__init__(settings, AGGREGATOR_GROUP, read_by(settings, AGGREGATOR_GROUP))
        self.store = store
        self.enabled = enabled_analyzers(settings.analyzers, settings)
        self.shot_analyzers = {n: c for n, c in self.enabled.items() if issubclass(c, ShotAnalyzer)}
        self.sink = ResultSink(self)
        self.sinks = [self.sink]
        self.documents = Assembler()
        self.locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.requested: dict[str, tuple[str, str, float]] = {}
        """Video -> (completion id, phase, when) of the last VideoReady sent for it."""
        self.finalized: dict[str, str] = {}
        """Video -> completion id whose output events are out."""
        # caches of what is stored, so most batches need no read query; ClickHouse stays the truth
        self.rows: dict[str, dict[str, Any]] = {}
        self.seen: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.write_error: str | None = None
        """The last ClickHouse write failure while it persists (the API's /health reports it)."""
        self.progressed: dict[str, float] = {}
        """Video -> when its last result arrived: the completion timeout runs from the later of this and
        published_at, so a long video whose results keep coming is not cut off."""
        self.group_progress: dict[str, float] = {}
        """Processor group -> when it last showed progress (a result of any video from one of its analyzers,
        a heartbeat of a batch in progress, or its lag shrank): a video whose missing results are owed by a
        moving group is not timed out."""
        self.group_lag: Callable[[], dict[str, int]] | None = None
        """The latest lag per group, where this process also publishes (serve wires the ingest worker's
        LagWatcher figures in); None elsewhere: results alone show progress."""
        self.lag_seen: dict[str, int] = {}
        self.deferred: set[str] = set()
        """Videos past their completion timeout kept open for a moving group (logged once each)."""

    async def setup(self) -> None:
        await retry_with_backoff(
            lambda: self.store.call(self.store.create_tables), "creating tables", self.stop
        )

    def configure(self, consumer: AIOKafkaConsumer) -> None:
        # range assignment gives one member the same partition of every topic: a video's lifecycle events,
        # results and documents (all keyed by video id) meet in the same process
        consumer._partition_assignment_strategy = (RangePartitionAssignor,)

    async def started(self) -> None:
        self.background.append(asyncio.create_task(self._check_open_videos()))

    async def handle(self, records: list[ConsumerRecord]) -> dict[TopicPartition, int]:
        touched: set[str] = set()
        documents: list[tuple[VideoDocument, bytes]] = []
        for record in records:
            event = await self.decoded(
                record, (AnalyzerResult, VideoDocument, ProcessorHeartbeat, *LIFECYCLE)
            )
            if event is None:
                continue
            if isinstance(event, ProcessorHeartbeat):
                self._note_heartbeat(event)
                continue
            if isinstance(event, VideoDocument):
                if whole := self.documents.add(record, event):
                    documents.append(whole)  # type: ignore[arg-type]
                continue
            self.sink.add(event)
            touched.add(event.video_id)
        await self.sink.flush()
        for first, body in documents:
            # retried here, not by redelivery: the parts of a document may span batches already handled
            try:
                await retry_with_backoff(
                    partial(self._store_document, first, body), "storing a document", self.stop
                )
            except Exception as exc:
                if is_dependency_failure(exc) or self.stop.is_set():
                    raise
                log.warning("document of %s cannot be stored: %s", first.video_id, describe(exc))
                await self._fail(first.video_id, exc)
        for video_id in touched:
            await self._maybe_complete(video_id)
        return self.documents.watermarks(patience(self.settings.aggregator.completion_timeout_s))

    async def reject(self, record: ConsumerRecord, exc: BaseException) -> None:
        """Dead-letter the message; a lifecycle event or document that cannot be stored fails its video."""
        await super().reject(record, exc)
        try:
            event = decode(record.value or b"")
        except SchemaError:
            return
        if isinstance(event, (VideoStarted, VideoFinished)):
            await self._fail(event.video_id, exc)

    async def _fail(self, video_id: str, exc: BaseException) -> None:
        """Fail the video with the exception as its reason: published, and stored now too, so the video's
        next events in this batch meet a failed video."""
        self.sink.add(await self.fail_video(video_id, describe(exc), "aggregator"))
        await self.sink.flush()

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
            if (cls := self.enabled.get(r.analyzer)) is not None:
                self.group_progress[cls.group] = time.time()

    async def _video(self, video_id: str) -> dict[str, Any] | None:
        video = self.rows.get(video_id)
        if video is None:
            video = await self.store.call(self.store.video, video_id)
            if video is not None:
                self.rows[video_id] = video
        return video

    async def _maybe_complete(self, video_id: str, timed_out: bool = False, recheck: bool = False) -> None:
        """Hand the video to the finalize group if all its expected results are stored (or it timed out,
        or failed), once per completion and phase.

        The in-memory tally decides when to ask ClickHouse; `recheck` (the periodic check, which also
        covers a restarted aggregator with an empty tally) always asks."""
        async with self.locks[video_id]:
            video = await self._video(video_id)
            if video is None or video["status"] in (VideoStatus.COMPLETE, VideoStatus.DEGRADED):
                return
            cid = completion_id(video)
            if self.finalized.get(video_id) == cid:
                return
            if video["status"] == VideoStatus.FAILED:
                if await self.store.call(self.store.stored_completion, video_id) == cid:
                    self.finalized[video_id] = cid
                else:
                    await self._request(video, "final", video["error"] or "failed")
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
            shots = video["status"] == VideoStatus.PUBLISHED and self.shot_analyzers and video["has_video"]
            await self._request(video, "shots" if shots else "final")

    async def _request(self, video: dict[str, Any], phase: str, failed_reason: str | None = None) -> None:
        """Send VideoReady with the row and the stored results, unless this completion's phase was asked
        less than `patience` ago (the finalize group's answer is on its way)."""
        video_id, cid = video["video_id"], completion_id(video)
        phase_key = "failed" if failed_reason else phase
        last = self.requested.get(video_id)
        if (
            last
            and last[:2] == (cid, phase_key)
            and time.monotonic() - last[2] < patience(self.settings.aggregator.completion_timeout_s)
        ):
            return
        rows = await self.store.call(self.store.results, video_id)
        body = msgpack.packb(
            {"video": _plain(video), "results": rows, "failed_reason": failed_reason}, use_bin_type=True
        )
        pieces = split(body, self.settings.kafka.max_event_bytes)
        events = [
            VideoReady(video_id=video_id, completion_id=cid, phase=phase, part=i, parts=len(pieces), body=p)  # type: ignore[arg-type]
            for i, p in enumerate(pieces)
        ]
        await send_all(self.producer, [(self.settings.topics.finalize, e) for e in events])
        self.requested[video_id] = (cid, phase_key, time.monotonic())

    async def _store_document(self, first: VideoDocument, body: bytes) -> None:
        """Store what the finalize group built, once per completion: the shots phase's expected counts, or
        the final document (then its output events are published and the video is finished)."""
        video_id = first.video_id
        async with self.locks[video_id]:
            video = await self._video(video_id)
            if video is None or completion_id(video) != first.completion_id:
                log.info("document for %s is of an earlier completion; dropped", video_id)
                return
            if first.phase == "shots":
                if video["status"] == VideoStatus.PUBLISHED:
                    await self._describing(video, msgpack.unpackb(body)["expected"])
                return
            if (
                video["status"] in (VideoStatus.COMPLETE, VideoStatus.DEGRADED)
                or self.finalized.get(video_id) == first.completion_id
            ):
                return
            doc = json.loads(body)
            if await self.store.call(self.store.stored_completion, video_id) == first.completion_id:
                # stored and its events out, but a crash came before the row said so: finish the row only
                if video["status"] not in TERMINAL:
                    await self.store.call(self._mark_finished, video, doc)
                self.finalized[video_id] = first.completion_id
                return
            if video["status"] == VideoStatus.FAILED and doc["status"] != VideoStatus.FAILED:
                return  # built before the video failed; the failed document is on its way
            await self._finish(video, doc, first.completion_id)

    async def _describing(self, video: dict[str, Any], added: dict[str, int]) -> None:
        """Second phase: the shot analyzers were asked for one result per shot plus the description."""
        expected = {**json.loads(video["expected"] or "{}"), **added}
        # published_at restarts the completion clock for the second phase
        row = {
            **video,
            "status": VideoStatus.DESCRIBING,
            "expected": json.dumps(expected),
            "published_at": now(),
        }
        await self.store.call(self.store.upsert_video, row)
        self.rows[video["video_id"]] = row

    async def _finish(self, video: dict[str, Any], doc: dict[str, Any], cid: str) -> None:
        """Write the document's rows, publish its events, then mark the video finished (so a crash in
        between publishes again after the restart rather than never)."""
        video_id = video["video_id"]

        def write_rows() -> None:
            stamp = now()
            self.store.replace_segments([segment_row(video_id, s, stamp) for s in doc["segments"]])
            self.store.write_details(video_id, doc)

        def mark_finished() -> None:
            document = json.dumps(doc, separators=(",", ":"))
            self.store.save_reconstruction(video_id, doc["status"], doc["format_version"], document)
            self._mark_finished(video, doc)

        await self.store.call(write_rows)
        await send_all(self.producer, self._outputs(doc, cid))
        await self.store.call(mark_finished)
        self.finalized[video_id] = cid
        for cache in (self.rows, self.seen, self.requested, self.progressed):
            cache.pop(video_id, None)
        self.deferred.discard(video_id)
        VIDEOS_FINISHED.labels(doc["status"]).inc()
        log.info("video %s %s", video_id, doc["status"])

    def _mark_finished(self, video: dict[str, Any], doc: dict[str, Any]) -> None:
        """The videos row says finished, with the document's status and completion time (store thread)."""
        completed_iso = (doc.get("timings") or {}).get("completed_at")
        completed = datetime.fromisoformat(completed_iso) if completed_iso else now()
        self.store.upsert_video({**video, "status": doc["status"], "completed_at": completed})

    def _outputs(self, doc: dict[str, Any], cid: str) -> list[tuple[str, Event]]:
        topics, limit, video_id = self.settings.topics, self.settings.kafka.max_event_bytes, doc["video_id"]
        parts: list[tuple[str, Event]] = [
            (
                topics.part(p),
                VideoPart(
                    video_id=video_id,
                    part=p,
                    status=doc["status"],
                    document=reconstruction.part_for_event(doc, p, limit),
                    completion_id=cid,
                ),
            )
            for p in topics.PARTS
            if doc.get(p)
        ]
        document = reconstruction.for_event(doc, limit)
        whole = Reconstruction(video_id=video_id, status=doc["status"], document=document, completion_id=cid)
        return [(topics.reconstructions, whole), *parts]

    async def _check_open_videos(self) -> None:
        """Periodically finish videos whose results are all in (also after a restart) or timed out."""
        timeout = self.settings.aggregator.completion_timeout_s
        tick = 0
        while not self.stop.is_set():
            await asyncio.sleep(self.settings.aggregator.check_interval_s)
            tick += 1
            try:
                self._note_lag()
                videos = await self.store.call(self.store.open_videos)
                if tick % 10 == 1:  # failed, but the finalize round trip was lost (a broker lost its data)
                    videos += await self.store.call(self._failed_without_document)
                for video in videos:
                    published = video.get("published_at")
                    since = (
                        max(_epoch(published), self.progressed.get(video["video_id"], 0.0))
                        if published
                        else 0.0
                    )
                    late = published is not None and time.time() - since > timeout
                    if late and await self._owed_by_moving_group(video, timeout):
                        continue
                    if video["status"] == VideoStatus.FAILED:
                        await self._maybe_complete(video["video_id"])
                        continue
                    if published is None and video["status"] == VideoStatus.PROCESSING:
                        await self._fail_if_stalled(video, timeout * STALLED_AFTER)
                        continue
                    # count in ClickHouse for videos this process has no tally of (stored before a
                    # restart), and now and then for all, since a tally started mid-video stays short
                    recheck = video["video_id"] not in self.seen or tick % 5 == 0
                    await self._maybe_complete(video["video_id"], timed_out=late, recheck=recheck)
            except Exception as exc:
                log.warning("open-video check failed: %s", exc)

    def _note_heartbeat(self, beat: ProcessorHeartbeat) -> None:
        """A group busy with a batch that holds this video's items is moving, and so is the video: a batch
        shows no result and moves no offset until it ends, and one can outlast the timeout. Not past
        `max_busy_s` of one batch: a hung analyzer's process still beats, and its group is stuck."""
        if beat.busy_s > self.settings.aggregator.max_busy_s:
            log.warning(
                "group %s (%s): one batch busy for %.0f s, heartbeat not counted as progress",
                beat.group,
                beat.member,
                beat.busy_s,
            )
            return
        at = time.time()  # arrival, as for results: a processor's clock may be off
        self.group_progress[beat.group] = at
        if (
            beat.video_id in self.rows or beat.video_id in self.progressed
        ):  # an open video, not a finished one
            self.progressed[beat.video_id] = at

    def _note_lag(self) -> None:
        """A group whose lag shrank since the last reading committed past items: it is moving."""
        if self.group_lag is None:
            return
        for group, lag in self.group_lag().items():
            if lag < self.lag_seen.get(group, lag):
                self.group_progress[group] = time.time()
            self.lag_seen[group] = lag

    async def _owed_by_moving_group(self, video: dict[str, Any], timeout: float) -> bool:
        """Whether a group that still owes this video results made progress within the timeout.

        Such a group is working through a backlog that holds the video's items (under overload a video's
        results can come further apart than the timeout); one with no progress for the timeout is dead or
        stuck, and the video is timed out (its document's warnings name each missing analyzer and group)."""
        if video["status"] not in (VideoStatus.PUBLISHED, VideoStatus.DESCRIBING):
            return False
        video_id = video["video_id"]
        expected: dict[str, int] = json.loads(video["expected"] or "{}")
        counts = await self.store.call(self.store.result_counts, video_id)
        owing = {
            cls.group
            for name, n in expected.items()
            if counts.get(name, (0, 0))[0] < n and (cls := self.enabled.get(name)) is not None
        }
        moving = sorted(g for g in owing if time.time() - self.group_progress.get(g, 0.0) <= timeout)
        if moving and video_id not in self.deferred:
            self.deferred.add(video_id)
            log.info("video %s: past its completion timeout, kept open while %s progress", video_id, moving)
        return bool(moving)

    def _failed_without_document(self) -> list[dict[str, Any]]:
        db = self.store.db
        return self.store.rows(
            f"SELECT * FROM {db}.videos FINAL WHERE status = %(s)s "
            f"AND video_id NOT IN (SELECT video_id FROM {db}.reconstructions)",
            s=VideoStatus.FAILED,
        )

    def forget(self, video_ids: list[str]) -> None:
        """Drop what this process cached of these videos (recovery reset their stored rows)."""
        for video_id in video_ids:
            for cache in (self.rows, self.seen, self.requested, self.progressed, self.finalized):
                cache.pop(video_id, None)

    async def _fail_if_stalled(self, video: dict[str, Any], after_s: float) -> None:
        """A started video whose finished event never came (its producer, or the broker's copy of its
        events, is gone) fails once neither its start nor any of its results is newer than after_s."""
        video_id = video["video_id"]
        began = video.get("started_at") or video.get("submitted_at")
        since = max(_epoch(began) if isinstance(began, datetime) else 0.0, self.progressed.get(video_id, 0.0))
        if time.time() - since <= after_s:
            return
        sql = f"SELECT max(updated_at) FROM {self.store.db}.results WHERE video_id = %(v)s"
        last = await self.store.call(partial(self.store.scalar, sql, v=video_id))
        if isinstance(last, datetime) and time.time() - _epoch(last) <= after_s:
            self.progressed[video_id] = _epoch(last)
            return
        reason = f"no finished event and no result for {after_s:.0f} s: the producer or the broker lost it"
        log.warning("video %s: %s", video_id, reason)
        await self.fail_video(video_id, reason, "aggregator")


STALLED_AFTER = 5
"""Completion timeouts after which a started video that is not published fails (see _fail_if_stalled)."""


def _epoch(value: datetime) -> float:
    """Seconds since the epoch; ClickHouse may hand back naive datetimes, which are UTC here."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
