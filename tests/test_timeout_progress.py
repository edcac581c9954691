"""The completion timeout under overload: a group working through a backlog is not a dead group.

The aggregator closed a video `degraded` once no result of it arrived for `completion_timeout_s`, even
while the group that owed its results was busy with the items queued before them (a 600 s video under
load 50). Now a video stays open while a group that owes it results shows progress (its results, of any
video, or its lag shrinking); a group with no progress for the timeout still times it out, named.
"""

from __future__ import annotations

import asyncio
import os
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
