"""Live progress for server-sent events: per-video state from one shared store poller.

Every event carries an `id:` in epoch milliseconds, so a client that reconnects with `Last-Event-ID` is
told what finished while it was away (see api.py's streams): the poll's time, and for a finished video the
id its `complete` had (ProgressHub.completion_ms; the stored completion time when this process never saw it
finish), so its `complete` is sent again exactly when the id the client saw last is older.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, timedelta
from typing import Any

from reelscope.schemas.records import TERMINAL
from reelscope.sinks.store import Store, now

log = logging.getLogger(__name__)

STREAM_INTERVAL_S = 0.5
"""How often the live streams' poller reads the store when nothing tells it a write happened."""
MIN_INTERVAL_S = 0.1
"""The poller reads at most this often, however often it is woken: the store has one thread, which the
aggregator writes through."""
RECENT_S = 300.0
"""Live streams also watch videos that changed this recently, so they see them finish."""


def progress(video: dict[str, Any], counts: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """Per-analyzer progress: results received against results expected (known once published)."""
    expected: dict[str, int] = json.loads(video.get("expected") or "{}")
    names = sorted(set(expected) | set(counts))
    return {
        name: {
            "received": counts.get(name, (0, 0))[0],
            "errors": counts.get(name, (0, 0))[1],
            "expected": expected.get(name),
        }
        for name in names
    }


def video_state(row: dict[str, Any], counts: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """What live streams send about one video: its status and per-analyzer progress."""
    per = progress(row, counts)
    expected = sum(p["expected"] or 0 for p in per.values())
    received = sum(min(p["received"], p["expected"] or 0) for p in per.values())
    return {
        "video_id": row["video_id"],
        "uri": row.get("uri", ""),
        "status": row["status"],
        "error": row.get("error") or None,
        "progress": per,
        "done": round(received / expected, 4) if expected else None,
    }


def sse(event: str, data: dict[str, Any], event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def changed_ms(row: dict[str, Any]) -> int:
    """When a video last changed, in epoch milliseconds (compared with a Last-Event-ID): a finished
    video's completion time, which later rewrites of its row keep, else its row's update time."""
    stamp = row.get("completed_at") if row.get("status") in TERMINAL else None
    stamp = stamp or row.get("updated_at")
    if stamp is None:
        return 0
    if stamp.tzinfo is None:  # the columns hold UTC; a naive value must not be read as local time
        stamp = stamp.replace(tzinfo=UTC)
    return int(stamp.timestamp() * 1000)


class ProgressHub:
    """One store poller shared by every live stream: N open dashboards cost one query pair per tick, and
    the store's single thread (which the aggregator writes through) is not flooded. Polls only while
    someone listens."""

    def __init__(
        self, store: Store, interval_s: float = STREAM_INTERVAL_S, written: asyncio.Event | None = None
    ) -> None:
        self.store = store
        self.interval_s = interval_s
        self.written = written
        """Set by the aggregator's sink after each write in this process (infra/core/sink.py): the poller
        reads then, at most every MIN_INTERVAL_S, else every interval_s (a store written elsewhere)."""
        self.videos: dict[str, dict[str, Any]] = {}
        self.changed_ms: dict[str, int] = {}
        """Video -> when its row last changed (epoch ms): what a resuming stream compares with."""
        self.finished_ms: dict[str, int] = {}
        """Video -> the `id:` its `complete` was sent with (the poll that first saw it finish): a resuming
        client is owed `complete` again exactly when its Last-Event-ID is older (see completion_ms)."""
        self.version = 0
        self.polled_ms = 0
        """When the current snapshot was polled (epoch ms): the `id:` of events sent from it."""
        self._changed = asyncio.Condition()
        self._subscribers = 0
        self._task: asyncio.Task[None] | None = None

    def _poll(self) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
        rows = self.store.live_videos(now() - timedelta(seconds=RECENT_S))
        counts = self.store.result_counts_many([r["video_id"] for r in rows])
        states = {r["video_id"]: video_state(r, counts.get(r["video_id"], {})) for r in rows}
        return states, {r["video_id"]: changed_ms(r) for r in rows}

    async def _run(self) -> None:
        while self._subscribers:
            if self.written is not None:
                self.written.clear()  # a write from now on is read by the next poll
            try:
                videos, changed = await self.store.call(self._poll)
            except Exception as exc:  # the store is briefly unavailable: keep streams open, poll again
                log.warning("live progress poll failed: %r", exc)
            else:
                if videos != self.videos or self.version == 0:
                    async with self._changed:
                        first_poll = self.polled_ms == 0
                        # strictly increasing, so ids stay ordered even if the clock steps back
                        self.polled_ms = max(int(time.time() * 1000), self.polled_ms + 1)
                        self._note_finished(videos, changed, first_poll)  # against the previous snapshot
                        self.videos, self.changed_ms = videos, changed
                        self.version += 1
                        self._changed.notify_all()
            await self._next_poll()

    async def _next_poll(self) -> None:
        """Wait for a write (at least MIN_INTERVAL_S) or interval_s, whichever comes first."""
        if self.written is None:
            await asyncio.sleep(self.interval_s)
            return
        await asyncio.sleep(min(MIN_INTERVAL_S, self.interval_s))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.written.wait(), max(0.0, self.interval_s - MIN_INTERVAL_S))
        self.written.clear()

    def _note_finished(
        self, videos: dict[str, dict[str, Any]], changed: dict[str, int], first_poll: bool
    ) -> None:
        """Record the `id:` of each video's `complete`: this poll's id when it is first seen finished, so it
        is newer than every progress event a client may have seen before (completed_at, set by the finalize
        group before the row is written, can be older than one). Only on this process's first poll, when
        no client can hold an id of ours, is the stored completion time used."""
        before = self.finished_ms
        self.finished_ms = {}
        for video_id, state in videos.items():
            if state["status"] not in TERMINAL:
                continue
            if video_id in before:
                self.finished_ms[video_id] = before[video_id]
            elif first_poll:
                self.finished_ms[video_id] = changed.get(video_id, 0)
            else:
                self.finished_ms[video_id] = self.polled_ms

    def completion_ms(self, video_id: str, stored_ms: int) -> int:
        """The `id:` of a finished video's `complete`: when this hub saw it finish, else stored_ms."""
        return self.finished_ms.get(video_id, stored_ms)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[int]:
        """Yields the version a new listener has seen: the current snapshot is fresh when the poller is
        already running, else the listener waits for the first poll."""
        self._subscribers += 1
        seen = self.version - 1
        if self._task is None or self._task.done():
            self.version = 0
            seen = 0
            self._task = asyncio.create_task(self._run(), name="progress-hub")
        try:
            yield seen
        finally:
            self._subscribers -= 1

    async def wait(self, seen: int, timeout_s: float) -> int:
        """The snapshot version once it is newer than `seen`, or `seen` after timeout_s."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(lambda: self.version > seen), timeout_s)
            return self.version
