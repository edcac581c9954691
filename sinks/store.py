"""The one ClickHouse layer, on clickhouse-connect: embedded chdb (`chdb:///path`) or a server URL.

chdb lets one process own a database path, so in embedded mode the aggregator's process owns it and every
other reader goes through that process's HTTP API. All calls run on one dedicated thread: chdb connections
are not safe to share across threads, and it keeps the event loop free.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from reelscope.infra.core.retry import DependencyError
from reelscope.infra.core.settings import Settings
from reelscope.schemas.tables import (
    RECONSTRUCTION_COLUMNS,
    RESULT_COLUMNS,
    SCHEMA_VERSION,
    SEGMENT_COLUMNS,
    SHOT_COLUMNS,
    TEXT_EVENT_COLUMNS,
    TRACK_COLUMNS,
    VIDEO_COLUMNS,
    WORD_COLUMNS,
    ddl,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


def utc(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, tz=UTC) if ts else None


def now() -> datetime:
    return datetime.now(tz=UTC)


TRANSIENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS}
TRANSIENT_CODES = (
    "NOT_ENOUGH_SPACE",
    "CANNOT_WRITE_TO_FILE_DESCRIPTOR",
    "CANNOT_ALLOCATE_MEMORY",
    "MEMORY_LIMIT_EXCEEDED",
    "TIMEOUT_EXCEEDED",
    "SOCKET_TIMEOUT",
    "NETWORK_ERROR",
    "TOO_MANY_SIMULTANEOUS_QUERIES",
    "TABLE_IS_READ_ONLY",
    "No space left",
)
"""ClickHouse error names (as its messages carry them) that blame the server or its disk, not the data."""


def clickhouse_outage(exc: BaseException) -> bool:
    """Whether a ClickHouse call failed because of the server, its connection or its disk."""
    if isinstance(exc, (ConnectionError, TimeoutError, OperationalError)):
        return True
    if isinstance(exc, OSError):
        return exc.errno in TRANSIENT_ERRNOS
    if isinstance(exc, DatabaseError):
        return any(code in str(exc) for code in TRANSIENT_CODES)
    return False


def connect(settings: Settings) -> Any:
    """A clickhouse-connect client for the configured DSN (credentials come from settings, never logs)."""
    dsn = settings.clickhouse_dsn()
    if dsn.startswith("chdb://"):
        path = dsn.removeprefix("chdb://")
        from pathlib import Path

        Path(path).mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(dsn=dsn)
    url = urlparse(dsn)
    return clickhouse_connect.get_client(
        host=url.hostname or "localhost",
        port=url.port or (8443 if url.scheme == "https" else 8123),
        secure=url.scheme == "https",
        username=settings.clickhouse.username,
        password=settings.clickhouse.password.get_secret_value(),
    )


class Store:
    """Typed reads and idempotent writes for reelscope's tables."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = settings.clickhouse.database
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        self._client: Any = None

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a store method on the ClickHouse thread. A failure of ClickHouse itself (connection, disk,
        server load) is raised as DependencyError, so callers retry it; errors about the data are not."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except Exception as exc:
            if clickhouse_outage(exc):
                raise DependencyError(f"ClickHouse unavailable: {type(exc).__name__}: {exc}") from exc
            raise

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = connect(self.settings)
        return self._client

    def create_tables(self) -> None:
        for statement in ddl(self.db, self.settings.clickhouse.ttl_days):
            self.client.command(statement)
        self.client.insert(
            f"{self.db}.schema_version", [[SCHEMA_VERSION, now()]], column_names=["version", "applied_at"]
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._executor.shutdown(wait=False)

    # writes ---------------------------------------------------------------------------------------------
    def insert_results(self, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.client.insert(f"{self.db}.results", list(rows), column_names=RESULT_COLUMNS)

    def upsert_video(self, row: dict[str, Any]) -> None:
        row = {**row, "updated_at": now()}
        self.client.insert(f"{self.db}.videos", [[row[c] for c in VIDEO_COLUMNS]], column_names=VIDEO_COLUMNS)

    def replace_segments(self, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.client.insert(f"{self.db}.segments", list(rows), column_names=SEGMENT_COLUMNS)

    def write_details(self, video_id: str, doc: dict[str, Any]) -> None:
        """The reconstruction's queryable parts as rows: words, on-screen text events, tracks, shots."""
        stamp = now()
        words = (doc.get("transcript") or {}).get("words", [])
        tables: list[tuple[str, list[str], list[list[Any]]]] = [
            (
                "words",
                WORD_COLUMNS,
                [[video_id, w["start_s"], w["end_s"], w["word"], w["speaker"], stamp] for w in words],
            ),
            (
                "text_events",
                TEXT_EVENT_COLUMNS,
                [
                    [video_id, e["start_s"], e["end_s"], e["text"], list(e.get("box") or []), stamp]
                    for e in doc.get("text_events", [])
                ],
            ),
            (
                "tracks",
                TRACK_COLUMNS,
                [
                    [video_id, t["track_id"], t["label"], t["first_s"], t["last_s"], t["frames"], stamp]
                    for t in doc.get("tracks", [])
                ],
            ),
            (
                "shots",
                SHOT_COLUMNS,
                [
                    [
                        video_id,
                        s["index"],
                        s["start_s"],
                        s["end_s"],
                        (s.get("caption") or {}).get("text", ""),
                        (s.get("caption") or {}).get("model", ""),
                        (s.get("caption") or {}).get("provenance", ""),
                        s.get("thumbnail", ""),
                        stamp,
                    ]
                    for s in doc.get("shots", [])
                ],
            ),
        ]
        for table, columns, rows in tables:
            if rows:
                self.client.insert(f"{self.db}.{table}", rows, column_names=columns)

    def words(self, video_id: str) -> list[dict[str, Any]]:
        return self._rows(
            f"SELECT start_s, end_s, word, speaker FROM {self.db}.words FINAL WHERE video_id = %(v)s "
            f"ORDER BY start_s, speaker",
            v=video_id,
        )

    def save_reconstruction(self, video_id: str, status: str, version: int, document: str) -> None:
        self.client.insert(
            f"{self.db}.reconstructions",
            [[video_id, status, version, document, now()]],
            column_names=RECONSTRUCTION_COLUMNS,
        )

    # reads ----------------------------------------------------------------------------------------------
    def _rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        result = self.client.query(sql, parameters=params)
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    def video(self, video_id: str) -> dict[str, Any] | None:
        rows = self._rows(f"SELECT * FROM {self.db}.videos FINAL WHERE video_id = %(v)s", v=video_id)
        return rows[0] if rows else None

    def videos(self, limit: int = 100, status: str | None = None) -> list[dict[str, Any]]:
        where = "WHERE status = %(s)s" if status else ""
        return self._rows(
            f"SELECT video_id, uri, status, error, duration_s, submitted_at, completed_at, updated_at "
            f"FROM {self.db}.videos FINAL {where} ORDER BY updated_at DESC LIMIT %(n)s",
            s=status or "",
            n=limit,
        )

    def open_videos(self) -> list[dict[str, Any]]:
        """Videos whose completion is still pending (for the aggregator's restart and timeout checks)."""
        return self._rows(
            f"SELECT * FROM {self.db}.videos FINAL WHERE status IN ('processing', 'published', 'describing')"
        )

    def result_counts(self, video_id: str) -> dict[str, tuple[int, int]]:
        """Analyzer -> (results received, of which errors)."""
        rows = self._rows(
            f"SELECT analyzer, count() AS n, countIf(error != '') AS errors FROM {self.db}.results FINAL "
            f"WHERE video_id = %(v)s GROUP BY analyzer",
            v=video_id,
        )
        return {r["analyzer"]: (int(r["n"]), int(r["errors"])) for r in rows}

    def results(self, video_id: str) -> list[dict[str, Any]]:
        return self._rows(
            f"SELECT analyzer, item_key, model, provenance, start_s, end_s, payload, error "
            f"FROM {self.db}.results FINAL WHERE video_id = %(v)s ORDER BY analyzer, start_s, item_key",
            v=video_id,
        )

    def segments(self, video_id: str) -> list[dict[str, Any]]:
        rows = self._rows(
            f"SELECT segment_index, start_s, end_s, shot_index, fields FROM {self.db}.segments FINAL "
            f"WHERE video_id = %(v)s ORDER BY segment_index",
            v=video_id,
        )
        for r in rows:
            r["fields"] = json.loads(r["fields"])
        return rows

    def reconstruction(self, video_id: str) -> dict[str, Any] | None:
        rows = self._rows(
            f"SELECT document FROM {self.db}.reconstructions FINAL WHERE video_id = %(v)s", v=video_id
        )
        return json.loads(rows[0]["document"]) if rows else None

    def stored_completion(self, video_id: str) -> str | None:
        """The completion id of the video's stored reconstruction (written once its events are out)."""
        rows = self._rows(
            f"SELECT JSONExtractString(document, 'completion_id') AS c FROM {self.db}.reconstructions FINAL "
            f"WHERE video_id = %(v)s",
            v=video_id,
        )
        return rows[0]["c"] if rows else None

    def scalar(self, sql: str, **params: Any) -> Any:
        """One value from a query (tests and benchmarks use it to check what was stored)."""
        return self.client.query(sql, parameters=params).result_rows[0][0]

    # reads for the API's live views ---------------------------------------------------------------------
    def live_videos(self, since: datetime) -> list[dict[str, Any]]:
        """Videos in flight, and those changed since `since` (so a stream sees them finish)."""
        return self._rows(
            f"SELECT video_id, uri, status, error, expected, duration_s, submitted_at, completed_at, "
            f"updated_at FROM {self.db}.videos FINAL "
            f"WHERE status IN ('processing', 'published', 'describing') OR updated_at >= %(t)s ORDER BY submitted_at",
            t=since,
        )

    def result_counts_many(self, video_ids: Sequence[str]) -> dict[str, dict[str, tuple[int, int]]]:
        """Video -> analyzer -> (results received, of which errors), in one query for many videos."""
        if not video_ids:
            return {}
        rows = self._rows(
            f"SELECT video_id, analyzer, count() AS n, countIf(error != '') AS errors "
            f"FROM {self.db}.results FINAL WHERE video_id IN %(v)s GROUP BY video_id, analyzer",
            v=list(video_ids),
        )
        out: dict[str, dict[str, tuple[int, int]]] = {}
        for r in rows:
            out.setdefault(r["video_id"], {})[r["analyzer"]] = (int(r["n"]), int(r["errors"]))
        return out

    def activity(self, window_s: int) -> dict[str, Any]:
        """Videos finished per minute over the last `window_s` (oldest minute first) and videos in flight."""
        minutes = max(1, window_s // 60)
        rows = self._rows(
            f"SELECT intDiv(toUInt32(dateDiff('second', completed_at, now64(3))), 60) AS ago, "
            f"status, count() AS n FROM {self.db}.videos FINAL "
            f"WHERE completed_at IS NOT NULL AND completed_at >= now64(3) - toIntervalSecond(%(w)s) "
            f"AND status IN ('complete', 'degraded', 'failed') GROUP BY ago, status",
            w=minutes * 60,
        )
        per_minute = [0] * minutes
        by_status: dict[str, int] = {}
        for r in rows:
            per_minute[minutes - 1 - min(int(r["ago"]), minutes - 1)] += int(r["n"])
            by_status[r["status"]] = by_status.get(r["status"], 0) + int(r["n"])
        in_flight = self.scalar(
            f"SELECT count() FROM {self.db}.videos FINAL WHERE status IN ('processing', 'published', 'describing')"
        )
        return {"per_minute": per_minute, "by_status": by_status, "in_flight": int(in_flight)}
