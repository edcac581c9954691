"""The processor of shot analyzers (the describe group): captions every shot, batching shots of many videos.

It keeps each video's sampled frames (as the JPEG bytes they arrived in) until the aggregator says, on the
shots topic, where the shots are; then it picks K frames across each shot, captions all ready shots of the
batch in one go, writes the whole-video description, and forgets the video. Offsets of a video's frames and
of its pending shots event are committed only once its captions are acknowledged, so a killed process
replays exactly the videos it had not finished.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from reelscope.analyzers.base import Analyzer, ShotAnalyzer, ShotItem
from reelscope.infra.core.kafka import send_all
from reelscope.infra.core.metrics import RESULT_LATENCY, RESULTS_OUT
from reelscope.infra.core.settings import Settings
from reelscope.schemas.events import AnalyzerResult, Frame, ShotsReady
from reelscope.stream_processors.runtime import GroupProcessor, frame_image, make_result

log = logging.getLogger(__name__)

DESCRIPTION_KEY = "video"
AWAIT_SHOTS_FACTOR = 10
"""A complete video's frames wait this many completion timeouts for its shots event: the aggregator sends
it only once every other result is in, which on a loaded machine can take minutes after the last frame."""


@dataclass
class VideoFrames:
    """One video's frames for the shot analyzers, and where they came from (for the commit watermark)."""

    frames: list[Frame] = field(default_factory=list)
    first_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    complete: bool = False
    seen: float = field(default_factory=time.monotonic)
    """When its last frame arrived (monotonic): idleness, not length, decides when it is given up."""


@dataclass
class Pending:
    event: ShotsReady
    tp: TopicPartition
    offset: int
    published: float
    """The shots event's broker timestamp (s): the group's latency runs from it to the captions' ack."""
    since: float = field(default_factory=time.monotonic)


def pick(frames: list[Frame], start_s: float, end_s: float, k: int) -> list[Frame]:
    """k frames spread across [start_s, end_s) (fewer if the shot has fewer); the nearest one if none."""
    inside = [f for f in frames if start_s <= f.pts_s < end_s]
    if not inside:
        middle = (start_s + end_s) / 2
        return [min(frames, key=lambda f: abs(f.pts_s - middle))] if frames else []
    if len(inside) <= k:
        return inside
    return [inside[int((i + 0.5) * len(inside) / k)] for i in range(k)]


