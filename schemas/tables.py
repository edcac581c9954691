"""ClickHouse tables: each defined once, here; the DDL, the column lists and the rows come from that spec.

The same DDL serves embedded chdb and a ClickHouse server. Every table that a redelivered event can write
to is a ReplacingMergeTree keyed by the event's natural identity, so at-least-once delivery never
duplicates a row (read with FINAL). TTLs bound storage. Materialized views keep the live aggregates the
dashboard reads (videos per minute, analyzer latency, top objects, top on-screen words) up to date as rows
arrive.

SCHEMA_VERSION is bumped when a table changes. A column added later says so (`since`), and a database made
by an older version gets it by `ALTER TABLE ... ADD COLUMN IF NOT EXISTS`; a view whose query changed is
re-created. Version 2: `videos.options`; `detections_mv` reads any result with a `detections` list.
Version 3: search: token bloom-filter skip indexes on the searched text (an older database gets them by
`ALTER TABLE ... ADD INDEX IF NOT EXISTS`) and the `moments` table (faces, sound events, topics).
Version 4: `videos_per_minute` holds one row per run of a video (its last terminal status), not a sum per
insert, which counted a failed video once for its failure and again for its failed document; a table whose
layout changed (`rebuilt`) is dropped, re-created and refilled from its view's source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reelscope.schemas.records import TERMINAL, Media, sql_list

SCHEMA_VERSION = 4


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    since: int = 1
    """The schema version that added the column."""


@dataclass(frozen=True)
class Index:
    """A data-skipping index. Search matches whole lower-cased tokens (`hasToken(lower(col), ...)`), which a
    token bloom filter answers on any ClickHouse (chdb also has the `text` index, a server before 25.x
    does not, so the same DDL keeps serving both)."""

    name: str
    expression: str
    type: str
    granularity: int = 1
    since: int = 1

    def spec(self) -> str:
        return f"INDEX {self.name} {self.expression} TYPE {self.type} GRANULARITY {self.granularity}"


def token_index(name: str, column: str, since: int) -> Index:
    """A token bloom filter on a lower-cased text column (32 KiB filter, 3 hashes)."""
    return Index(name, f"lower({column})", "tokenbf_v1(32768, 3, 0)", since=since)


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    order_by: str
    engine: str = "ReplacingMergeTree(updated_at)"
    ttl_column: str | None = "updated_at"
    indexes: tuple[Index, ...] = ()
    rebuilt: int = 1
    """The schema version that last changed the layout of this derived table (one a view fills): an older
    database's copy is dropped, re-created and refilled."""

    @property
    def names(self) -> list[str]:
        """Column names in table order: the `column_names` of every insert."""
        return [c.name for c in self.columns]

    def create(self, db: str, ttl_days: int) -> str:
        ttl = (
            f" TTL toDateTime({self.ttl_column}) + INTERVAL {int(ttl_days)} DAY"
            if self.ttl_column and ttl_days > 0
            else ""
        )
        columns = ",\n    ".join(
            [*(f"{c.name} {c.type}" for c in self.columns), *(i.spec() for i in self.indexes)]
        )
        return (
            f"CREATE TABLE IF NOT EXISTS {db}.{self.name} (\n    {columns}\n) "
            f"ENGINE = {self.engine} ORDER BY {self.order_by}{ttl}"
        )

    def added_since(self, db: str, version: int) -> list[str]:
        """ALTER statements giving a table made by schema `version` the columns and indexes added after it."""
        out = []
        for before, column in zip(self.columns, self.columns[1:], strict=False):
            if column.since > version:
                out.append(
                    f"ALTER TABLE {db}.{self.name} ADD COLUMN IF NOT EXISTS {column.name} {column.type} "
                    f"AFTER {before.name}"
                )
        out += [
            f"ALTER TABLE {db}.{self.name} ADD {index.spec().replace('INDEX', 'INDEX IF NOT EXISTS', 1)}"
            for index in self.indexes
            if index.since > version
        ]
        return out

    def row(self, values: Mapping[str, Any]) -> list[Any]:
        """One insert row from a record's fields by column name (other fields are ignored)."""
        missing = [n for n in self.names if n not in values]
        if missing:
            raise KeyError(f"{self.name} row lacks {missing}")
        return [values[n] for n in self.names]


@dataclass(frozen=True)
class View:
    """A materialized view feeding `target`; `select` names the database as `{db}`."""

    name: str
    target: Table
    select: str
    since: int = 1
    """The schema version that last changed the query (an older database's view is re-created)."""

    def create(self, db: str) -> str:
        return (
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{self.name} TO {db}.{self.target.name} AS "
            f"{self.select.format(db=db)}"
        )


def _columns(spec: str, since: int = 1) -> tuple[Column, ...]:
    """Columns from `name Type, name Type, ...` (types without commas)."""
    return tuple(Column(*part.split(maxsplit=1), since=since) for part in spec.split(", "))  # type: ignore[misc]


