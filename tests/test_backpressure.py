"""Latency-aware backpressure (issue 18, per-segment p95 < 5 s), on a real broker: the producer's bound on
a group is seconds of its queued work (lag / the rate it consumed at while busy), a stateful group's lag is
read from the offsets it has processed (its own commits wait for its streams to end), and the API's live
poller reads the store when the aggregator's sink wrote, not a poll interval later."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from reelscope.infra.broker import create_topics
from reelscope.infra.core.ingest import request_for_path
from reelscope.infra.core.kafka import make_producer
from reelscope.infra.core.settings import Settings
from reelscope.infra.core.sink import BatchingSink
from reelscope.infra.core.topics import group_id
from reelscope.infra.sample_media import cut_clip
from reelscope.producers.backpressure import RATE_WINDOW_S, LagWatcher, Rate
from reelscope.producers.publisher import publish_video
from reelscope.sinks.aggregator import empty_video
from reelscope.sinks.live import ProgressHub
from reelscope.sinks.store import Store
from reelscope.stream_processors.runtime import Progress

ANALYZERS = ["scene", "loudness", "transcription"]
"""light and audio (loudness) are stateless; speech is stateful (transcription: commits held until a stream
ends)."""


def test_rate_is_measured_only_while_the_group_has_work() -> None:
    rate = Rate()
    rate.add(0.0, 0, lag=0)  # idle
    rate.add(100.0, 0, lag=50)  # work arrived: idle time before it must not count
    assert rate.per_s is None
    rate.add(101.0, 20, lag=30)
    assert rate.per_s == 20.0
    rate.add(103.0, 20, lag=10)
    assert rate.per_s == pytest.approx(40 / 3)
    rate.add(104.0, 10, lag=0)  # caught up: measured afresh from here
    rate.add(105.0, 0, lag=40)
    assert rate.per_s == pytest.approx(40 / 3)  # the last figure stands until something is consumed
    rate.add(104.0 + RATE_WINDOW_S + 1, 0, lag=40)
    assert rate.per_s == 0.0  # busy for a whole window and nothing consumed


def test_the_bound_is_seconds_of_work_between_the_floor_and_the_cap() -> None:
    watcher = LagWatcher(
        Settings(
            analyzers=ANALYZERS, producer={"max_queue_s": 3.0, "min_lag_events": 32, "max_lag_events": 900}
        )
    )
    assert watcher.bound("light") == 32  # no rate yet: the floor
    watcher.rates["light"].per_s = 5.0  # a slow group: 15 events of work in 3 s, the floor wins
    assert watcher.bound("light") == 32
    watcher.rates["light"].per_s = 100.0
    assert watcher.bound("light") == 300
    watcher.rates["light"].per_s = 1000.0
    assert watcher.bound("light") == 900  # the event cap
    events_only = LagWatcher(
        Settings(analyzers=ANALYZERS, producer={"max_queue_s": 0, "max_lag_events": 900})
    )
    events_only.rates["light"].per_s = 5.0
    assert events_only.bound("light") == 900
    assert set(watcher.throttling) == {"light", "audio", "speech"}  # the stateful one too (its progress)
    assert watcher.progress == {"speech"}  # only the stateful group's lag is read from its progress
    unscheduled = LagWatcher(Settings(analyzers=ANALYZERS, batch={"schedule": False}))
    assert sorted(unscheduled.throttling) == ["audio", "light"]  # no progress commits without the scheduler


@pytest.mark.integration
def test_the_producer_waits_for_the_slowest_groups_processed_offsets(broker: str) -> None:
    """Every group lags 100 events (no rate known: the bound is the 32-event floor), the producer waits;
    the light and audio groups commit and the speech group records progress (its own commit held at 0, as a
    stateful group's is while a stream is open): the wait ends, and the light group's rate is known."""
    settings = Settings(
        kafka={"bootstrap_servers": broker},
        topics={"prefix": f"bp{uuid.uuid4().hex[:6]}.", "partitions": 1},
        producer={"max_queue_s": 3.0, "min_lag_events": 32},
        analyzers=ANALYZERS,  # the floor of 32 events named here: the test's figures depend on it
    )
    frames, audio = TopicPartition(settings.topics.frames, 0), TopicPartition(settings.topics.audio, 0)

    async def commit(group: str, offsets: dict[TopicPartition, int]) -> None:
        client = AIOKafkaConsumer(**settings.kafka.client_kwargs(), group_id=group_id(group))
        await client.start()
        client.assign(list(offsets))
        await client.commit(offsets)
        await client.stop()

    async def scenario() -> tuple[dict[str, int], dict[str, int], bool, float | None, int | None]:
        await create_topics(settings)
        producer = AIOKafkaProducer(**settings.kafka.client_kwargs())
        await producer.start()
        watcher = LagWatcher(settings)
        progress = Progress(settings, "speech")
        try:
            for tp in (frames, audio):
                for _ in range(100):
                    watcher.record(await producer.send_and_wait(tp.topic, b"x", partition=0))
            before = dict(await watcher.lag())
            waiting = asyncio.create_task(watcher.wait_below())
            await asyncio.sleep(1.0)
            held = not waiting.done()
            await commit("light", {frames: 90})
            await commit("audio", {audio: 97})
            await progress.commit({audio: 95})
            await asyncio.wait_for(waiting, 30)
            after = dict(await watcher.lag())
            probe = AIOKafkaConsumer(**settings.kafka.client_kwargs(), group_id=group_id("speech"))
            await probe.start()
            speech_committed = await probe.committed(audio)
            await probe.stop()
            return before, after, held, watcher.rates["light"].per_s, speech_committed
        finally:
            await progress.close()
            await watcher.close()
            await producer.stop()

    before, after, held, rate, speech_committed = asyncio.run(scenario())
    assert before == {"light": 100, "audio": 100, "speech": 100}
    assert held, "the producer did not wait for groups 100 events behind a 32-event bound"
    assert after == {"light": 10, "audio": 3, "speech": 5}
    assert rate is not None and rate > 0
    assert speech_committed is None  # the group's own commit is untouched: only its progress moved


class Sink(BatchingSink[str]):
    async def write(self, batch: list[str]) -> None:
        """The store write happened before the flush in this test."""


def test_live_progress_reads_the_store_when_the_sink_wrote(tmp_path: Path) -> None:
    """The poller's interval is an hour here: a video stored and flushed through the sink still shows on
    the live stream, because the write wakes the poller."""
    store = Store(Settings(state_dir=tmp_path))
    store.create_tables()

    async def scenario() -> set[str]:
        sink = Sink("test", asyncio.Event())
        hub = ProgressHub(store, interval_s=3600, written=sink.written)
        async with hub.subscribe() as seen:
            seen = await hub.wait(seen, 60)  # the first poll: nothing stored yet
            assert not hub.videos
            await store.call(store.upsert_video, {**empty_video("v1"), "status": "processing"})
            sink.add("v1")
            await sink.flush()
            await hub.wait(seen, 60)
            return set(hub.videos)

    try:
        assert asyncio.run(scenario()) == {"v1"}
    finally:
        store.close()


@pytest.mark.integration
def test_a_video_waits_on_the_bound_after_its_first_batches_and_goes_on_as_the_group_consumes(
    broker: str, tmp_path: Path
) -> None:
    """No light group runs: the video's started event and first frames go out unbounded (FREE_BATCHES),
    then the producer holds it within the bound; a consumer committing what was published lets it go on
    to its finished event."""
    settings = Settings(
        kafka={"bootstrap_servers": broker},
        topics={"prefix": f"bq{uuid.uuid4().hex[:6]}.", "partitions": 1},
        producer={"allowed_roots": [str(tmp_path)], "max_queue_s": 3.0, "min_lag_events": 8},
        analyzers=["scene"],
    )
    clip = cut_clip(tmp_path / "clip.mp4", frames=200, fps=25, size=(160, 90))
    frames = TopicPartition(settings.topics.frames, 0)

    async def scenario() -> tuple[int, bool, str]:
        await create_topics(settings)
        producer = make_producer(settings)
        await producer.start()
        watcher = LagWatcher(settings)
        consumer = AIOKafkaConsumer(**settings.kafka.client_kwargs(), group_id=group_id("light"))
        await consumer.start()
        consumer.assign([frames])
        consumer.pause(frames)
        try:
            task = asyncio.create_task(
                publish_video(producer, settings, request_for_path(str(clip), video_id="held"), watcher)
            )
            await asyncio.sleep(2.0)
            held_at = watcher.produced.get(frames, 0)
            held = not task.done()
            while not task.done():  # the group consumes whatever was published
                if watcher.produced.get(frames):
                    await consumer.commit({frames: watcher.produced[frames]})
                await asyncio.sleep(0.1)
            return held_at, held, (await task).KIND
        finally:
            await consumer.stop()
            await watcher.close()
            await producer.stop()

    held_at, held, last = asyncio.run(scenario())
    assert held, "the producer published the whole video with nobody consuming"
    assert 0 < held_at <= 1 + 4 + 16  # the free batches, then one batch more before the bound held it
    assert last == "video.finished"
