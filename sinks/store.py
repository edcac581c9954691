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
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from reelscope.infra.core.retry import DependencyError
from reelscope.infra.core.settings import Settings
from reelscope.schemas.records import IN_FLIGHT, TERMINAL, VideoStatus, sql_list
from reelscope.schemas.tables import (
    MOMENTS,
    RECONSTRUCTIONS,
    RESULTS,
    SCHEMA_VERSION,
    SCHEMA_VERSIONS,
    SEGMENTS,
    SHOTS,
    TABLES,
    TEXT_EVENTS,
    TRACKS,
    VIDEOS,
    VIEWS,
    WORDS,
    Table,
    ddl,
    upgrade,
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


def shot_row(shot: Mapping[str, Any]) -> dict[str, Any]:
    """A document shot as a shots-table record (its caption flattened into three columns)."""
    caption = shot.get("caption") or {}
    return {
        "shot_index": shot["index"],
        "start_s": shot["start_s"],
        "end_s": shot["end_s"],
        "caption": caption.get("text", ""),
        "caption_model": caption.get("model", ""),
        "caption_provenance": caption.get("provenance", ""),
        "thumbnail": shot.get("thumbnail", ""),
    }


def moment_rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The document's searchable moments that have no table of their own: face tracks, sound events and
    topics (a topic spans the whole video)."""
    summaries = doc.get("summaries") or {}
    faces = doc.get("faces") or summaries.get("faces") or {}
    sounds = summaries.get("sound_events") or {}
    duration = float(doc.get("duration_s") or 0.0)
    out = [
        {
            "kind": "face",
            "item": str(t["id"]),
            "start_s": t["start_s"],
            "end_s": t["end_s"],
            "text": f"face {t['id']}",
            "conf": t.get("conf"),
        }
        for t in faces.get("tracks") or []
        if "id" in t and "start_s" in t
    ]
    out += [
        {
            "kind": "sound",
            "item": f"{e['label']}@{e['start_s']}",
            "start_s": e["start_s"],
            "end_s": e["end_s"],
            "text": str(e["label"]),
            "conf": e.get("score"),
        }
        for e in sounds.get("events") or []
        if "label" in e and "start_s" in e
    ]
    out += [
        {
            "kind": "topic",
            "item": str(t["label"]),
            "start_s": 0.0,
            "end_s": duration,
            "text": str(t["label"]),
            "conf": t.get("score"),
        }
        for t in (doc.get("about") or {}).get("topics") or []
        if "label" in t
    ]
    return out


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
        """Create what is missing, then bring a database made by an older schema version up to date."""
        ttl_days = self.settings.clickhouse.ttl_days
        for statement in ddl(self.db, ttl_days, views=False):
            self.client.command(statement)
        applied = int(self.scalar(f"SELECT max(version) FROM {self.db}.{SCHEMA_VERSIONS.name}"))
        for statement in [*upgrade(self.db, applied, ttl_days), *(v.create(self.db) for v in VIEWS)]:
            self.client.command(statement)
        self.insert(SCHEMA_VERSIONS, [{"version": SCHEMA_VERSION, "applied_at": now()}])

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._executor.shutdown(wait=False)

    # writes ---------------------------------------------------------------------------------------------
    def insert(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """Rows given as records (column name -> value), in the table spec's column order."""
        if rows:
            self.client.insert(
                f"{self.db}.{table.name}", [table.row(r) for r in rows], column_names=table.names
            )

    def insert_results(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self.insert(RESULTS, rows)

    def upsert_video(self, row: Mapping[str, Any]) -> None:
        self.insert(VIDEOS, [{**row, "updated_at": now()}])

    def replace_segments(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self.insert(SEGMENTS, rows)

    def write_details(self, video_id: str, doc: dict[str, Any]) -> None:
        """The reconstruction's queryable parts as rows: words, on-screen text events, tracks, shots."""
        row = {"video_id": video_id, "updated_at": now()}
        words = (doc.get("transcript") or {}).get("words", [])
        self.insert(WORDS, [{**row, **w} for w in words])
        self.insert(
            TEXT_EVENTS, [{**row, **e, "box": list(e.get("box") or [])} for e in doc.get("text_events", [])]
        )
        self.insert(TRACKS, [{**row, **t} for t in doc.get("tracks", [])])
        self.insert(SHOTS, [{**row, **shot_row(s)} for s in doc.get("shots", [])])
        self.insert(MOMENTS, [{**row, **m} for m in moment_rows(doc)])

    def delete_video(self, video_id: str) -> None:
        """Every row of one video, in every table keyed by video (lightweight deletes: gone from reads at
        once, purged by the next merge). Per-minute aggregates keep their counts (videos_per_minute's first
        column is the minute, not the video id)."""
        for table in TABLES:
            if table.names[0] == "video_id":
                self.client.command(
                    f"DELETE FROM {self.db}.{table.name} WHERE video_id = %(v)s", {"v": video_id}
                )

    def words(self, video_id: str) -> list[dict[str, Any]]:
        return self.rows(
            f"SELECT start_s, end_s, word, speaker FROM {self.db}.words FINAL WHERE video_id = %(v)s "
            f"ORDER BY start_s, speaker",
            v=video_id,
        )

    def save_reconstruction(self, video_id: str, status: VideoStatus, version: int, document: str) -> None:
        self.insert(
            RECONSTRUCTIONS,
            [
                {
                    "video_id": video_id,
                    "status": status,
                    "format_version": version,
                    "document": document,
                    "updated_at": now(),
                }
            ],
        )

    # reads ----------------------------------------------------------------------------------------------
    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """Rows of a query as records (column name -> value); `%(name)s` parameters are bound, not pasted."""
        result = self.client.query(sql, parameters=params)
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    def video(self, video_id: str) -> dict[str, Any] | None:
        rows = self.rows(f"SELECT * FROM {self.db}.videos FINAL WHERE video_id = %(v)s", v=video_id)
        return rows[0] if rows else None

    def videos(self, limit: int = 100, status: str | None = None) -> list[dict[str, Any]]:
        where = "WHERE status = %(s)s" if status else ""
        return self.rows(
            f"SELECT video_id, uri, status, error, duration_s, submitted_at, completed_at, updated_at "
            f"FROM {self.db}.videos FINAL {where} ORDER BY updated_at DESC LIMIT %(n)s",
            s=status or "",
            n=limit,
        )

    def open_videos(self) -> list[dict[str, Any]]:
        """Videos whose completion is still pending (for the aggregator's restart and timeout checks)."""
        return self.rows(f"SELECT * FROM {self.db}.videos FINAL WHERE status IN ({sql_list(IN_FLIGHT)})")

    def result_counts(self, video_id: str) -> dict[str, tuple[int, int]]:
        """Analyzer -> (results received, of which errors)."""
        rows = self.rows(
            f"SELECT analyzer, count() AS n, countIf(error != '') AS errors FROM {self.db}.results FINAL "
            f"WHERE video_id = %(v)s GROUP BY analyzer",
            v=video_id,
        )
        return {r["analyzer"]: (int(r["n"]), int(r["errors"])) for r in rows}

    def results(self, video_id: str) -> list[dict[str, Any]]:
        return self.rows(
            f"SELECT analyzer, item_key, model, provenance, start_s, end_s, payload, error "
            f"FROM {self.db}.results FINAL WHERE video_id = %(v)s ORDER BY analyzer, start_s, item_key",
            v=video_id,
        )

    def segments(self, video_id: str) -> list[dict[str, Any]]:
        rows = self.rows(
            f"SELECT segment_index, start_s, end_s, shot_index, fields FROM {self.db}.segments FINAL "
            f"WHERE video_id = %(v)s ORDER BY segment_index",
            v=video_id,
        )
        for r in rows:
            r["fields"] = json.loads(r["fields"])
        return rows

    def reconstruction(self, video_id: str) -> dict[str, Any] | None:
        rows = self.rows(
            f"SELECT document FROM {self.db}.reconstructions FINAL WHERE video_id = %(v)s", v=video_id
        )
        return json.loads(rows[0]["document"]) if rows else None

    def stored_completion(self, video_id: str) -> str | None:
        """The completion id of the video's stored reconstruction (written once its events are out)."""
        rows = self.rows(
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
        return self.rows(
            f"SELECT video_id, uri, status, error, expected, duration_s, submitted_at, completed_at, "
            f"updated_at FROM {self.db}.videos FINAL "
            f"WHERE status IN ({sql_list(IN_FLIGHT)}) OR updated_at >= %(t)s ORDER BY submitted_at",
            t=since,
        )

    def result_counts_many(self, video_ids: Sequence[str]) -> dict[str, dict[str, tuple[int, int]]]:
        """Video -> analyzer -> (results received, of which errors), in one query for many videos."""
        if not video_ids:
            return {}
        rows = self.rows(
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
        rows = self.rows(
            f"SELECT intDiv(toUInt32(dateDiff('second', completed_at, now64(3))), 60) AS ago, "
            f"status, count() AS n FROM {self.db}.videos FINAL "
            f"WHERE completed_at IS NOT NULL AND completed_at >= now64(3) - toIntervalSecond(%(w)s) "
            f"AND status IN ({sql_list(TERMINAL)}) GROUP BY ago, status",
            w=minutes * 60,
        )
        per_minute = [0] * minutes
        by_status: dict[str, int] = {}
        for r in rows:
            per_minute[minutes - 1 - min(int(r["ago"]), minutes - 1)] += int(r["n"])
            by_status[r["status"]] = by_status.get(r["status"], 0) + int(r["n"])
        in_flight = self.scalar(
            f"SELECT count() FROM {self.db}.videos FINAL WHERE status IN ({sql_list(IN_FLIGHT)})"
        )
        return {"per_minute": per_minute, "by_status": by_status, "in_flight": int(in_flight)}
