"""Consumer lag from numbers that can be trusted, and a producer that waits when processors fall behind.

The embedded broker reports end offsets wrongly, so lag is not `end offset - committed`. Instead the
producer remembers the offsets the broker acknowledged for its own events, and asks each processor group
for its committed offsets: lag = what this producer published that the group has not yet committed.
Groups with stateful analyzers (which hold commits back until a video's stream ends) are watched but do
not throttle the producer: it must keep publishing for them to finish a video.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import RecordMetadata
from reelscope.analyzers.registry import groups
from reelscope.infra.core.metrics import BACKPRESSURE_SECONDS, CONSUMER_LAG
from reelscope.infra.core.settings import Settings
from reelscope.infra.core.topics import group_id

log = logging.getLogger(__name__)

REFRESH_S = 5.0
"""How often the lag is measured besides while publishing: the gauge falls back to 0 once groups catch up."""

WAIT_POLL_S = 0.2
"""How often a waiting producer measures again; one measurement serves every video waiting meanwhile."""


class LagWatcher:
    """Published-but-uncommitted events per processor group, for backpressure and the dashboard."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.produced: dict[TopicPartition, int] = {}
        self.throttling: list[str] = []
        self.watched: dict[str, set[str]] = {}
        """Group -> the media topics it consumes."""
        for name, classes in groups(settings.analyzers, settings).items():
            inputs = {c.input for c in classes}
            self.watched[name] = {settings.topics.frames} if inputs & {"frame", "shot"} else set()
            if "audio" in inputs:
                self.watched[name].add(settings.topics.audio)
            if not any(c.stateful or c.input == "shot" for c in classes):
                self.throttling.append(name)
        self.consumers: dict[str, AIOKafkaConsumer] = {}
        self.last: dict[str, int] = {}
        self.measured_at = float("-inf")
        self.measuring = asyncio.Lock()
        """One measurement at a time (publishing, /stats and `refresh` share the consumers)."""

    def record(self, metadata: RecordMetadata) -> None:
        tp = TopicPartition(metadata.topic, metadata.partition)
        self.produced[tp] = max(self.produced.get(tp, 0), metadata.offset + 1)

    async def _consumer(self, group: str) -> AIOKafkaConsumer:
        if group not in self.consumers:
            consumer = AIOKafkaConsumer(
                **self.settings.kafka.client_kwargs(),
                group_id=group_id(group),
                enable_auto_commit=False,
            )
            await consumer.start()
            self.consumers[group] = consumer
        return self.consumers[group]

    async def _group_lag(self, group: str, topics: set[str]) -> int:
        consumer = await self._consumer(group)
        total = 0
        for tp, produced in list(self.produced.items()):
            if tp.topic in topics:
                committed = await consumer.committed(tp)
                total += max(0, produced - (committed or 0))
        CONSUMER_LAG.labels(group).set(total)
        return total

    async def lag(self, max_age_s: float = 0.0) -> dict[str, int]:
        """Per group: events this producer published on the group's topics that it has not committed.

        The groups are asked at once (one consumer each). A measurement younger than `max_age_s` is
        reused: videos published at once wait on the same figure instead of each asking the broker."""
        async with self.measuring:
            if self.last and time.monotonic() - self.measured_at < max_age_s:
                return self.last
            totals = await asyncio.gather(*(self._group_lag(g, t) for g, t in self.watched.items()))
            self.last = dict(zip(self.watched, totals, strict=True))
            self.measured_at = time.monotonic()
        return self.last

    async def connect(self) -> None:
        """Start every group's consumer now, so the first measurement (once a video's first seconds are
        out) does not wait for them to join the broker."""
        for group in self.watched:
            await self._consumer(group)

    async def refresh(self, stop: asyncio.Event, every_s: float = REFRESH_S) -> None:
        """Measure every `every_s` until stopped, so the gauge Prometheus scrapes follows the groups when
        nothing is published (it was set only while publishing, and an idle system kept its last value)."""
        try:
            async with self.measuring:
                await self.connect()
        except (KafkaError, OSError) as exc:  # the broker is away: the first measurement connects
            log.debug("lag consumers not started: %s", exc)
        while not stop.is_set():
            if self.produced:
                try:
                    await self.lag()
                except (KafkaError, OSError) as exc:  # the broker is away: the next round measures again
                    log.debug("lag not measured: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)

    async def wait_below(self, bound: int, stop: asyncio.Event | None = None) -> float:
        """Sleep while a throttling group lags more than `bound` events; returns the seconds waited."""
        waited = 0.0
        while True:
            lag = await self.lag(max_age_s=WAIT_POLL_S)
            worst = max((lag[g] for g in self.throttling), default=0)
            if worst <= bound or (stop is not None and stop.is_set()):
                return waited
            if waited == 0.0:
                log.info("backpressure: processors are %d events behind (bound %d); waiting", worst, bound)
            t0 = time.monotonic()
            await asyncio.sleep(WAIT_POLL_S)
            waited += time.monotonic() - t0
            BACKPRESSURE_SECONDS.inc(time.monotonic() - t0)

    async def close(self) -> None:
        for consumer in self.consumers.values():
            await consumer.stop()
        self.consumers.clear()
