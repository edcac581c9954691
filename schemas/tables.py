"""ClickHouse tables: the same DDL for embedded chdb and a ClickHouse server.

Every table that a redelivered event can write to is a ReplacingMergeTree keyed by the event's natural
identity, so at-least-once delivery never duplicates a row (read with FINAL). TTLs bound storage.
SCHEMA_VERSION is bumped when a table changes. Materialized views keep the live aggregates the dashboard
reads (videos per minute, analyzer latency, top objects, top on-screen words) up to date as rows arrive.
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
        f"""CREATE TABLE IF NOT EXISTS {db}.text_events (
            video_id String,
            start_s Float64,
            end_s Float64,
            text String,
            box Array(Float64),
            updated_at DateTime64(3)
        ) ENGINE = ReplacingMergeTree(updated_at)
        ORDER BY (video_id, start_s, text) {ttl}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.tracks (
            video_id String,
            track_id UInt32,
            label LowCardinality(String),
            first_s Float64,
            last_s Float64,
            frames UInt32,
            updated_at DateTime64(3)
        ) ENGINE = ReplacingMergeTree(updated_at)
        ORDER BY (video_id, track_id) {ttl}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.shots (
            video_id String,
            shot_index UInt32,
            start_s Float64,
            end_s Float64,
            caption String,
            caption_model String,
            caption_provenance LowCardinality(String),
            thumbnail String,
            updated_at DateTime64(3)
        ) ENGINE = ReplacingMergeTree(updated_at)
        ORDER BY (video_id, shot_index) {ttl}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.detections (
            video_id String,
            item_key String,
            start_s Float64,
            label LowCardinality(String),
            conf Float64,
            updated_at DateTime64(3)
        ) ENGINE = ReplacingMergeTree(updated_at)
        ORDER BY (video_id, item_key, label, conf) {ttl}""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.detections_mv TO {db}.detections AS
        SELECT video_id, item_key, start_s, JSONExtractString(d, 'label') AS label,
               JSONExtractFloat(d, 'conf') AS conf, updated_at
        FROM {db}.results ARRAY JOIN JSONExtractArrayRaw(payload, 'detections') AS d
        WHERE analyzer = 'objects'""",
        f"""CREATE TABLE IF NOT EXISTS {db}.videos_per_minute (
            minute DateTime, status LowCardinality(String), videos UInt64
        ) ENGINE = SummingMergeTree ORDER BY (minute, status) {ttl.replace("updated_at", "minute")}""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.videos_per_minute_mv TO {db}.videos_per_minute AS
        SELECT toStartOfMinute(completed_at) AS minute, status, count() AS videos FROM {db}.videos
        WHERE status IN ('complete', 'degraded', 'failed') AND completed_at IS NOT NULL
        GROUP BY minute, status""",
        f"""CREATE TABLE IF NOT EXISTS {db}.analyzer_minute (
            minute DateTime, analyzer LowCardinality(String), results UInt64, errors UInt64,
            latency_ms_sum Float64
        ) ENGINE = SummingMergeTree ORDER BY (minute, analyzer) {ttl.replace("updated_at", "minute")}""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.analyzer_minute_mv TO {db}.analyzer_minute AS
        SELECT toStartOfMinute(updated_at) AS minute, analyzer, count() AS results, countIf(error != '') AS errors,
               sum(dateDiff('millisecond', produced_at, updated_at)) AS latency_ms_sum
        FROM {db}.results GROUP BY minute, analyzer""",
        f"""CREATE TABLE IF NOT EXISTS {db}.top_objects_minute (
            minute DateTime, label LowCardinality(String), detections UInt64
        ) ENGINE = SummingMergeTree ORDER BY (minute, label) {ttl.replace("updated_at", "minute")}""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.top_objects_minute_mv TO {db}.top_objects_minute AS
        SELECT toStartOfMinute(updated_at) AS minute, label, count() AS detections FROM {db}.detections
        GROUP BY minute, label""",
        f"""CREATE TABLE IF NOT EXISTS {db}.top_words_minute (
            minute DateTime, word String, mentions UInt64
        ) ENGINE = SummingMergeTree ORDER BY (minute, word) {ttl.replace("updated_at", "minute")}""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.top_words_minute_mv TO {db}.top_words_minute AS
        SELECT toStartOfMinute(updated_at) AS minute, lower(w) AS word, count() AS mentions
        FROM {db}.text_events ARRAY JOIN splitByNonAlpha(text) AS w
        WHERE length(w) >= 3 GROUP BY minute, word""",
        f"""CREATE TABLE IF NOT EXISTS {db}.schema_version (
            version UInt32,
            applied_at DateTime64(3)
        ) ENGINE = ReplacingMergeTree(applied_at)
        ORDER BY version""",
    ]


MEDIA_COLUMNS = [
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
]
"""The videos columns that describe the media itself (the reconstruction's `media` block)."""
VIDEO_COLUMNS = [
    "video_id",
    "uri",
    "status",
    "error",
    "duration_s",
    "start_s",
    *MEDIA_COLUMNS,
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
TEXT_EVENT_COLUMNS = ["video_id", "start_s", "end_s", "text", "box", "updated_at"]
TRACK_COLUMNS = ["video_id", "track_id", "label", "first_s", "last_s", "frames", "updated_at"]
SHOT_COLUMNS = [
    "video_id",
    "shot_index",
    "start_s",
    "end_s",
    "caption",
    "caption_model",
    "caption_provenance",
    "thumbnail",
    "updated_at",
]
RECONSTRUCTION_COLUMNS = ["video_id", "status", "format_version", "document", "updated_at"]
