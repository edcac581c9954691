"""One retry: backoff for failures of a dependency (the broker, ClickHouse), and the rule for what is one.

Every other failure belongs to the message being handled: it is never retried (see service.py, whose
failure boundary fails that video or dead-letters that event and moves on).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError

log = logging.getLogger(__name__)
T = TypeVar("T")


class DependencyError(Exception):
    """A dependency failed (its cause says how); retrying later may succeed."""


MESSAGE_ERRORS = (MessageSizeTooLargeError, RecordTooLargeError)
"""Kafka errors about the message itself: no retry can make it fit."""


def is_dependency_failure(exc: BaseException) -> bool:
    """True for errors that say a dependency is unavailable: broker errors other than a message's own size,
    DependencyError (the store marks its connection, disk and server-side failures so)."""
    if isinstance(exc, DependencyError):
        return True
    if isinstance(exc, KafkaError):
        return not isinstance(exc, MESSAGE_ERRORS)
    return False


async def retry_with_backoff(
    fn: Callable[[], Awaitable[T]],
    what: str,
    stop: asyncio.Event | None = None,
    retry_if: Callable[[BaseException], bool] = is_dependency_failure,
    initial_s: float = 0.25,
    max_s: float = 10.0,
) -> T:
    """Await fn() until it succeeds, waiting initial_s, 2*initial_s, ... (at most max_s) after each failure
    that `retry_if` accepts. Any other failure, or one while `stop` is set, is raised."""
    delay = initial_s
    while True:
        try:
            return await fn()
        except Exception as exc:
            if not retry_if(exc) or (stop is not None and stop.is_set()):
                raise
            log.warning("%s failed (%s: %s); retrying in %.1f s", what, type(exc).__name__, exc, delay)
        if stop is None:
            await asyncio.sleep(delay)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
        delay = min(delay * 2, max_s)
