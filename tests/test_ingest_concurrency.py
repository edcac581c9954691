"""The ingest worker publishes several videos at once (issue 18, time to first result), on a real broker:
a second request's first frame is out before the first video is through, each video's first seconds go
before the others' later seconds, the commit never passes a video not fully published, and a kill -9 of
serve mid-publish of two videos loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from reelscope.infra.broker import create_topics
from reelscope.infra.cli import fetch
from reelscope.infra.core.ingest import request_for_path
from reelscope.infra.core.settings import Settings
from reelscope.infra.core.topics import PRODUCER_GROUP
from reelscope.infra.stack import down, running, spawn, up
from reelscope.producers.publisher import FirstSecondsFirst, IngestWorker
from reelscope.schemas.events import Frame, VideoFinished, decode

from tests.media import cut_clip
from tests.reliability.test_faults import stored_counts, wait_progress
from tests.test_pipeline import _push, wait_done

pytestmark = [pytest.mark.integration]


async def records(settings: Settings, topic: str, until: Any, timeout_s: float = 60) -> list[Any]:
    """(event, broker timestamp ms) from the start of a topic until `until(events)` holds."""
    consumer = AIOKafkaConsumer(
        topic, **settings.kafka.client_kwargs(), group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline and not until(out):
            batch = await consumer.getmany(timeout_ms=500)
            out += [(decode(r.value), r.timestamp) for part in batch.values() for r in part]
    finally:
        await consumer.stop()
    return out


def finished(events: list[Any], count: int) -> bool:
    return sum(isinstance(e, VideoFinished) for e, _ in events) >= count


def test_second_video_starts_before_the_first_is_published(broker: str, tmp_path: Path) -> None:
    """Two requests in one partition: the second video's first frame is on the frames topic before the
    first video's finished event (one after another, it came after), and once both are through the ingest
    group has committed past both."""
    settings = Settings(
        kafka={"bootstrap_servers": broker, "session_timeout_ms": 6000},
        topics={"prefix": f"conc{uuid.uuid4().hex[:6]}.", "partitions": 1},
        # no group consumes here: the event cap, not seconds of a group's work (none is measured)
        producer={"allowed_roots": [str(tmp_path)], "concurrent_videos": 2, "max_queue_s": 0},
        analyzers=["scene"],
    )
    long = cut_clip(tmp_path / "long.mp4", frames=500, fps=25, size=(160, 90))
    short = cut_clip(tmp_path / "short.mp4", frames=50, fps=25, size=(160, 90))

    async def scenario() -> tuple[list[Any], list[Any], int | None]:
        await create_topics(settings)
        await _push(
            settings,
            [request_for_path(str(long), video_id="first"), request_for_path(str(short), video_id="second")],
        )
        worker = IngestWorker(settings)
        task = asyncio.create_task(worker.run())
        try:
            lifecycle = await records(settings, settings.topics.lifecycle, lambda evs: finished(evs, 2))
            frames = await records(settings, settings.topics.frames, lambda evs: len(evs) >= 550)
            committed = None
            for _ in range(100):  # the commit follows within a recheck of the held offsets
                probe = AIOKafkaConsumer(**settings.kafka.client_kwargs(), group_id=PRODUCER_GROUP)
                await probe.start()
                committed = await probe.committed(TopicPartition(settings.topics.ingest, 0))
                await probe.stop()
                if committed == 2:
                    break
                await asyncio.sleep(0.2)
        finally:
            worker.stop.set()
            await asyncio.wait_for(task, timeout=30)
        return lifecycle, frames, committed

    lifecycle, frames, committed = asyncio.run(scenario())
    first_done = next(ts for e, ts in lifecycle if isinstance(e, VideoFinished) and e.video_id == "first")
    second_first_frame = next(ts for e, ts in frames if isinstance(e, Frame) and e.video_id == "second")
    assert second_first_frame < first_done
    assert {e.video_id: e.frames_published for e, _ in lifecycle if isinstance(e, VideoFinished)} == {
        "first": 500,
        "second": 50,
    }
    assert committed == 2


def test_first_seconds_hold_later_seconds_back() -> None:
    """The gate: a video past its first seconds waits while another is within its own, and goes on once
    that one leaves (leaving wakes every waiter)."""

    async def scenario() -> list[str]:
        gate = FirstSecondsFirst(2.0)
        order: list[str] = []

        async def late() -> None:
            await gate.clear()
            order.append("late")

        gate.enter()
        waiter = asyncio.create_task(late())
        await asyncio.sleep(0)
        order.append("early")
        await gate.leave()
        await waiter
        await gate.clear()  # nobody early: returns at once
        return order

    assert asyncio.run(scenario()) == ["early", "late"]


def test_kill_9_of_serve_while_two_videos_publish_loses_nothing(env_settings: Any, tmp_path: Path) -> None:
    """serve (the ingest worker) is killed while both videos are mid-publish (held to the light group's
    pace by a small lag bound): neither request was committed, both are published again after the restart,
    and every expected result is stored once."""
    settings = env_settings(
        REELSCOPE_ANALYZERS='["scene", "color", "loudness"]',
        REELSCOPE_PRODUCER__MAX_LAG_EVENTS="40",
        REELSCOPE_PRODUCER__MAX_IN_FLIGHT="16",
        REELSCOPE_PRODUCER__CONCURRENT_VIDEOS="2",
        REELSCOPE_TOPICS__PARTITIONS="1",
    )
    ids = ("victim_a", "victim_b")
    clips = [
        cut_clip(
            tmp_path / f"{v}.mp4", cut_frame=300, frames=600, fps=25, size=(320, 180), tone_s=15, silence_s=9
        )
        for v in ids
    ]
    up(settings, timeout_s=120)
    try:
        asyncio.run(
            _push(settings, [request_for_path(str(c), video_id=v) for c, v in zip(clips, ids, strict=True)])
        )
        for video in ids:  # both are being published: their first seconds are analyzed
            wait_progress(settings, video, "scene", 30, timeout_s=120)
        before = {v: fetch(settings, f"/videos/{v}") for v in ids}
        os.kill(running(settings)["serve"], signal.SIGKILL)
        spawn(settings, "serve", ["serve"])
        docs = {v: wait_done(settings, v, timeout_s=240) for v in ids}
    finally:
        down(settings)
    for video in ids:
        assert not before[video]["expected"], f"{video} was fully published before the kill"
        counts, duplicates = stored_counts(settings, video)
        expected = {name: state["expected"] for name, state in docs[video]["analyzers"].items()}
        assert docs[video]["status"] == "complete", docs[video]["analyzers"]
        assert counts == expected and expected["scene"] == 600
        assert duplicates >= 0


def test_a_request_handed_back_after_its_publish_is_not_published_again(tmp_path: Path) -> None:
    """A rebalance between the end of a publish and its commit hands the request back to the same worker
    (seen in the API tests: the finished video went back to processing and completed twice)."""
    from aiokafka import ConsumerRecord

    settings = Settings(kafka={"bootstrap_servers": "127.0.0.1:9"}, topics={"prefix": "memo."})
    worker = IngestWorker(settings)
    request = request_for_path(str(tmp_path / "a.mp4"), video_id="a")
    published: list[str] = []

    async def decoded(record: Any, model: Any) -> Any:
        return request

    async def publish_once(record: Any, req: Any) -> None:
        published.append(req.video_id)

    worker.decoded = decoded  # type: ignore[method-assign]
    worker._publish_once = publish_once  # type: ignore[method-assign]
    record = ConsumerRecord(
        "memo.ingest",
        0,
        7,
        0,
        0,
        b"a",
        b"",
        None,
        0,
        0,
        [],  # type: ignore[arg-type]
    )

    async def scenario() -> dict[TopicPartition, int]:
        assert await worker.handle([record]) == {TopicPartition("memo.ingest", 0): 7}  # held while publishing
        await asyncio.gather(*(t for t in worker.pending.values() if t is not None))
        return await worker.handle([record])  # handed back by a rebalance

    assert asyncio.run(scenario()) == {} and published == ["a"]
