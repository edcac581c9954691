"""The reconstruction sent on the topic stays under the broker's message limit and says what it left out."""

from __future__ import annotations

import json

from reelscope.sinks.reconstruction import for_event, part_for_event

DOC = {
    "video_id": "v",
    "shots": [{"index": i, "start_s": i, "end_s": i + 1, "thumbnail": "x" * 5000} for i in range(20)],
    "segments": [
        {"index": i, "start_s": i, "end_s": i + 1, "scene": {"brightness": 0.5}} for i in range(400)
    ],
}


def test_small_documents_go_out_whole() -> None:
    assert json.loads(for_event(DOC, 10_000_000)) == DOC


def test_thumbnails_go_first_then_segments() -> None:
    without_thumbnails = json.loads(for_event(DOC, 60_000))
    assert without_thumbnails["omitted"] == ["shots[].thumbnail"]
    assert "thumbnail" not in without_thumbnails["shots"][0] and len(without_thumbnails["segments"]) == 400
    tiny = for_event(DOC, 5_000)
    assert json.loads(tiny)["omitted"] == ["shots[].thumbnail", "segments"] and len(tiny) < 5_000


def test_the_shots_part_drops_thumbnails_only_when_too_large() -> None:
    assert json.loads(part_for_event(DOC, "shots", 10_000_000)) == DOC["shots"]
    assert "thumbnail" not in json.loads(part_for_event(DOC, "shots", 50_000))[0]
