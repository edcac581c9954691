"""The completion timeout under overload: a group working through a backlog is not a dead group.

The aggregator closed a video `degraded` once no result of it arrived for `completion_timeout_s`, even
while the group that owed its results was busy with the items queued before them (a 600 s video under
load 50). Now a video stays open while a group that owes it results shows progress (its results, of any
video, its heartbeats while one batch runs longer than the timeout, or its lag shrinking); a group with no
progress for the timeout (stopped, killed, or hung in one batch) still times it out, named.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from reelscope.analyzers.base import AudioItem
from reelscope.analyzers.loudness import LoudnessAnalyzer
from reelscope.infra.broker import create_topics
from reelscope.infra.core.ingest import request_for_path
from reelscope.infra.core.kafka import make_producer
from reelscope.infra.core.settings import Settings
from reelscope.producers.publisher import publish_video
from reelscope.schemas.events import ProcessorHeartbeat
from reelscope.schemas.records import VideoStatus
from reelscope.sinks.aggregator import Aggregator
from reelscope.sinks.finalizer import Finalizer
from reelscope.sinks.store import Store
from reelscope.stream_processors.runtime import GroupProcessor

from tests.media import tone, write_video

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TIMEOUT_S = 3
ITEM_S = 0.3
"""Seconds the slowed group spends per item: 2 items a batch, a result every ~0.6 s, well inside the
timeout, while the backlog ahead of the second video (31 chunks, ~9 s) is three timeouts long."""


class SlowLoudness(LoudnessAnalyzer):
    """Loudness on a starved machine: the same results, each item taking ITEM_S."""

    def analyze(self, items: Sequence[AudioItem]) -> list[dict[str, Any]]:
        time.sleep(ITEM_S * len(items))
        return super().analyze(items)


def _settings(broker: str, tmp_path: Path) -> Settings:
    return Settings(
        kafka={"bootstrap_servers": broker, "session_timeout_ms": 6000},
        topics={"prefix": f"prog{os.getpid()}{uuid.uuid4().hex[:6]}.", "partitions": 1},
        state_dir=tmp_path / "state",
        producer={"allowed_roots": [str(tmp_path)]},
        analyzers=["loudness"],
        aggregator={"check_interval_s": 0.2, "completion_timeout_s": TIMEOUT_S},
        # one partition, fetch order, small batches: the second video's chunks wait behind the first's
        batch={"schedule": False, "max_size": 2, "max_stride": 1},
    )


async def _until_finished(store: Store, video_id: str, timeout_s: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        video = await store.call(store.video, video_id)
        if video and video["status"] in ("complete", "degraded", "failed"):
            doc = await store.call(store.reconstruction, video_id)
            if doc is not None:
                return doc
        await asyncio.sleep(0.2)
    raise AssertionError(f"{video_id} did not finish within {timeout_s} s")


async def _scenario(settings: Settings, tmp_path: Path, stop_group: bool) -> tuple[dict, dict]:
    """A 30 s audio file, then a 3 s one behind it, to the slowed audio group; with `stop_group` the group
    is stopped once its first result is stored. Returns both finished documents."""
    backlog = write_video(tmp_path / "backlog.m4a", 0, 10, None, audio=tone(30.0))
    behind = write_video(tmp_path / "behind.m4a", 0, 10, None, audio=tone(3.0))
    await create_topics(settings)
    store = Store(settings)
    group = GroupProcessor(settings, "audio", analyzers=[SlowLoudness()])
    services: list[Any] = [Aggregator(settings, store), Finalizer(settings), group]
    tasks = [asyncio.create_task(s.run()) for s in services]
    try:
        await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in services)), timeout=90)
        producer = make_producer(settings)
        await producer.start()
        try:
            for path, video_id in ((backlog, "backlog"), (behind, "behind")):
                await publish_video(producer, settings, request_for_path(str(path), video_id=video_id))
        finally:
            await producer.stop()
        if stop_group:
            while not (await store.call(store.result_counts, "backlog")).get("loudness"):
                await asyncio.sleep(0.1)
            group.stop.set()
        docs = (await _until_finished(store, "backlog"), await _until_finished(store, "behind"))
    finally:
        for service in services:
            service.stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=30)
        store.close()
    return docs


def test_a_video_behind_a_backlog_completes_while_its_group_progresses(broker: str, tmp_path: Path) -> None:
    settings = _settings(broker, tmp_path)
    backlog, behind = asyncio.run(_scenario(settings, tmp_path, stop_group=False))
    for doc in (backlog, behind):
        assert doc["status"] == "complete", (doc["analyzers"], doc["warnings"])
        assert doc["analyzers"]["loudness"]["received"] == doc["analyzers"]["loudness"]["expected"]
    assert backlog["analyzers"]["loudness"]["expected"] >= 30  # the backlog lasts several timeouts


def test_a_stopped_group_still_times_the_video_out_and_is_named(broker: str, tmp_path: Path) -> None:
    settings = _settings(broker, tmp_path)
    _, behind = asyncio.run(_scenario(settings, tmp_path, stop_group=True))
    assert behind["status"] == "degraded"
    assert behind["analyzers"]["loudness"]["received"] < behind["analyzers"]["loudness"]["expected"]
    gap = [w for w in behind["warnings"] if w.startswith("loudness:")]
    assert gap and "never arrived" in gap[0] and "group audio" in gap[0], behind["warnings"]


@pytest.mark.parametrize(("readings", "moving"), [([50, 40], True), ([50, 50], False), ([50, 60], False)])
def test_a_shrinking_lag_counts_as_progress(tmp_path: Path, readings: list[int], moving: bool) -> None:
    """Where the aggregator shares a process with the ingest worker, the LagWatcher's figures show a group
    moving too (a group that dead-letters items, or commits past them, publishes no result for them)."""
    store = Store(Settings(state_dir=tmp_path / "state"))
    try:
        aggregator = Aggregator(Settings(state_dir=tmp_path / "state", analyzers=["loudness"]), store)
        figures = iter(readings)
        aggregator.group_lag = lambda: {"audio": next(figures)}
        aggregator._note_lag()
        aggregator._note_lag()
    finally:
        store.close()
    assert ("audio" in aggregator.group_progress) is moving


# one batch longer than the timeout ----------------------------------------------------------------------
BATCH_S = 4 * TIMEOUT_S
"""Seconds the batch holding a video's last item takes: four completion timeouts with no result and no
offset moved, as one transcription window at load 50 (60-90 s against a 120 s timeout, and longer)."""
HEARTBEAT_S = 0.5


class LongLastBatch(LoudnessAnalyzer):
    """Loudness whose batch with a video's last item takes BATCH_S (`hung`: every batch takes an hour)."""

    hung = False

    def analyze(self, items: Sequence[AudioItem]) -> list[dict[str, Any]]:
        if self.hung or any(item.final for item in items):
            time.sleep(3600 if self.hung else BATCH_S)
        return super().analyze(items)


