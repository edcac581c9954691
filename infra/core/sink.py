"""A batching sink (the model is Quix Streams' BatchingSink): a service adds what it consumed, and the
sink is flushed, in one `write(batch)`, before the service commits the offsets of those messages.

A failure of the dependency behind the sink (DependencyError, see retry.py) keeps the batch and retries it
with backoff, holding consumption and commits; any other failure empties the buffer and is raised, so the
service's failure boundary can find the message at fault."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Generic, TypeVar

from reelscope.infra.core.retry import retry_with_backoff

T = TypeVar("T")


class BatchingSink(ABC, Generic[T]):
    def __init__(self, name: str, stop: asyncio.Event) -> None:
        self.name, self.stop = name, stop
        self.buffer: list[T] = []
        self.written = asyncio.Event()
        """Set after each write: a reader in the same process (the API's live progress) reads the store
        as soon as something new is in it, instead of a poll interval later; it clears it when it reads."""

    def add(self, item: T) -> None:
        self.buffer.append(item)

    async def flush(self) -> None:
        """Write everything added since the last flush."""
        if not self.buffer:
            return
        batch = list(self.buffer)
        try:
            await retry_with_backoff(lambda: self.write(batch), f"{self.name} write", self.stop, max_s=10.0)
        finally:
            self.buffer.clear()
        self.written.set()

    @abstractmethod
    async def write(self, batch: list[T]) -> None:
        """Store the batch; idempotent, since a batch is written again after a restart."""
