"""The `reelscope serve` process: the ingest worker, the aggregator and the HTTP API in one event loop.

It owns the store (in embedded mode, the chdb database path) and only stores and serves: processor groups,
and the finalize group that builds each finished video's document, run as their own processes
(`reelscope process --group NAME`).
"""

from __future__ import annotations

import asyncio
import logging
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
from reelscope.sinks.store import Store

log = logging.getLogger(__name__)


class Services:
    """Ingest worker + aggregator + API, sharing one stop signal."""

    def __init__(self, settings: Settings, ingest: bool = True) -> None:
        self.settings = settings
        self.store = Store(settings)
        self.aggregator = Aggregator(settings, self.store)
        self.ingest = IngestWorker(settings) if ingest else None
        self.stop = asyncio.Event()

    @property
    def producer(self) -> AIOKafkaProducer | None:
        return getattr(self.aggregator, "producer", None)

    def ready(self) -> bool:
        return self.aggregator.ready.is_set() and (self.ingest is None or self.ingest.ready.is_set())

    async def run(self) -> None:
        await create_topics_with_retry(self.settings, self.stop)
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


async def create_topics_with_retry(settings: Settings, stop: asyncio.Event) -> None:
    def broker_error(exc: BaseException) -> bool:
        return isinstance(exc, (KafkaError, OSError))

    await retry_with_backoff(partial(create_topics, settings), "creating topics", stop, broker_error)


async def serve(settings: Settings) -> None:
    services = Services(settings)
    install_signal_handlers(services.stop)
    await services.run()
