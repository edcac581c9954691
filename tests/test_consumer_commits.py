"""Offsets a handler held back are committed once it releases them, on a real broker (Tansu): the describe
group holds a video's frames until its shots event arrives on another topic, and its idle lag used to stay
at the video's frame count because the frames' partition was not in the batch that released them."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from reelscope.infra.core.kafka import consume_batches, make_consumer, make_producer
from reelscope.infra.core.settings import Settings

FRAMES = 5


def test_a_partition_released_by_a_batch_of_another_topic_is_committed(broker: str) -> None:
    settings = Settings(kafka={"bootstrap_servers": broker})
    prefix = f"commits-{uuid.uuid4().hex[:8]}"
    frames, shots = TopicPartition(f"{prefix}.frames", 0), TopicPartition(f"{prefix}.shots", 0)

    async def scenario() -> int | None:
        admin = AIOKafkaAdminClient(**settings.kafka.client_kwargs())
        await admin.start()
        await admin.create_topics([NewTopic(tp.topic, 1, 1) for tp in (frames, shots)])
        await admin.close()
        producer = make_producer(settings)
        consumer = make_consumer(settings, [frames.topic, shots.topic], f"{prefix}.group")
        await producer.start()
        await consumer.start()
        stop, frames_seen = asyncio.Event(), asyncio.Event()

        async def handle(records: list[ConsumerRecord]) -> dict[TopicPartition, int] | None:
            """Like the describe group: frames are held from the first until the shots event comes."""
            if any(r.topic == shots.topic for r in records):
                stop.set()
                return {}
            frames_seen.set()
            return {frames: 0}

        try:
            for i in range(FRAMES):
                await producer.send_and_wait(frames.topic, f"frame {i}".encode(), key=b"v")
            loop = asyncio.create_task(consume_batches(consumer, handle, stop, 100, 100))
            await asyncio.wait_for(frames_seen.wait(), 60)
            await asyncio.sleep(0.5)  # every frame handled (and held) before the shots event is sent
            await producer.send_and_wait(shots.topic, b"shots", key=b"v")
            await asyncio.wait_for(loop, 60)
            return await consumer.committed(frames)
        finally:
            await consumer.stop()
            await producer.stop()

    assert asyncio.run(scenario()) == FRAMES