_MEDIA_TYPES = {
    "duration_s": "Float64",
    "start_s": "Float64",
    "width": "UInt32",
    "height": "UInt32",
    "rotation": "Int16",
    "avg_fps": "Nullable(Float64)",
    "real_fps": "Nullable(Float64)",
    "video_codec": "String",
    "audio_codec": "String",
    "has_video": "Bool",
    "has_audio": "Bool",
    "audio_channels": "UInt8",
}
MEDIA_COLUMNS = tuple(Column(name, _MEDIA_TYPES[name]) for name in Media.model_fields)
"""The videos columns holding a Media record: one per field, same name (a new field needs a type here)."""

_UPDATED = Column("updated_at", "DateTime64(3)")

VIDEOS = Table(
    "videos",
    (
        *_columns("video_id String, uri String, status LowCardinality(String), error String"),
        *MEDIA_COLUMNS,
        Column("metadata", "String"),
        Column("options", "String DEFAULT '{}'", since=2),
        *_columns(
            "expected String, frames_published UInt32, chunks_published UInt32, warnings Array(String), "
            "submitted_at Nullable(DateTime64(3)), started_at Nullable(DateTime64(3)), "
            "published_at Nullable(DateTime64(3)), completed_at Nullable(DateTime64(3))"
        ),
        _UPDATED,
    ),
    order_by="video_id",
)
RESULTS = Table(
    "results",
    (
        *_columns(
            "video_id String, analyzer LowCardinality(String), item_key String, model String, "
            "provenance LowCardinality(String), start_s Float64, end_s Float64, payload String, "
            "error String, produced_at DateTime64(3)"
        ),
        _UPDATED,
    ),
    order_by="(video_id, analyzer, item_key)",
)
SEGMENTS = Table(
    "segments",
    (
        *_columns("video_id String, segment_index UInt32, start_s Float64, end_s Float64, shot_index UInt32"),
        Column("fields", "String"),
        _UPDATED,
    ),
    order_by="(video_id, segment_index)",
)
RECONSTRUCTIONS = Table(
    "reconstructions",
    (
        *_columns("video_id String, status LowCardinality(String), format_version UInt16, document String"),
        _UPDATED,
    ),
    order_by="video_id",
)
WORDS = Table(
    "words",
    (
        *_columns(
            "video_id String, start_s Float64, end_s Float64, word String, speaker LowCardinality(String)"
        ),
        _UPDATED,
    ),
    order_by="(video_id, start_s, speaker, word)",
    indexes=(token_index("word_tokens", "word", since=3),),
)
TEXT_EVENTS = Table(
    "text_events",
    (*_columns("video_id String, start_s Float64, end_s Float64, text String, box Array(Float64)"), _UPDATED),
    order_by="(video_id, start_s, text)",
    indexes=(token_index("text_tokens", "text", since=3),),
)
TRACKS = Table(
    "tracks",
    (
        *_columns(
            "video_id String, track_id UInt32, label LowCardinality(String), first_s Float64, "
            "last_s Float64, frames UInt32"
        ),
        _UPDATED,
    ),
    order_by="(video_id, track_id)",
    indexes=(token_index("label_tokens", "label", since=3),),
)
MOMENTS = Table(
    "moments",
    (
        *_columns(
            "video_id String, kind LowCardinality(String), item String, start_s Float64, end_s Float64, "
            "text String, conf Nullable(Float64)"
        ),
        _UPDATED,
    ),
    order_by="(video_id, kind, item)",
    indexes=(token_index("moment_tokens", "text", since=1),),
)
"""Searchable moments that have no table of their own: face tracks, sound events, topics (`kind`). New in
version 3, so `ddl` makes it whole; nothing in it needs an ALTER."""
SHOTS = Table(
    "shots",
    (
        *_columns(
            "video_id String, shot_index UInt32, start_s Float64, end_s Float64, caption String, "
            "caption_model String, caption_provenance LowCardinality(String), thumbnail String"
        ),
        _UPDATED,
    ),
    order_by="(video_id, shot_index)",
)
DETECTIONS = Table(
    "detections",
    (
        *_columns(
            "video_id String, item_key String, start_s Float64, label LowCardinality(String), conf Float64"
        ),
        _UPDATED,
    ),
    order_by="(video_id, item_key, label, conf)",
)
VIDEOS_PER_MINUTE = Table(
    "videos_per_minute",
    (
        *_columns("minute DateTime, status LowCardinality(String), video_id String, run DateTime64(3)"),
        _UPDATED,
    ),
    order_by="(video_id, run)",
    ttl_column="minute",
    rebuilt=4,
)
"""Finished runs of videos by minute: one row per run (a video id submitted again is a new run), its last
terminal status winning, so read with FINAL and count rows. Every rewrite of a finished video's row (a
failed one is written on failure and again with its document) replaces its row instead of adding to a sum.
`minute` comes first: deleting a video (store.delete_video) leaves the history of finished videos intact."""
ANALYZER_MINUTE = Table(
    "analyzer_minute",
    _columns(
        "minute DateTime, analyzer LowCardinality(String), results UInt64, errors UInt64, "
        "latency_ms_sum Float64"
    ),
    order_by="(minute, analyzer)",
    engine="SummingMergeTree",
    ttl_column="minute",
)
TOP_OBJECTS_MINUTE = Table(
    "top_objects_minute",
    _columns("minute DateTime, label LowCardinality(String), detections UInt64"),
    order_by="(minute, label)",
    engine="SummingMergeTree",
    ttl_column="minute",
)
TOP_WORDS_MINUTE = Table(
    "top_words_minute",
    _columns("minute DateTime, word String, mentions UInt64"),
    order_by="(minute, word)",
    engine="SummingMergeTree",
    ttl_column="minute",
)
SCHEMA_VERSIONS = Table(
    "schema_version",
    _columns("version UInt32, applied_at DateTime64(3)"),
    order_by="version",
    engine="ReplacingMergeTree(applied_at)",
    ttl_column=None,
)

