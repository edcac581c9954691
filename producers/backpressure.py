"""Consumer lag from numbers that can be trusted, and a producer that waits when processors fall behind.

The embedded broker reports end offsets wrongly, so lag is not `end offset - committed`. Instead the
producer remembers the offsets the broker acknowledged for its own events, and asks each processor group
for its committed offsets: lag = what this producer published that the group has not yet committed.
Groups with stateful analyzers hold their commits back until a video's stream ends, so their lag is read
from the offsets they have processed, which they commit under a second group id (`progress_group_id`,
stream_processors/runtime.py); without scheduling (which writes those) they are watched but do not throttle
the producer: it must keep publishing for them to finish a video. Groups of shot analyzers never throttle.

The bound is in seconds of queued work (`producer.max_queue_s`), not only in events: a group's lag divided
by the rate at which it has been consuming while it had work, so a slow group (vision on a CPU) holds the
producer at a few seconds of its own work and a fast one at many events; `max_lag_events` stays the cap.
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
from reelscope.infra.core.topics import group_id, progress_group_id

log = logging.getLogger(__name__)

REFRESH_S = 5.0
"""How often the lag is measured besides while publishing: the gauge falls back to 0 once groups catch up."""

WAIT_POLL_S = 0.2
"""How often a waiting producer measures again; one measurement serves every video waiting meanwhile."""


RATE_WINDOW_S = 10.0
"""A group's consumption rate is measured over its last this many busy seconds (several batches)."""


class Rate:
    """Events per second a group consumed while it had work: a window of (time, events consumed so far)
    samples, restarted whenever the group was found idle (idle time says nothing of its speed)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []
        self.total = 0
        self.per_s: float | None = None
        """The last measured rate; None until the group has consumed something while busy."""

    def add(self, at: float, consumed: int, lag: int) -> None:
        """A measurement: `consumed` events since the previous one, `lag` events still queued."""
        self.total += consumed
        consumed = self.total
        if lag == 0:  # caught up: measured afresh from the next busy measurement
            self.samples = []
            return
        self.samples.append((at, consumed))
        if len(self.samples) == 1:
            return
        while len(self.samples) > 2 and at - self.samples[1][0] >= RATE_WINDOW_S:
            self.samples.pop(0)
        (t0, c0) = self.samples[0]
        if consumed > c0 and at > t0:
            self.per_s = (consumed - c0) / (at - t0)
        elif self.per_s is not None and at - t0 >= RATE_WINDOW_S:
            self.per_s = 0.0  # busy and nothing consumed for a whole window


class LagWatcher:
    """Published-but-uncommitted events per processor group, for backpressure and the dashboard."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.produced: dict[TopicPartition, int] = {}
        self.throttling: list[str] = []
        self.progress: set[str] = set()
        """Groups whose processed offsets are read from their progress group (stateful ones)."""
        self.watched: dict[str, set[str]] = {}
        """Group -> the media topics it consumes."""
        for name, classes in groups(settings.analyzers, settings).items():
            inputs = {c.input for c in classes}
            self.watched[name] = {settings.topics.frames} if inputs & {"frame", "shot"} else set()
            if "audio" in inputs:
                self.watched[name].add(settings.topics.audio)
            stateful = any(c.stateful for c in classes)
            if stateful and settings.batch.schedule:
                self.progress.add(name)
            shots = any(c.input == "shot" for c in classes)
            if not shots and (not stateful or settings.batch.schedule):
                self.throttling.append(name)
        self.consumers: dict[str, AIOKafkaConsumer] = {}
        self.last: dict[str, int] = {}
        self.rates: dict[str, Rate] = {g: Rate() for g in self.watched}
        self.committed: dict[str, dict[TopicPartition, int]] = {}
        """Group -> partition -> its committed offset at the last measurement (what it consumed since)."""
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
                group_id=progress_group_id(group) if group in self.progress else group_id(group),
                enable_auto_commit=False,
            )
            await consumer.start()
            self.consumers[group] = consumer
        return self.consumers[group]

    async def _group_lag(self, group: str, topics: set[str]) -> int:
        consumer = await self._consumer(group)
        total = consumed = 0
        seen = self.committed.setdefault(group, {})
        for tp, produced in list(self.produced.items()):
            if tp.topic in topics:
                committed = await consumer.committed(tp) or 0
                total += max(0, produced - committed)
                consumed += max(0, committed - seen.get(tp, committed))
                seen[tp] = committed
        self.rates[group].add(time.monotonic(), consumed, total)
        CONSUMER_LAG.labels(group).set(total)
        return total

    def _lag_since(self, group: str, topics: set[str]) -> int:
        """The group's lag from its last measured commits and what is published now."""
        seen = self.committed.get(group, {})
        return sum(
            max(0, produced - seen.get(tp, 0)) for tp, produced in self.produced.items() if tp.topic in topics
        )

    def bound(self, group: str) -> int:
        """Events the group may lag before the producer waits: its measured rate times
        `producer.max_queue_s`, at least `producer.min_lag_events` (something to batch; also the bound
        until a rate is known), at most `producer.max_lag_events`."""
        policy = self.settings.producer
        rate = self.rates[group].per_s
        if policy.max_queue_s <= 0:
            return policy.max_lag_events
        by_time = policy.min_lag_events if rate is None else int(rate * policy.max_queue_s)
        return min(policy.max_lag_events, max(policy.min_lag_events, by_time))

    def queued_s(self, group: str) -> float | None:
        """Seconds of work the group has queued (lag / rate); None until its rate is known."""
        rate = self.rates[group].per_s
        lag = self.last.get(group, 0)
        if rate is None:
            return None
        return lag / rate if rate > 0 else (float("inf") if lag else 0.0)

    async def lag(self, max_age_s: float = 0.0) -> dict[str, int]:
        """Per group: events this producer published on the group's topics that it has not committed.

        The groups are asked at once (one consumer each). Their committed offsets measured less than
        `max_age_s` ago are reused (videos published at once wait on the same figure instead of each
        asking the broker), against what has been published since: a fast decoder publishes many batches
        in that time, and they count."""
        async with self.measuring:
            if self.last and time.monotonic() - self.measured_at < max_age_s:
                self.last = {g: self._lag_since(g, t) for g, t in self.watched.items()}
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

    def over(self, lag: dict[str, int], bound: int | None = None) -> list[str]:
        """The throttling groups lagging more than their bound (or than `bound` events, when given)."""
        return [g for g in self.throttling if lag[g] > (self.bound(g) if bound is None else bound)]

    async def wait_below(self, bound: int | None = None, stop: asyncio.Event | None = None) -> float:
        """Sleep while a throttling group lags more than its bound (`bound` events when given, else
        `bound(group)`: seconds of queued work); returns the seconds waited."""
        waited = 0.0
        while True:
            lag = await self.lag(max_age_s=WAIT_POLL_S)
            over = self.over(lag, bound)
            if not over or (stop is not None and stop.is_set()):
                return waited
            if waited == 0.0:
                log.info(
                    "backpressure: %s; waiting",
                    ", ".join(
                        f"{g} {lag[g]} events behind (bound {self.bound(g) if bound is None else bound})"
                        for g in over
                    ),
                )
            t0 = time.monotonic()
            await asyncio.sleep(WAIT_POLL_S)
            waited += time.monotonic() - t0
            BACKPRESSURE_SECONDS.inc(time.monotonic() - t0)

    async def close(self) -> None:
        for consumer in self.consumers.values():
            await consumer.stop()
        self.consumers.clear()
