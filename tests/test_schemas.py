"""Wire events and typed records: round trips, old versions still decode, malformed events name the field
at fault; the table spec, the statuses and the JSON Schemas."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
from reelscope.infra.core.settings import Settings
from reelscope.schemas.events import (
    EVENT_TYPES,
    AnalyzerResult,
    AudioChunk,
    DeadLetter,
    Frame,
    IngestRequest,
    ProcessorHeartbeat,
    SchemaError,
    ShotsReady,
    VideoDocument,
    VideoFailed,
    VideoFinished,
    VideoPart,
    VideoReady,
    VideoStarted,
    decode,
    encode,
)
from reelscope.schemas.json_schema import json_schemas
from reelscope.schemas.reconstruction import ReconstructionDocument
from reelscope.schemas.records import IN_FLIGHT, TERMINAL, Media, VideoStatus
from reelscope.schemas.tables import SCHEMA_VERSION, SCHEMA_VERSIONS, TABLES, VIDEOS, ddl
from reelscope.sinks.store import Store, now

SAMPLES = [
    IngestRequest(video_id="v", uri="file:///a.mp4", metadata={"creator": "@me", "hashtags": ["#a"]}),
    VideoStarted(
        video_id="v",
        uri="file:///a.mp4",
        media=Media(duration_s=3.0, width=720, height=1280, has_video=True, has_audio=True, avg_fps=29.97),
        metadata={"caption": "a | b"},
        options={"hotwords": ["reel"]},
        submitted_at=1_700_000_000.5,
    ),
    Frame(video_id="v", index=3, pts_s=0.1, width=4, height=2, jpeg=b"\xff\xd8", targets=["color"]),
    AudioChunk(video_id="v", index=0, start_s=0.0, end_s=1.0, pcm=b"\x00\x01", targets=["loudness"]),
    AnalyzerResult(
        video_id="v",
        analyzer="color",
        item_key="f0000003",
        model="m",
        provenance="algorithm",
        start_s=0.1,
        end_s=0.1,
        payload={"brightness": 0.5},
    ),
    VideoFinished(video_id="v", frames_published=3, chunks_published=1, expected={"color": 3}),
    VideoFailed(video_id="v", reason="boom"),
    DeadLetter(source_topic="t", partition=0, offset=7, original=b"x", error="bad"),
    ShotsReady(video_id="v", shots=[{"index": 0, "start_s": 0.0, "end_s": 2.0, "context": {"faces": 1}}]),
    VideoPart(video_id="v", part="shots", status="complete", document="[]", completion_id="c1"),
    VideoReady(video_id="v", completion_id="c1", phase="final", part=0, parts=2, body=b"\x81"),
    VideoDocument(video_id="v", completion_id="c1", phase="shots", part=1, parts=2, body=b"{}"),
    ProcessorHeartbeat(video_id="v", group="audio", member="host:42", busy_s=12.5, items=3, sent_at=1.0),
]


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.KIND)
def test_round_trip(event) -> None:  # type: ignore[no-untyped-def]
    assert decode(encode(event)) == event


def test_every_event_kind_is_covered() -> None:
    assert {e.KIND for e in SAMPLES} | {"reconstruction"} == set(EVENT_TYPES)


def test_version_1_ingest_request_still_decodes() -> None:
    old = msgpack.packb({"kind": "ingest", "v": 1, "video_id": "old", "path": "/videos/a.mp4"})
    event = decode(old)
    assert isinstance(event, IngestRequest)
    assert event.uri == "/videos/a.mp4" and event.metadata == {} and event.options == {}


def test_version_1_dead_letter_gains_the_size_and_digest_of_its_whole_original() -> None:
    old = msgpack.packb(
        {
            "kind": "dead-letter",
            "v": 1,
            "source_topic": "t",
            "partition": 0,
            "offset": 1,
            "original": b"abc",
            "error": "e",
        }
    )
    letter = decode(old)
    assert isinstance(letter, DeadLetter) and not letter.truncated
    assert letter.original_size == 3
    assert letter.original_sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_version_1_output_events_decode_without_a_completion_id() -> None:
    old = msgpack.packb(
        {"kind": "video.part", "v": 1, "video_id": "v", "part": "shots", "status": "complete", "document": ""}
    )
    assert decode(old) == VideoPart(video_id="v", part="shots", status="complete", document="")


def test_newer_version_than_known_is_refused() -> None:
    with pytest.raises(SchemaError, match="field 'v'"):
        decode(msgpack.packb({"kind": "ingest", "v": 99, "video_id": "x", "uri": "u"}))


def test_missing_field_is_named() -> None:
    body = {
        "kind": "frame",
        "v": 1,
        "video_id": "v",
        "index": 1,
        "pts_s": 0.0,
        "width": 4,
        "height": 2,
        "targets": [],
    }
    with pytest.raises(SchemaError, match="field 'jpeg'"):
        decode(msgpack.packb(body))


def test_wrong_type_is_named() -> None:
    body = msgpack.unpackb(encode(SAMPLES[3]))
    body["start_s"] = "soon"
    with pytest.raises(SchemaError, match="field 'start_s'"):
        decode(msgpack.packb(body))


@pytest.mark.parametrize("data", [b"", b"\xc1", msgpack.packb([1, 2]), msgpack.packb({"kind": "nope"})])
def test_garbage_is_a_schema_error(data: bytes) -> None:
    with pytest.raises(SchemaError):
        decode(data)


def test_unexpected_kind_on_a_topic() -> None:
    with pytest.raises(SchemaError, match="not expected"):
        decode(encode(SAMPLES[0]), expect=Frame)


def test_version_1_video_started_moves_media_and_system_fields_out_of_metadata() -> None:
    old = msgpack.packb(
        {
            "kind": "video.started",
            "v": 1,
            "video_id": "old",
            "uri": "file:///a.mp4",
            "duration_s": 3.0,
            "start_s": 1.075,
            "avg_fps": 25.0,
            "real_fps": 25.0,
            "width": 720,
            "height": 1280,
            "rotation": 90,
            "video_codec": "h264",
            "audio_codec": None,
            "has_video": True,
            "has_audio": False,
            "audio_channels": 0,
            "metadata": {"creator": "@me", "submitted_at": 1_700_000_000.5, "options": {"hotwords": ["x"]}},
            "started_at": 1_700_000_001.0,
        }
    )
    event = decode(old)
    assert isinstance(event, VideoStarted)
    assert event.media == Media(
        duration_s=3.0,
        start_s=1.075,
        avg_fps=25.0,
        real_fps=25.0,
        width=720,
        height=1280,
        rotation=90,
        video_codec="h264",
        audio_codec="",
        has_video=True,
        has_audio=False,
        audio_channels=0,
    )
    assert event.metadata == {"creator": "@me"}  # only what the user sent
    assert event.submitted_at == 1_700_000_000.5 and event.options == {"hotwords": ["x"]}
    assert event.started_at == 1_700_000_001.0


def test_media_round_trips_through_the_videos_row() -> None:
    """A Media record is the videos row's media columns, by name, and comes back whole from a row."""
    from reelscope.schemas.tables import MEDIA_COLUMNS, VIDEOS

    media = Media(duration_s=2.5, width=720, height=1280, rotation=90, real_fps=30.0, video_codec="hevc")
    assert [c.name for c in MEDIA_COLUMNS] == list(Media.model_fields)
    assert {c.name for c in MEDIA_COLUMNS} <= set(VIDEOS.names)
    row = {**dict.fromkeys(VIDEOS.names, "other"), **media.model_dump()}
    assert Media.model_validate(dict(zip(VIDEOS.names, VIDEOS.row(row), strict=True))) == media