def _long_batch_settings(broker: str, tmp_path: Path, prefix: str, heartbeat_s: float) -> Settings:
    return Settings(
        kafka={"bootstrap_servers": broker, "session_timeout_ms": 6000},
        topics={"prefix": prefix, "partitions": 1},
        state_dir=tmp_path / "state",
        producer={"allowed_roots": [str(tmp_path)]},
        analyzers=["loudness"],
        aggregator={"check_interval_s": 0.2, "completion_timeout_s": TIMEOUT_S},
        batch={"schedule": False, "max_stride": 1, "heartbeat_s": heartbeat_s},
    )


def _killable_group(broker: str, tmp_path: Path, prefix: str) -> None:
    """A process running the audio group, whose every batch hangs: the test kills it with SIGKILL."""
    LongLastBatch.hung = True
    settings = _long_batch_settings(broker, tmp_path, prefix, HEARTBEAT_S)
    asyncio.run(GroupProcessor(settings, "audio", analyzers=[LongLastBatch()]).run())


async def _long_batch(settings: Settings, tmp_path: Path, kill: bool) -> tuple[dict, list]:
    """A 3 s audio file to an audio group whose batch with its last chunk outlasts the timeout (in this
    process), or (`kill`) to a group in a process of its own, killed once its first heartbeat arrived.
    Returns the finished document and the heartbeats the aggregator received."""
    path = write_video(tmp_path / "long.m4a", 0, 10, None, audio=tone(3.0))
    await create_topics(settings)
    store = Store(settings)
    aggregator = Aggregator(settings, store)
    beats: list[ProcessorHeartbeat] = []
    note = aggregator._note_heartbeat

    def noted(beat: ProcessorHeartbeat) -> None:
        beats.append(beat)
        note(beat)

    aggregator._note_heartbeat = noted  # type: ignore[method-assign]
    services: list[Any] = [aggregator, Finalizer(settings)]
    child = None
    if kill:
        spawn = multiprocessing.get_context("spawn")
        child = spawn.Process(
            target=_killable_group, args=(settings.kafka.bootstrap_servers, tmp_path, settings.topics.prefix)
        )
        child.start()
    else:
        services.append(GroupProcessor(settings, "audio", analyzers=[LongLastBatch()]))
    tasks = [asyncio.create_task(s.run()) for s in services]
    try:
        await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in services)), timeout=90)
        producer = make_producer(settings)
        await producer.start()
        try:
            await publish_video(producer, settings, request_for_path(str(path), video_id="long"))
        finally:
            await producer.stop()
        if child is not None:
            deadline = time.monotonic() + 120
            while not beats and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert beats, "the group sent no heartbeat while its batch hung"
            os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
            await asyncio.to_thread(child.join, 30)
        doc = await _until_finished(store, "long")
    finally:
        if child is not None and child.is_alive():
            child.kill()
        for service in services:
            service.stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=60)
        store.close()
    return doc, beats


