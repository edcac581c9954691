"""The processor side of the heartbeat: beats only while a batch runs past the interval, one per video of the
batch, and none once the batch ended (the broker side: tests/test_timeout_progress.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from reelscope.infra.core.settings import Settings
from reelscope.schemas.events import ProcessorHeartbeat, decode
from reelscope.stream_processors.heartbeat import Heartbeat, heartbeat_interval


class Recorder:
    """A producer that records what is sent and acknowledges it at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, ProcessorHeartbeat]] = []
        self.two = asyncio.Event()

    async def send(self, topic: str, value: bytes, key: bytes, headers: Any) -> asyncio.Future:
        beat = decode(value, expect=ProcessorHeartbeat)
        assert key == beat.video_id.encode()
        self.sent.append((topic, beat))  # type: ignore[arg-type]
        if len({b.sent_at for _, b in self.sent}) >= 2:
            self.two.set()
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _settings(heartbeat_s: float, timeout_s: float = 120) -> Settings:
    return Settings(batch={"heartbeat_s": heartbeat_s}, aggregator={"completion_timeout_s": timeout_s})


def test_the_interval_comes_from_the_settings_and_fits_the_timeout() -> None:
    assert heartbeat_interval(_settings(10)) == 10
    assert heartbeat_interval(_settings(10, timeout_s=8)) == 2  # several beats inside one timeout
    assert heartbeat_interval(_settings(0)) == 0  # off


def test_a_long_batch_beats_per_video_and_stops_when_it_ends() -> None:
    async def scenario() -> tuple[Recorder, int]:
        heartbeat, producer = Heartbeat(_settings(0.05), "audio"), Recorder()
        async with heartbeat.beating(producer, ["a", "a", "b"]):  # type: ignore[arg-type]
            await asyncio.wait_for(producer.two.wait(), timeout=60)  # the batch runs two beats long
        after = len(producer.sent)
        await asyncio.sleep(0.3)  # six intervals: a beat still running would have sent again
        return producer, after

    producer, after = asyncio.run(scenario())
    assert len(producer.sent) == after
    assert {topic for topic, _ in producer.sent} == {Settings().topics.heartbeats}
    first = [b for _, b in producer.sent[:2]]
    assert {(b.video_id, b.items) for b in first} == {("a", 2), ("b", 1)}
    assert all(b.group == "audio" and b.member for _, b in producer.sent)
    busy = [b.busy_s for _, b in producer.sent if b.video_id == "a"]
    assert busy == sorted(busy) and busy[0] > 0


def test_a_short_batch_sends_nothing() -> None:
    async def scenario() -> Recorder:
        producer = Recorder()
        async with Heartbeat(_settings(10), "audio").beating(producer, ["a"]):  # type: ignore[arg-type]
            await asyncio.sleep(0)
        return producer

    assert asyncio.run(scenario()).sent == []
