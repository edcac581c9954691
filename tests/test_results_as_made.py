"""A result goes out as soon as it is made, not when its batch is done (issue 18), on a real broker (Tansu):
an analyzer's first item is acknowledged on the results topic while the analyzer still works on the rest of
the batch, and a group's first analyzer's results are out before its second analyzer has run. Results made
within the linger go out together."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from reelscope.analyzers.base import AudioAnalyzer, AudioItem
from reelscope.infra.broker import create_topics
from reelscope.infra.core.kafka import make_producer, send_event
from reelscope.infra.core.settings import Settings
from reelscope.schemas.events import AnalyzerResult, AudioChunk, decode
from reelscope.stream_processors.runtime import GroupProcessor, ResultOutbox, item_key

pytestmark = pytest.mark.integration

CHUNKS = 4
WAIT_S = 20.0
"""How long an analyzer waits to see a result on the topic before it says it did not."""

seen: dict[tuple[str, str], threading.Event] = {}
"""(analyzer, item key) -> set once the test's consumer read that result from the results topic."""


def was_seen(analyzer: str, key: str) -> bool:
    return seen.setdefault((analyzer, key), threading.Event()).wait(WAIT_S)


def chunk_key(index: int) -> str:
    """The item key of the mix's chunk `index`."""
    return item_key(AudioChunk(video_id="v", index=index, start_s=0, end_s=1, pcm=b"", targets=[]))


class Gated(AudioAnalyzer):
    """Makes the batch's first item, then waits for it to be on the topic before making the others."""

    name = "gated"
    group = "speech"

    def analyze(self, items: Sequence[AudioItem]) -> list[dict[str, Any]]:
        return [payload for _, payload in sorted(self.analyze_ready(items))]

    def analyze_ready(self, items: Sequence[AudioItem]) -> Generator[tuple[int, dict[str, Any]], None, None]:
        yield 0, {"first_of": len(items)}
        first_out = was_seen(self.name, chunk_key(items[0].index))
        for i in range(1, len(items)):
            yield i, {"first_out_before": first_out}


class After(AudioAnalyzer):
    """The group's second analyzer: looks whether the first one's results of its batch are already out."""

    name = "after"
    group = "speech"

    def analyze(self, items: Sequence[AudioItem]) -> list[dict[str, Any]]:
        out = all(was_seen(Gated.name, chunk_key(item.index)) for item in items)
        return [{"gated_out_before": out} for _ in items]


async def scenario(broker: str, tmp_path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    settings = Settings(
        kafka={"bootstrap_servers": broker},
        topics={"prefix": f"made{uuid.uuid4().hex[:8]}.", "partitions": 1},
        state_dir=tmp_path / "state",
        analyzers=["loudness"],
    )
    await create_topics(settings)
    producer = make_producer(settings)
    await producer.start()
    try:
        for i in range(CHUNKS):
            event = AudioChunk(
                video_id="v",
                index=i,
                start_s=float(i),
                end_s=float(i + 1),
                pcm=bytes(32_000),
                targets=[Gated.name, After.name],
                first=i == 0,
                final=i == CHUNKS - 1,
            )
            await send_event(producer, settings.topics.audio, event)
        await producer.flush()
    finally:
        await producer.stop()
    results: dict[tuple[str, str], dict[str, Any]] = {}
    reader = AIOKafkaConsumer(
        settings.topics.results, **settings.kafka.client_kwargs(), auto_offset_reset="earliest"
    )
    group = GroupProcessor(settings, "speech", [Gated(), After()])
    await reader.start()
    task = asyncio.create_task(group.run())
    try:
        while len(results) < 2 * CHUNKS:
            batch = await asyncio.wait_for(reader.getmany(timeout_ms=500), 4 * WAIT_S)
            for record in (r for part in batch.values() for r in part):
                result = decode(record.value, expect=AnalyzerResult)
                assert result.error is None, result.error
                results[result.analyzer, result.item_key] = result.payload
                seen.setdefault((result.analyzer, result.item_key), threading.Event()).set()
    finally:
        group.stop.set()
        await asyncio.wait_for(task, 30)
        await reader.stop()
    return results


def test_results_go_out_as_each_is_made(broker: str, tmp_path: Path) -> None:
    results = asyncio.run(scenario(broker, tmp_path))
    assert set(results) == {(a, chunk_key(i)) for a in (Gated.name, After.name) for i in range(CHUNKS)}
    gated = [results[Gated.name, chunk_key(i)] for i in range(CHUNKS)]
    # each batch's first item, then the others, made after that first one was read back from the topic (the
    # stream's first chunk comes in a batch of its own: the scheduler's starts)
    later = [p for p in gated if "first_of" not in p]
    assert later and all(p == {"first_out_before": True} for p in later), gated
    assert sum(p.get("first_of", 0) for p in gated) == CHUNKS
    assert all(results[After.name, chunk_key(i)] == {"gated_out_before": True} for i in range(CHUNKS))


class Recorder:
    """A producer that notes when each result was sent and acknowledges it at once."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}

    async def send(self, topic: str, value: bytes, key: bytes, headers: Any) -> asyncio.Future[None]:
        self.sent[decode(value, expect=AnalyzerResult).item_key] = time.monotonic()
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def test_results_made_within_the_linger_go_out_together() -> None:
    linger_s = 0.3

    def result(index: int) -> AnalyzerResult:
        return AnalyzerResult(
            video_id="v",
            analyzer="a",
            item_key=chunk_key(index),
            model="m",
            provenance="algorithm",
            start_s=0.0,
            end_s=1.0,
            payload={},
            produced_at=0.0,
        )

    async def scenario() -> tuple[Recorder, float, dict[tuple[str, str], float]]:
        producer = Recorder()
        outbox = ResultOutbox(producer, "results", "g", linger_s)  # type: ignore[arg-type]
        began = time.monotonic()

        def analysis() -> None:
            outbox.put(result(0))
            time.sleep(0.05)
            outbox.put(result(1))  # within the linger of the first
            time.sleep(1.0)
            outbox.put(result(2))  # long after: sent by the flush at the batch's end

        await asyncio.to_thread(analysis)
        return producer, began, await outbox.flush()

    producer, began, acked = asyncio.run(scenario())
    first, second, last = (producer.sent[chunk_key(i)] for i in range(3))
    assert abs(second - first) < 0.1 and first - began >= linger_s * 0.9  # together, after the linger
    assert last - began >= 1.0 and last - first > 0.5
    assert set(acked) == {("v", chunk_key(i)) for i in range(3)}