@pytest.mark.parametrize("heartbeat_s", [HEARTBEAT_S, 0.0], ids=["heartbeat", "no-heartbeat"])
def test_a_batch_longer_than_the_timeout_completes_while_its_group_beats(
    broker: str, tmp_path: Path, heartbeat_s: float
) -> None:
    """With heartbeats the video completes with every result; without them (heartbeat_s 0) the same batch
    times it out: the scenario does outlast the timeout."""
    prefix = f"beat{os.getpid()}{uuid.uuid4().hex[:6]}."
    settings = _long_batch_settings(broker, tmp_path, prefix, heartbeat_s)
    doc, beats = asyncio.run(_long_batch(settings, tmp_path, kill=False))
    loudness = doc["analyzers"]["loudness"]
    if heartbeat_s:
        assert doc["status"] == "complete", (loudness, doc["warnings"])
        assert loudness["received"] == loudness["expected"] >= 3
        assert beats and {b.group for b in beats} == {"audio"} and {b.video_id for b in beats} == {"long"}
    else:
        assert doc["status"] == "degraded", (loudness, doc["warnings"])
        assert loudness["received"] < loudness["expected"]
        assert not beats


def test_a_killed_group_stops_beating_and_is_timed_out_and_named(broker: str, tmp_path: Path) -> None:
    prefix = f"kill{os.getpid()}{uuid.uuid4().hex[:6]}."
    settings = _long_batch_settings(broker, tmp_path, prefix, HEARTBEAT_S)
    doc, beats = asyncio.run(_long_batch(settings, tmp_path, kill=True))
    assert beats  # it was beating before the kill
    assert doc["status"] == "degraded"
    assert doc["analyzers"]["loudness"]["received"] < doc["analyzers"]["loudness"]["expected"]
    gap = [w for w in doc["warnings"] if w.startswith("loudness:")]
    assert gap and "never arrived" in gap[0] and "group audio" in gap[0], doc["warnings"]


@pytest.mark.parametrize(
    ("busy_s", "moving"), [(None, False), (30.0, True), (901.0, False)], ids=["none", "beating", "hung"]
)
def test_a_heartbeat_keeps_a_video_open_unless_its_batch_is_hung(
    tmp_path: Path, busy_s: float | None, moving: bool
) -> None:
    """The aggregator's decision: past its timeout, a video whose owing group beats (within max_busy_s of
    one batch) stays open; no heartbeat, or a batch busy longer than max_busy_s (900 s), times it out."""
    settings = Settings(state_dir=tmp_path / "state", analyzers=["loudness"], aggregator={"max_busy_s": 900})
    store = Store(settings)
    try:
        store.create_tables()
        aggregator = Aggregator(settings, store)
        video = {"video_id": "v", "status": VideoStatus.PUBLISHED, "expected": '{"loudness": 4}'}
        if busy_s is not None:
            aggregator._note_heartbeat(ProcessorHeartbeat(video_id="v", group="audio", busy_s=busy_s))
        kept_open = asyncio.run(aggregator._owed_by_moving_group(video, timeout=3))
    finally:
        store.close()
    assert kept_open is moving
    assert ("audio" in aggregator.group_progress) is moving
