"""ClickHouse tables: the same DDL for embedded chdb and a ClickHouse server.

Every table that a redelivered event can write to is a ReplacingMergeTree keyed by the event's natural
identity, so at-least-once delivery never duplicates a row (read with FINAL). TTLs bound storage.
SCHEMA_VERSION is bumped when a table changes; `migrations` lists the statements that bring an older
database forward.
"""

from __future__ import annotations

SCHEMA_VERSION = 1


def ddl(database: str, ttl_days: int) -> list[str]:
    """CREATE statements, idempotent, in dependency order."""
    ttl = f"TTL toDateTime(updated_at) + INTERVAL {int(ttl_days)} DAY" if ttl_days > 0 else ""
    db = database
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}",
        f"""CREATE TABLE IF NOT EXISTS {db}.videos (
            video_id String,
            uri String,
            status LowCardinality(String),
            error String,
            duration_s Float64,
            start_s Float64,
            width UInt32,
            height UInt32,
            rotation Int16,
            avg_fps Nullable(Float64),
            real_fps Nullable(Float64),
            video_codec String,
            audio_codec String,
            has_video Bool,
            has_audio Bool,
            audio_channels UInt8,
            metadata String,
            expected String,
            frames_published UInt32,
            chunks_published UInt32,
            warnings Array(String),
            submitted_at Nullable(DateTime64(3)),
            started_at Nullable(DateTime64(3)),
            published_at Nullable(DateTime64(3)),
            completed_at Nullable(DateTime64(3)),
            updated_at DateTime64(3)
        ) ENGINE = ReplacingMergeTree(updated_at)
        ORDER BY video_id {ttl}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.results (
            video_id String,
            analyzer LowCardinality(String),
            item_key String,
            model String,
            provenance LowCardinality(String),
            start_s Float64,
            end_s Float64,
            payload String,
            error String,
            produced_at DateTime64(3),
            updated_at DateTime64(3)
        ) ENGINE = ReplacingMergeTree(updated_at)
        ORDER BY (video_id, analyzer, item_key) {ttl}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.segments (
            video_id String,
            segment_index UInt32,
            start_s Float64,
            end_s Float64,
            shot_index UInt32,
            fields String,
            updated_at DateTime64(3)
        ) ENGINE = ReplacingMergeTree(updated_at)
        ORDER BY (video_id, segment_index) {ttl}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.reconstructions (
            video_id String,
            status LowCardinality(String),
            format_version UInt16,
            document String,
            updated_at DateTime64(3)
        ) ENGINE = ReplacingMergeTree(updated_at)
        ORDER BY video_id {ttl}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.words (
            video_id String,
            start_s Float64,
            end_s Float64,
            word String,
            speaker LowCardinality(String),
            updated_at DateTime64(3)
        ) ENGINE = ReplacingMergeTree(updated_at)
        ORDER BY (video_id, start_s, speaker, word) {ttl}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.schema_version (
            version UInt32,
            applied_at DateTime64(3)
        ) ENGINE = ReplacingMergeTree(applied_at)
        ORDER BY version""",
    ]


VIDEO_COLUMNS = [
    "video_id",
    "uri",
    "status",
    "error",
    "duration_s",
    "start_s",
    "width",
    "height",
    "rotation",
    "avg_fps",
    "real_fps",
    "video_codec",
    "audio_codec",
    "has_video",
    "has_audio",
    "audio_channels",
    "metadata",
    "expected",
    "frames_published",
    "chunks_published",
    "warnings",
    "submitted_at",
    "started_at",
    "published_at",
    "completed_at",
    "updated_at",
]
RESULT_COLUMNS = [
    "video_id",
    "analyzer",
    "item_key",
    "model",
    "provenance",
    "start_s",
    "end_s",
    "payload",
    "error",
    "produced_at",
    "updated_at",
]
SEGMENT_COLUMNS = ["video_id", "segment_index", "start_s", "end_s", "shot_index", "fields", "updated_at"]
WORD_COLUMNS = ["video_id", "start_s", "end_s", "word", "speaker", "updated_at"]
RECONSTRUCTION_COLUMNS = ["video_id", "status", "format_version", "document", "updated_at"]
