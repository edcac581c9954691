"""The `reelscope serve` process: the ingest worker, the aggregator and the HTTP API in one event loop.

It owns the store (in embedded mode, the chdb database path) and only stores and serves: processor groups,
and the finalize group that builds each finished video's document, run as their own processes
(`reelscope process --group NAME`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from functools import partial

import uvicorn
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from reelscope.infra.broker import create_topics
from reelscope.infra.core.retry import retry_with_backoff
from reelscope.infra.core.service import install_signal_handlers
from reelscope.infra.core.settings import Settings
from reelscope.producers.publisher import IngestWorker
from reelscope.sinks.aggregator import Aggregator
from reelscope.sinks.api import create_app
from reelscope.sinks.recovery import Journal, finished_ids, marker, reingest_unfinished
from reelscope.sinks.store import Store

log = logging.getLogger(__name__)


class Services:
    """Ingest worker + aggregator + API, sharing one stop signal."""

    def __init__(self, settings: Settings, ingest: bool = True) -> None:
        self.settings = settings
        self.store = Store(settings)
        self.aggregator = Aggregator(settings, self.store)
        self.ingest = IngestWorker(settings) if ingest else None
        if self.ingest is not None:  # the groups' lag, measured for backpressure, shows them moving too
            self.aggregator.group_lag = self._group_lag
        self.journal = Journal(settings)
        self.stop = asyncio.Event()

    def _group_lag(self) -> dict[str, int]:
        watcher = getattr(self.ingest, "lag", None)  # created once the ingest worker started
        return dict(watcher.last) if watcher is not None else {}

    @property
    def producer(self) -> AIOKafkaProducer | None:
        return getattr(self.aggregator, "producer", None)

    def ready(self) -> bool:
        return self.aggregator.ready.is_set() and (self.ingest is None or self.ingest.ready.is_set())

    async def run(self) -> None:
        created = await create_topics_with_retry(self.settings, self.stop)
        # a missing ingest topic, or the supervisor's marker: the broker lost its data (or never had any);
        # kept in the marker until recovered, so a serve killed before it recovers leaves it to the next
        lost_marker = marker(self.settings)
        if self.settings.topics.ingest in created and not lost_marker.exists():
            lost_marker.write_text(f"{time.time():.3f} serve created the topics\n")
        token = lost_marker.read_text() if lost_marker.exists() else None
        app = create_app(self.settings, self.store, self)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=self.settings.api_host,
                port=self.settings.api_port,
                log_level="warning",
                lifespan="off",
            )
        )
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        tasks = [
            asyncio.create_task(self.aggregator.run(), name="aggregator"),
            asyncio.create_task(server.serve(), name="api"),
        ]
        if self.ingest is not None:
            tasks.append(asyncio.create_task(self.ingest.run(), name="ingest"))
        tasks.append(asyncio.create_task(self.keep_journal(token), name="journal"))
        stopper = asyncio.create_task(self.stop.wait())
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        self.stop.set()  # a crashed task ends the process too (and the API's event streams with it)
        for task in done:
            if task is not stopper and task.exception():
                log.error("%s crashed: %r", task.get_name(), task.exception())
        self.aggregator.stop.set()
        if self.ingest is not None:
            self.ingest.stop.set()
        server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        self.store.close()

    async def keep_journal(self, token: str | None) -> None:
        """Once the aggregator's tables exist and its producer is connected: forget finished videos'
        journal lines; after a broker loss, re-ingest what it held (sinks/recovery.py) and clear the
        supervisor's marker."""
        ready = asyncio.create_task(self.aggregator.ready.wait())
        stopped = asyncio.create_task(self.stop.wait())
        await asyncio.wait([ready, stopped], return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if not self.stop.is_set():
            try:
                requests, _ = await asyncio.to_thread(self.journal.read)
                finished = await self.store.call(finished_ids, self.store, list(requests))
                await asyncio.to_thread(self.journal.compact, finished)
                if token is not None and self.producer is not None:
                    again, _ = await retry_with_backoff(
                        partial(reingest_unfinished, self.settings, self.store, self.journal, self.producer),
                        "re-ingesting unfinished videos",
                        self.stop,
                    )
                    self.aggregator.forget(again)  # their rows were reset in the store
                    lost_marker = marker(self.settings)
                    # a newer loss (another token) stays for the next serve
                    with contextlib.suppress(OSError):
                        if lost_marker.read_text() == token:
                            lost_marker.unlink()
            except Exception as exc:  # serve goes on; the stalled-video timeout names what stays unfinished
                log.error("journal upkeep or broker-loss recovery failed: %r", exc)
        await stopped  # a finished task would end the process (see run)


async def create_topics_with_retry(settings: Settings, stop: asyncio.Event) -> list[str]:
    def broker_error(exc: BaseException) -> bool:
        return isinstance(exc, (KafkaError, OSError))

    return await retry_with_backoff(partial(create_topics, settings), "creating topics", stop, broker_error)


async def serve(settings: Settings) -> None:
    services = Services(settings)
    install_signal_handlers(services.stop)
    await services.run()