def test_video_status_values_are_the_stored_strings() -> None:
    assert [s.value for s in VideoStatus] == [
        "processing",
        "published",
        "describing",
        "complete",
        "degraded",
        "failed",
    ]
    assert VideoStatus("complete") == "complete" and f"{VideoStatus.FAILED}" == "failed"
    assert set(VideoStatus) == TERMINAL | IN_FLIGHT and not TERMINAL & IN_FLIGHT
    part = VideoPart(video_id="v", part="shots", status="degraded", document="[]")
    assert msgpack.unpackb(encode(part))["status"] == "degraded" and decode(encode(part)) == part


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A real embedded ClickHouse (chdb) in a temporary directory."""
    s = Store(Settings(state_dir=tmp_path))
    yield s
    s.close()


def table_columns(store: Store, table: str) -> list[str]:
    rows = store.client.query(
        "SELECT name FROM system.columns WHERE database = %(d)s AND table = %(t)s ORDER BY position",
        parameters={"d": store.db, "t": table},
    ).result_rows
    return [r[0] for r in rows]


def detections_of(store: Store, video_id: str) -> list[tuple[str, float]]:
    return [
        (r["label"], r["conf"])
        for r in store.rows(
            f"SELECT label, conf FROM {store.db}.detections FINAL WHERE video_id = %(v)s ORDER BY conf",
            v=video_id,
        )
    ]


def result(video_id: str, analyzer: str, payload: dict) -> AnalyzerResult:
    return AnalyzerResult(
        video_id=video_id,
        analyzer=analyzer,
        item_key="f0000000",
        model="m",
        provenance="algorithm",
        start_s=0.0,
        end_s=0.0,
        payload=payload,
    )


def test_the_table_spec_makes_the_tables_rows_are_inserted_into(store: Store) -> None:
    """The DDL and the insert column lists come from one spec; rows are records matched by column name."""
    from reelscope.sinks.aggregator import apply_lifecycle, empty_video, result_row

    store.create_tables()
    for table in TABLES:
        assert table_columns(store, table.name) == table.names, table.name
    started = SAMPLES[1]
    assert isinstance(started, VideoStarted)
    store.upsert_video(apply_lifecycle(empty_video("v"), started))
    row = store.video("v")
    assert row is not None and row["status"] == VideoStatus.PROCESSING
    assert Media.model_validate(row) == started.media
    assert json.loads(row["metadata"]) == started.metadata and json.loads(row["options"]) == started.options
    assert row["submitted_at"].timestamp() == pytest.approx(started.submitted_at, abs=1e-3)
    # any analyzer whose payload has a `detections` list feeds the detections table, not only `objects`
    detections = [{"label": "logo", "conf": 0.75}, {"label": "logo", "conf": 0.5}]
    store.insert_results(
        [
            result_row(r, now())
            for r in (result("v", "logos", {"detections": detections}), result("v", "color", {}))
        ]
    )
    assert detections_of(store, "v") == [("logo", 0.5), ("logo", 0.75)]


def test_a_version_1_database_is_upgraded(store: Store) -> None:
    """A database made by schema version 1 gets the new column and the analyzer-neutral detections view."""
    from reelscope.sinks.aggregator import empty_video, result_row

    db = store.db
    for statement in ddl(db, 0):  # version 1: no videos.options, a detections view for `objects` only
        store.client.command(statement)
    store.client.command(f"ALTER TABLE {db}.videos DROP COLUMN options")
    store.client.command(f"DROP VIEW {db}.detections_mv")
    store.client.command(
        f"CREATE MATERIALIZED VIEW {db}.detections_mv TO {db}.detections AS SELECT video_id, item_key, "
        f"start_s, JSONExtractString(d, 'label') AS label, JSONExtractFloat(d, 'conf') AS conf, updated_at "
        f"FROM {db}.results ARRAY JOIN JSONExtractArrayRaw(payload, 'detections') AS d "
        f"WHERE analyzer = 'objects'"
    )
    store.insert(SCHEMA_VERSIONS, [{"version": 1, "applied_at": now()}])
    columns = [n for n in VIDEOS.names if n != "options"]
    row = {**empty_video("old"), "updated_at": now()}
    store.client.insert(f"{db}.videos", [[row[n] for n in columns]], column_names=columns)

    store.create_tables()

    assert table_columns(store, "videos") == VIDEOS.names
    row = store.video("old")
    assert row is not None and json.loads(row["options"]) == {}
    store.insert_results(
        [result_row(result("old", "logos", {"detections": [{"label": "x", "conf": 0.9}]}), now())]
    )
    assert detections_of(store, "old") == [("x", 0.9)]
    assert store.scalar(f"SELECT max(version) FROM {db}.schema_version") == SCHEMA_VERSION


def assert_valid_document(doc: dict) -> None:
    """A reconstruction document, as JSON, validates against the published JSON Schema and loads as the
    model; it has no key the model does not declare."""
    import jsonschema  # the `test` extra

    doc = json.loads(json.dumps(doc))
    jsonschema.validate(doc, json_schemas()["reconstruction"])
    undeclared = set(doc) - set(ReconstructionDocument.model_fields)
    assert not undeclared, undeclared
    assert ReconstructionDocument.model_validate(doc).model_dump(mode="json") == doc


def test_the_built_document_is_the_model_and_matches_its_json_schema() -> None:
    from reelscope.analyzers.ocr_text import OcrTextAnalyzer
    from reelscope.sinks.aggregator import apply_lifecycle, empty_video, result_row
    from reelscope.sinks.reconstruction import build

    row = apply_lifecycle(empty_video("v"), SAMPLES[1])
    row = apply_lifecycle(
        row, VideoFinished(video_id="v", frames_published=1, chunks_published=0, expected={"ocr_text": 1})
    )
    block = {"text": "Sale | today", "box": [0.1, 0.1, 0.9, 0.2], "conf": 0.9}
    stored = result_row(result("v", "ocr_text", {"blocks": [block]}), now())
    doc = build(row, [stored], {"ocr_text": OcrTextAnalyzer}, 1.0, enrich=False)
    assert doc["status"] == "complete" and doc["metadata"] == {"caption": "a | b"}
    assert doc["options"] == {"hotwords": ["reel"]}
    assert doc["media"] == SAMPLES[1].media.model_dump()
    assert doc["text_events"][0]["text"] == "Sale | today"
    assert "caption" not in doc["shots"][0] and "timings" not in doc  # sometimes-keys are left out, not null
    assert_valid_document(doc)


def test_json_schemas_cover_the_document_and_every_event() -> None:
    import subprocess
    import sys

    schemas = json_schemas()
    assert set(schemas["events"]) == set(EVENT_TYPES)
    started = schemas["events"]["video.started"]
    assert started["properties"]["v"]["const"] == 2 and {"kind", "v", "media"} <= set(started["required"])
    assert schemas["reconstruction"]["properties"]["status"]["$ref"].endswith("VideoStatus")
    run = subprocess.run(
        [sys.executable, "-m", "reelscope.schemas.json_schema"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == json.loads(json.dumps(schemas))
