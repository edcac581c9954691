"""A processor group's heartbeat while a batch runs, so a long batch is not taken for a stopped group.

The aggregator keeps a video open past its completion timeout only while a group that owes it results
shows progress; a batch produces its results only when it ends, and moves no offset before. One batch
longer than the timeout (a transcription window on a loaded CPU) therefore looked like a dead group. While
a batch runs, an asyncio task beside it (the batch runs in a worker thread) publishes one small event per
video of the batch every `interval` seconds; a batch shorter than that sends none. A killed process sends
none either, so a stopped group still times its videos out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from reelscope.infra.core.kafka import send_all
from reelscope.infra.core.settings import Settings
from reelscope.schemas.events import ProcessorHeartbeat

log = logging.getLogger(__name__)


def heartbeat_interval(settings: Settings) -> float:
    """`batch.heartbeat_s`, at most a quarter of the completion timeout (several beats fall inside one
    timeout, whatever the two are set to); 0 when heartbeats are off."""
    if settings.batch.heartbeat_s <= 0:
        return 0.0
    return min(settings.batch.heartbeat_s, settings.aggregator.completion_timeout_s / 4)


class Heartbeat:
    """Beats for one processor group; `beating(...)` wraps each batch."""

    def __init__(self, settings: Settings, group: str) -> None:
        self.topic = settings.topics.heartbeats
        self.group = group
        self.interval = heartbeat_interval(settings)
        self.member = f"{socket.gethostname()}:{os.getpid()}"
        self.sent = 0
        """Heartbeat events published (for tests and logs)."""

    @contextlib.asynccontextmanager
    async def beating(self, producer: AIOKafkaProducer | None, videos: Iterable[str]) -> AsyncIterator[None]:
        """Beat for `videos` (a video id per item of the batch) until the block ends, however it ends."""
        counts: dict[str, int] = {}
        for video in videos:
            counts[video] = counts.get(video, 0) + 1
        if not self.interval or not counts or producer is None:
            yield
            return
        task = asyncio.create_task(self._beat(producer, counts, time.monotonic()))
        try:
            yield
        finally:
            task.cancel()
            await asyncio.wait([task])  # never raises the task's cancellation into the batch

    async def _beat(self, producer: AIOKafkaProducer, counts: dict[str, int], started: float) -> None:
        while True:
            await asyncio.sleep(self.interval)
            busy, at = time.monotonic() - started, time.time()
            beats = [
                ProcessorHeartbeat(
                    video_id=video, group=self.group, member=self.member, busy_s=busy, items=n, sent_at=at
                )
                for video, n in counts.items()
            ]
            try:  # best effort: a lost beat costs at most a timeout that a long batch would have cost
                await send_all(producer, [(self.topic, beat) for beat in beats])
                self.sent += len(beats)
            except (KafkaError, OSError) as exc:
                log.debug("group %s: heartbeat not sent: %s", self.group, exc)