TABLES = (
    VIDEOS,
    RESULTS,
    SEGMENTS,
    RECONSTRUCTIONS,
    WORDS,
    TEXT_EVENTS,
    TRACKS,
    SHOTS,
    DETECTIONS,
    MOMENTS,
    VIDEOS_PER_MINUTE,
    ANALYZER_MINUTE,
    TOP_OBJECTS_MINUTE,
    TOP_WORDS_MINUTE,
    SCHEMA_VERSIONS,
)
VIEWS = (
    # every result whose payload has a `detections` list of {label, conf} (ARRAY JOIN skips the others)
    View(
        "detections_mv",
        DETECTIONS,
        "SELECT video_id, item_key, start_s, JSONExtractString(d, 'label') AS label, "
        "JSONExtractFloat(d, 'conf') AS conf, updated_at "
        "FROM {db}.results ARRAY JOIN JSONExtractArrayRaw(payload, 'detections') AS d",
        since=2,
    ),
    View(
        "videos_per_minute_mv",
        VIDEOS_PER_MINUTE,
        "SELECT toStartOfMinute(completed_at) AS minute, status, video_id, "
        "ifNull(ifNull(started_at, submitted_at), toDateTime64(0, 3)) AS run, updated_at FROM {db}.videos "
        f"WHERE status IN ({sql_list(TERMINAL)}) AND completed_at IS NOT NULL",
        since=4,
    ),
    View(
        "analyzer_minute_mv",
        ANALYZER_MINUTE,
        "SELECT toStartOfMinute(updated_at) AS minute, analyzer, count() AS results, "
        "countIf(error != '') AS errors, sum(dateDiff('millisecond', produced_at, updated_at)) AS latency_ms_sum "
        "FROM {db}.results GROUP BY minute, analyzer",
    ),
    View(
        "top_objects_minute_mv",
        TOP_OBJECTS_MINUTE,
        "SELECT toStartOfMinute(updated_at) AS minute, label, count() AS detections FROM {db}.detections "
        "GROUP BY minute, label",
    ),
    View(
        "top_words_minute_mv",
        TOP_WORDS_MINUTE,
        "SELECT toStartOfMinute(updated_at) AS minute, lower(w) AS word, count() AS mentions "
        "FROM {db}.text_events ARRAY JOIN splitByNonAlpha(text) AS w WHERE length(w) >= 3 GROUP BY minute, word",
    ),
)


def ddl(database: str, ttl_days: int, views: bool = True) -> list[str]:
    """CREATE statements, idempotent, in dependency order (a view after its source and target tables).

    `views=False` leaves the views out: ClickHouse checks a view's query against its target even when the
    view exists, so on an older database they are created after `upgrade` rebuilt their targets."""
    return [
        f"CREATE DATABASE IF NOT EXISTS {database}",
        *(t.create(database, ttl_days) for t in TABLES),
        *(v.create(database) for v in (VIEWS if views else ())),
    ]


def upgrade(database: str, applied: int, ttl_days: int) -> list[str]:
    """Statements that bring a database made by schema version `applied` to SCHEMA_VERSION (run after
    `ddl`): the columns added since; the views changed since, dropped and re-created; and the tables
    rebuilt since, dropped, re-created and refilled by their view's query over the source's rows. A
    database with no recorded version is taken as version 1 (the statements are idempotent)."""
    applied = max(applied, 1)
    statements = [s for t in TABLES for s in t.added_since(database, applied)]
    for view in VIEWS:
        rebuilt = view.target.rebuilt > applied
        if view.since > applied or rebuilt:
            statements.append(f"DROP VIEW IF EXISTS {database}.{view.name}")
            if rebuilt:
                statements += [
                    f"DROP TABLE IF EXISTS {database}.{view.target.name}",
                    view.target.create(database, ttl_days),
                ]
            statements.append(view.create(database))
            if rebuilt:
                statements.append(
                    f"INSERT INTO {database}.{view.target.name} {view.select.format(db=database)}"
                )
    return statements