class ShotProcessor(GroupProcessor):
    """GroupProcessor for analyzers whose items are shots."""

    schedulable = False

    def __init__(self, settings: Settings, group: str, analyzers: list[Analyzer[Any]] | None = None) -> None:
        super().__init__(settings, group, analyzers)
        self.shot_analyzers = [a for a in self.analyzers.values() if isinstance(a, ShotAnalyzer)]
        if len(self.shot_analyzers) != len(self.analyzers):
            raise ValueError(f"group {group!r} mixes shot analyzers with frame or audio analyzers")
        self.videos: dict[str, VideoFrames] = {}
        self.pending: dict[str, Pending] = {}
        self.begun: set[str] = set()

    async def handle(self, records: list[ConsumerRecord]) -> dict[TopicPartition, int] | None:
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            event = await self.decoded(record, (Frame, ShotsReady))
            if event is None:
                continue
            if isinstance(event, ShotsReady):
                self.pending[event.video_id] = Pending(event, tp, record.offset, record.timestamp / 1000)
                continue
            assert isinstance(event, Frame)
            if event.first:
                self.begun.add(event.video_id)
                self.videos[event.video_id] = VideoFrames()
            if event.video_id not in self.begun:
                continue  # the tail of a video finished before a restart
            video = self.videos.setdefault(event.video_id, VideoFrames())
            video.seen = time.monotonic()
            video.first_offsets.setdefault(tp, record.offset)
            new = not video.frames or event.index > video.frames[-1].index  # not a batch handled again
            if new and self.analyzers.keys() & set(event.targets):
                video.frames.append(event)
            video.complete = video.complete or event.final
        ready = [p for vid, p in self.pending.items() if self.videos.get(vid, VideoFrames()).complete]
        if ready:
            async with self.heartbeat.beating(self.producer, (p.event.video_id for p in ready)):
                results = await asyncio.to_thread(self.caption, [p.event for p in ready])
            await send_all(self.producer, [(self.settings.topics.results, r) for r in results])
            acked = time.time()
            for result in results:
                RESULTS_OUT.labels(self.group, result.analyzer).inc()
            for p in ready:
                RESULT_LATENCY.labels(self.group).observe(max(0.0, acked - p.published))
                self.pending.pop(p.event.video_id, None)
                self.videos.pop(p.event.video_id, None)
                self.begun.discard(p.event.video_id)
        return self.watermarks()

    def watermarks(self) -> dict[TopicPartition, int]:
        """Hold back offsets of unfinished videos' frames and of shots events still waiting for frames.

        A video is given up when it is idle, never because it is long: frames that stopped arriving for
        the completion timeout before the final one (its producer died), a shots event whose frames stopped
        as long, or a complete video whose shots event has not come for AWAIT_SHOTS_FACTOR timeouts (the
        aggregator finished it without captions)."""
        now = time.monotonic()
        limit = self.settings.aggregator.completion_timeout_s
        for vid, p in list(self.pending.items()):
            video = self.videos.get(vid)
            if now - max(p.since, video.seen if video else 0.0) > limit:
                log.warning(
                    "group %s: frames of %s stopped before the last one; dropping its shots", self.group, vid
                )
                del self.pending[vid]
        for vid, video in list(self.videos.items()):
            idle = now - video.seen
            if vid in self.pending or idle <= (limit * AWAIT_SHOTS_FACTOR if video.complete else limit):
                continue
            log.warning(
                "group %s: dropping the frames of %s (%s, idle %.0f s)",
                self.group,
                vid,
                "no shots event came" if video.complete else "its last frame never came",
                idle,
            )
            del self.videos[vid]
            self.begun.discard(vid)
        held: dict[TopicPartition, int] = {}
        for video in self.videos.values():
            for tp, offset in video.first_offsets.items():
                held[tp] = min(held.get(tp, offset), offset)
        for p in self.pending.values():
            held[p.tp] = min(held.get(p.tp, p.offset), p.offset)
        return held

    def caption(self, ready: list[ShotsReady]) -> list[AnalyzerResult]:
        """Caption every shot of the ready videos in shared batches, then describe each video."""
        results: list[AnalyzerResult] = []
        for analyzer in self.shot_analyzers:
            name = analyzer.name
            k = analyzer.frames_per_shot
            items: list[ShotItem] = []
            for event in ready:
                frames = [f for f in self.videos[event.video_id].frames if name in f.targets]
                for shot in event.shots:
                    chosen = pick(frames, shot["start_s"], shot["end_s"], k)
                    images = tuple(frame_image(f) for f in chosen)
                    items.append(
                        ShotItem(
                            event.video_id,
                            shot["index"],
                            shot["start_s"],
                            shot["end_s"],
                            images,
                            tuple(f.pts_s for f in chosen),
                            shot.get("context", {}),
                        )
                    )
            t0 = time.monotonic()
            payloads = self.analyze_with_retries(analyzer, list(items))
            log.info(
                "group %s: %s captioned %d shots of %d videos in %.2f s",
                self.group,
                name,
                len(items),
                len(ready),
                time.monotonic() - t0,
            )
            model, provenance = analyzer.describe_model()
            by_video: dict[str, list[dict[str, Any]]] = {}
            for item, (payload, error) in zip(items, payloads, strict=True):
                span = (item.start_s, item.end_s)
                key = f"s{item.index:04d}"
                results.append(
                    make_result(item.video_id, name, key, (model, provenance), span, payload, error)
                )
                if payload.get("caption"):
                    by_video.setdefault(item.video_id, []).append(
                        {"start_s": item.start_s, "end_s": item.end_s, "caption": payload["caption"]}
                    )
            for event in ready:
                if not analyzer.describes_video:
                    continue
                try:
                    payload, error = (
                        analyzer.describe_video(
                            by_video.get(event.video_id, []), event.transcript, event.texts, event.meta
                        ),
                        None,
                    )
                except Exception as exc:  # the captions stand; the description is reported missing
                    payload, error = {}, f"description: {type(exc).__name__}: {exc}"
                end = max((s["end_s"] for s in event.shots), default=0.0)
                described_by = (payload.get("model", model), payload.get("provenance", provenance))
                results.append(
                    make_result(
                        event.video_id, name, DESCRIPTION_KEY, described_by, (0.0, end), payload, error
                    )
                )
        return results


def processor_for(settings: Settings, group: str) -> GroupProcessor:
    """The processor a group needs: ShotProcessor when its analyzers take shots."""
    from reelscope.analyzers.registry import groups

    classes = groups(settings.analyzers, settings).get(group, [])
    if any(cls.input == "shot" for cls in classes):
        return ShotProcessor(settings, group)
    return GroupProcessor(settings, group)
