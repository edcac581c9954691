"""Wire events: round trips, old versions still decode, malformed events name the field at fault."""

from __future__ import annotations

import msgpack
import pytest
from reelscope.schemas.events import (
    EVENT_TYPES,
    AnalyzerResult,
    AudioChunk,
    DeadLetter,
    Frame,
    IngestRequest,
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

SAMPLES = [
    IngestRequest(video_id="v", uri="file:///a.mp4", metadata={"creator": "@me", "hashtags": ["#a"]}),
    VideoStarted(video_id="v", uri="file:///a.mp4", duration_s=3.0, width=720, height=1280, has_audio=True),
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
        {"kind": "video.part", "v": 1, "video_id": "v", "part": "shots", "status": "ok", "document": ""}
    )
    assert decode(old) == VideoPart(video_id="v", part="shots", status="ok", document="")


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
