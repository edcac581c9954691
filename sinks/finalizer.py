"""The finalize group: builds each finished video's document once, outside the serve process.

Triggered by the aggregator's VideoReady (the videos row and the stored results; in parts when large, see
infra/core/chunks.py), it runs every analyzer's video summary, the "about" part (the keyword embedding
model, loaded once per process) and the reconstruction, and sends the document back to the aggregator as a
VideoDocument (on the documents topic), which stores it and publishes the output events. In the first phase
(phase `shots`) it finds the shots instead and asks the shot analyzers for captions (ShotsReady). The
request's offset is committed only after its answer is acknowledged, so a killed worker's successor builds
it again; the aggregator stores one answer per completion.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from functools import partial
from typing import Any

import msgpack
from aiokafka import ConsumerRecord, TopicPartition
from reelscope.analyzers.base import ShotAnalyzer
from reelscope.analyzers.registry import enabled_analyzers
from reelscope.infra.core.chunks import Assembler, patience, split
from reelscope.infra.core.kafka import send_all
from reelscope.infra.core.retry import retry_with_backoff
from reelscope.infra.core.service import KafkaService, describe
from reelscope.infra.core.settings import Settings
from reelscope.infra.core.topics import FINALIZE, group_id, read_by
from reelscope.schemas.events import Event, ShotsReady, VideoDocument, VideoReady
from reelscope.sinks import reconstruction
from reelscope.sinks.about import embedding_model

log = logging.getLogger(__name__)


class Finalizer(KafkaService):
    """Consumes VideoReady requests and answers each with a VideoDocument (and ShotsReady in phase one)."""

    component = f"group:{FINALIZE}"
    max_records = 64
    max_wait_ms = 200

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, group_id(FINALIZE), read_by(settings, group_id(FINALIZE)))
        self.group = FINALIZE
        self.enabled = enabled_analyzers(settings.analyzers, settings)
        self.shot_analyzers = {n: c for n, c in self.enabled.items() if issubclass(c, ShotAnalyzer)}
        self.requests = Assembler()

    async def setup(self) -> None:
        # the keyword/topic embedding model loads once, at start, not during the first video
        await asyncio.to_thread(embedding_model)

    async def handle(self, records: list[ConsumerRecord]) -> dict[TopicPartition, int]:
        for record in records:
            event = await self.decoded(record, VideoReady)
            if event is None:
                continue
            if whole := self.requests.add(record, event):
                first, body = whole
                sends = await asyncio.to_thread(self.answer, first, msgpack.unpackb(body, raw=False))  # type: ignore[arg-type]
                # retried here, not by redelivery: the parts of a request may span batches already handled
                await retry_with_backoff(
                    partial(send_all, self.producer, sends), "sending a document", self.stop
                )
        return self.requests.watermarks(patience(self.settings.aggregator.completion_timeout_s))

    async def reject(self, record: ConsumerRecord, exc: BaseException) -> None:
        """A request that cannot be answered fails its video (the aggregator then asks for a failed
        document, which needs no summaries)."""
        await super().reject(record, exc)
        if record.key:
            await self.fail_video(record.key.decode("utf-8", "replace"), describe(exc), FINALIZE)

    def answer(self, request: VideoReady, ready: dict[str, Any]) -> list[tuple[str, Event]]:
        """What to send for one request (in a worker thread: summaries can take a while)."""
        video, rows, reason = ready["video"], ready["results"], ready.get("failed_reason")
        segment_s = self.settings.aggregator.segment_s
        build = partial(reconstruction.build, max_span_s=self.settings.producer.max_duration_s)
        if request.phase == "shots" and not reason:
            doc = build(video, rows, self.enabled, segment_s, None, False)
            if doc["shots"]:
                return [
                    (self.settings.topics.shots, shots_event(doc, video)),
                    *self.document(request, "shots", doc),
                ]
        try:
            doc = build(video, rows, self.enabled, segment_s, reason)
        except Exception as exc:  # a summary that cannot be built fails the video with the reason, once
            log.exception("finalize: building %s failed", request.video_id)
            doc = build(video, [], self.enabled, segment_s, f"finalize: {describe(exc)}")
        completed = video.get("completed_at") or datetime.now(tz=UTC).isoformat()
        doc["timings"] = {
            "submitted_at": video.get("submitted_at"),
            "started_at": video.get("started_at"),
            "published_at": video.get("published_at"),
            "completed_at": completed,
        }
        doc["completion_id"] = request.completion_id
        return self.document(request, "final", doc)

    def document(self, request: VideoReady, phase: str, doc: dict[str, Any]) -> list[tuple[str, Event]]:
        """The answer as VideoDocument parts: phase `shots` carries the shot analyzers' expected counts."""
        if phase == "shots":
            # one result per shot, plus the whole-video description from those that write one
            expected = {n: len(doc["shots"]) + int(c.describes_video) for n, c in self.shot_analyzers.items()}
            body = msgpack.packb({"expected": expected})
        else:
            body = json.dumps(doc, separators=(",", ":")).encode()
        pieces = split(body, self.settings.kafka.max_event_bytes)
        return [
            (
                self.settings.topics.documents,
                VideoDocument(
                    video_id=request.video_id,
                    completion_id=request.completion_id,
                    phase=phase,  # type: ignore[arg-type]
                    part=i,
                    parts=len(pieces),
                    body=piece,
                ),
            )
            for i, piece in enumerate(pieces)
        ]


def shots_event(doc: dict[str, Any], video: dict[str, Any]) -> ShotsReady:
    """Second phase for the shot analyzers: the shots with what was found in each, transcript and text."""
    return ShotsReady(
        video_id=doc["video_id"],
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
