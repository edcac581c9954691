"""Offsets a handler held back are committed once it releases them, on a real broker (Tansu): the describe
group holds a video's frames until its shots event arrives on another topic, and its idle lag used to stay
at the video's frame count because the frames' partition was not in the batch that released them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from reelscope.infra.core.kafka import BatchHandler, consume_batches, make_consumer, make_producer
from reelscope.infra.core.settings import Settings

FRAMES = 5
Held = dict[TopicPartition, int] | None


async def committed_after(
    broker: str,
    handler: Callable[[TopicPartition, TopicPartition, asyncio.Event], BatchHandler],
    then: Callable[[AIOKafkaProducer, TopicPartition], Awaitable[None]],
) -> int | None:
    """Publish FRAMES records on a frames topic, consume them with `handler(frames, shots, stop)` until it
    sets stop (after `then` ran), and return the frames partition's committed offset."""
    settings = Settings(kafka={"bootstrap_servers": broker})
    prefix = f"commits-{uuid.uuid4().hex[:8]}"
    frames, shots = TopicPartition(f"{prefix}.frames", 0), TopicPartition(f"{prefix}.shots", 0)
    admin = AIOKafkaAdminClient(**settings.kafka.client_kwargs())
    await admin.start()
    await admin.create_topics([NewTopic(tp.topic, 1, 1) for tp in (frames, shots)])
    await admin.close()
    producer = make_producer(settings)
    consumer = make_consumer(settings, [frames.topic, shots.topic], f"{prefix}.group")
    await producer.start()
    await consumer.start()
    stop = asyncio.Event()
    try:
        for i in range(FRAMES):
            await producer.send_and_wait(frames.topic, f"frame {i}".encode(), key=b"v")
        loop = asyncio.create_task(consume_batches(consumer, handler(frames, shots, stop), stop, 100, 100))
        await then(producer, shots)
        await asyncio.wait_for(loop, 60)
        return await consumer.committed(frames)
    finally:
        await consumer.stop()
        await producer.stop()


def test_a_partition_released_by_a_batch_of_another_topic_is_committed(broker: str) -> None:
    seen = asyncio.Event()

    def handler(frames: TopicPartition, shots: TopicPartition, stop: asyncio.Event) -> BatchHandler:
        async def handle(records: list[ConsumerRecord]) -> Held:
            """Like the describe group: frames are held from the first until the shots event comes."""
            if any(r.topic == shots.topic for r in records):
                stop.set()
                return {}
            seen.set()
            return {frames: 0}

        return handle

    async def send_shots(producer: AIOKafkaProducer, shots: TopicPartition) -> None:
        await asyncio.wait_for(seen.wait(), 60)
        await asyncio.sleep(0.5)  # every frame handled (and held) before the shots event is sent
        await producer.send_and_wait(shots.topic, b"shots", key=b"v")

    assert asyncio.run(committed_after(broker, handler, send_shots)) == FRAMES


def test_a_partition_released_by_time_is_committed_with_no_new_records(broker: str) -> None:
    """A stream held until it has been idle long enough (its producer died) is committed while nothing
    more arrives: the handler is asked again with no records."""
    idle_s = 1.5

    def handler(frames: TopicPartition, shots: TopicPartition, stop: asyncio.Event) -> BatchHandler:
        last = [time.monotonic()]

        async def handle(records: list[ConsumerRecord]) -> Held:
            if records:
                last[0] = time.monotonic()
                return {frames: 0}
            if time.monotonic() - last[0] < idle_s:
                return {frames: 0}
            stop.set()
            return {}

        return handle

    async def nothing(producer: AIOKafkaProducer, shots: TopicPartition) -> None:
        return None

    assert asyncio.run(committed_after(broker, handler, nothing)) == FRAMES
