"""WebVTT and Markdown exports from hand-made reconstructions: syntax, cue grouping, tolerance of gaps."""

from __future__ import annotations

import re
from typing import Any

import pytest
from reelscope.sinks.exports import MAX_CUE_S, MAX_LINE_CHARS, to_markdown, to_webvtt, vtt_time

TIMING = re.compile(
    r"^(\d{2}):([0-5]\d):([0-5]\d)\.(\d{3}) --> (\d{2}):([0-5]\d):([0-5]\d)\.(\d{3})((?: [a-z]+:\S+)*)$"
)


def _seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def parse_vtt(text: str) -> list[dict[str, Any]]:
    """Strict enough WebVTT parsing for tests: header, blank-line separated cues, HH:MM:SS.mmm timings
    with end after start, start times never decreasing, payloads without blank lines or '-->'."""
    assert text.startswith("WEBVTT\n"), text[:20]
    blocks = [b for b in text.split("\n\n")[1:] if b.strip()]
    cues: list[dict[str, Any]] = []
    for block in blocks:
        lines = block.strip("\n").split("\n")
        if "-->" not in lines[0]:
            lines = lines[1:]  # cue identifier
        match = TIMING.match(lines[0])
        assert match, f"bad timing line {lines[0]!r}"
        g = match.groups()
        start, end = _seconds(*g[0:4]), _seconds(*g[4:8])
        payload = lines[1:]
        assert end > start, lines[0]
        assert payload and all(line.strip() for line in payload), block
        assert not any("-->" in line for line in payload), block
        if cues:
            assert start >= cues[-1]["start"], "cue start times must not decrease"
        cues.append({"start": start, "end": end, "settings": g[8].strip(), "lines": payload})
    return cues


def words(text: str, start: float, step: float, speaker: str) -> list[dict[str, Any]]:
    out = []
    for i, word in enumerate(text.split()):
        t = start + i * step
        out.append(
            {"word": word, "start_s": round(t, 3), "end_s": round(t + step * 0.8, 3), "speaker": speaker}
        )
    return out


LEFT = "He began a confused complaint against the wizard, who had vanished behind the curtain on the left."
RIGHT = "The horizon seems extremely distant."


def voice_text(cues: list[dict[str, Any]], voice: str) -> str:
    """The words of one speaker's cues, in order, without tags."""
    tag = f"<v {voice}>"
    picked = [" ".join(c["lines"]) for c in cues if c["lines"][0].startswith(tag)]
    return " ".join(p.removeprefix(tag) for p in picked)


def test_vtt_time_format() -> None:
    assert vtt_time(0) == "00:00:00.000"
    assert vtt_time(3725.5) == "01:02:05.500"
    assert vtt_time(59.9996) == "00:01:00.000"
    assert vtt_time(-0.2) == "00:00:00.000"


def test_two_speakers_get_voice_tags_and_keep_every_word() -> None:
    doc = {"transcript": {"words": words(LEFT, 0.0, 0.28, "ch0") + words(RIGHT, 0.1, 0.4, "ch1")}}
    cues = parse_vtt(to_webvtt(doc))
    assert voice_text(cues, "ch0") == LEFT
    assert voice_text(cues, "ch1") == RIGHT
    assert all(c["lines"][0].startswith(("<v ch0>", "<v ch1>")) for c in cues)
    for c in cues:
        assert c["end"] - c["start"] <= MAX_CUE_S + 1e-6
        assert len(c["lines"]) <= 2
        assert all(len(re.sub(r"^<v \w+>", "", line)) <= MAX_LINE_CHARS for line in c["lines"])
    # the 17-word left channel needs more than one cue; the right one fits in one
    assert sum(c["lines"][0].startswith("<v ch0>") for c in cues) >= 2
    assert sum(c["lines"][0].startswith("<v ch1>") for c in cues) == 1


def test_one_speaker_cues_break_at_pauses_and_length() -> None:
    first = words("one two three four.", 0.0, 0.5, "S0")
    after_pause = words("five six seven", 5.0, 0.5, "S0")  # 3 s of silence before it
    long_run = words(" ".join(f"word{i}" for i in range(40)), 10.0, 0.3, "S0")
    cues = parse_vtt(to_webvtt({"transcript": {"words": first + after_pause + long_run}}))
    assert not any("<v" in line for c in cues for line in c["lines"])  # one speaker: no voice tags
    assert " ".join(cues[0]["lines"]) == "one two three four."
    assert cues[0]["start"] == 0.0 and cues[0]["end"] == pytest.approx(1.9)
    assert " ".join(cues[1]["lines"]) == "five six seven" and cues[1]["start"] == 5.0
    rest = cues[2:]
    assert " ".join(" ".join(c["lines"]) for c in rest) == " ".join(f"word{i}" for i in range(40))
    assert all(c["end"] - c["start"] <= MAX_CUE_S for c in rest)
    assert len(rest) >= 4  # 40 words x ~6 chars cannot fit in fewer cues of 84 characters


def test_on_screen_text_cues_are_placed_apart_and_escaped() -> None:
    doc = {
        "transcript": {"words": words("hello there", 0.5, 0.4, "S0")},
        "summaries": {
            "ocr_text": {
                "events": [
                    {"text": "SALE <b>50%</b> & more", "start_s": 0.0, "end_s": 2.0},
                    {"text": "second --> arrow", "start_s": 1.0, "end_s": 1.0},
                    {"text": "   ", "start_s": 1.5, "end_s": 3.0},
                ]
            }
        },
    }
    cues = parse_vtt(to_webvtt(doc))
    assert [c["start"] for c in cues] == [0.0, 0.5, 1.0]
    text_cues = [c for c in cues if c["lines"][0].startswith("TEXT:")]
    assert len(text_cues) == 2
    assert text_cues[0]["lines"] == ["TEXT: SALE &lt;b&gt;50%&lt;/b&gt; &amp; more"]
    assert all(c["settings"].startswith("line:") for c in text_cues)
    assert text_cues[1]["end"] > text_cues[1]["start"]  # a zero-length event still gets a valid cue
    assert cues[1]["lines"] == ["hello there"] and cues[1]["settings"] == ""


def test_vtt_tolerates_missing_fields() -> None:
    assert to_webvtt({}) == "WEBVTT\n"
    assert to_webvtt({"transcript": None, "summaries": {"ocr_text": None}}) == "WEBVTT\n"
    segments_only = {"transcript": {"segments": [{"start_s": 1.0, "end_s": 2.5, "text": " Hi. "}]}}
    cues = parse_vtt(to_webvtt(segments_only))
    assert [(c["start"], c["end"], c["lines"]) for c in cues] == [(1.0, 2.5, ["Hi."])]


FULL_DOC: dict[str, Any] = {
    "video_id": "clip-1",
    "status": "degraded",
    "description": {
        "text": "A cook slices onions, then plates a dish.",
        "model": "m",
        "provenance": "packaged",
    },
    "uri": "file:///videos/clip.mp4",
    "metadata": {"title": "Onion | tips", "creator": "<script>x</script>", "options": "extra cheese"},
    "duration_s": 6.0,
    "start_s": 0.0,
    "media": {"width": 720, "height": 1280, "rotation": 0, "avg_fps": 30.0, "video_codec": "h264"},
    "shots": [{"index": 0, "start_s": 0.0, "end_s": 2.5}, {"index": 1, "start_s": 2.5, "end_s": 6.0}],
    "transitions": [{"kind": "fade_out", "start_s": 5.0, "end_s": 6.0}],
    "transcript": {
        "language": "en",
        "words": [],
        "segments": [
            {"start_s": 0.2, "end_s": 2.0, "text": "First the onions.", "speaker": "ch0"},
            {"start_s": 3.0, "end_s": 4.0, "text": "Looks good!", "speaker": "ch1"},
        ],
    },
    "summaries": {
        "captions": {
            "shots": [
                {"start_s": 0.0, "end_s": 2.5, "caption": "hands slicing an onion"},
                {"start_s": 2.5, "end_s": 6.0, "caption": "a plated dish"},
            ],
            "description": "not used: the document's own description wins",
        },
        "ocr_text": {"events": [{"text": "STEP 1 | chop", "start_s": 0.0, "end_s": 2.0}]},
        "faces": {"face_share": 0.5, "max_faces": 1, "track_count": 1, "shot_type": "close-up", "tracks": []},
        "objects": {"max_counts": {"knife": 1, "bowl": 2}, "tracks_by_label": {"knife": 1}},
        "camera": {"dominant": "static", "seconds": {"static": 6.0}, "spans": []},
        "loudness": {"mean_rms_dbfs": -20.0, "silences": []},
    },
    "analyzers": {
        "scene": {
            "state": "complete",
            "expected": 180,
            "received": 180,
            "errors": 0,
            "model": "algorithm",
            "provenance": "algorithm",
        },
        "faces": {
            "state": "partial",
            "expected": 12,
            "received": 10,
            "errors": 2,
            "model": "mtcnn",
            "provenance": "packaged",
        },
    },
    "warnings": ["faces: 2 items failed"],
}


def test_markdown_report_has_every_section() -> None:
    md = to_markdown(FULL_DOC)
    assert md.startswith("# Onion | tips\n")
    assert "> A cook slices onions, then plates a dish." in md
    assert "**Status:** degraded" in md
    assert "| 0 | 0.00 | 2.50 | 2.50 s | hands slicing an onion |" in md
    assert "| 1 | 2.50 | 6.00 | 3.50 s | a plated dish |" in md
    assert "- `0:00.2` **ch0**: First the onions." in md
    assert "- `0:03.0` **ch1**: Looks good!" in md
    assert "| 0:00.0 | 0:02.0 | STEP 1 \\| chop |" in md  # one line of text, its pipe escaped
    assert "### Faces" in md and "50% of the time" in md and "close-up" in md
    assert "Most at once: knife 1, bowl 2." in md
    assert "### Camera" in md and "Mostly static." in md
    assert "### loudness" in md and "**mean_rms_dbfs**: -20.0" in md
    assert "| faces | partial | 10 / 12 | 2 | mtcnn | packaged |" in md
    assert "| scene | complete | 180 / 180 | 0 | algorithm | algorithm |" in md
    assert "## Warnings\n\n- faces: 2 items failed" in md
    assert "<script>" not in md and "&lt;script&gt;" in md  # submitted text cannot inject HTML
    assert "| creator |" in md and "| options | extra cheese |" in md  # the user's metadata, all of it
    assert "fade_out 0:05.0–0:06.0" in md
    # every table row has as many cells as its header
    for block in md.split("\n\n"):
        rows = [line for line in block.splitlines() if line.startswith("| ")]
        if rows:
            widths = {len(re.split(r"(?<!\\)\|", row)) for row in rows}
            assert len(widths) == 1, block


def test_markdown_tolerates_missing_and_odd_fields() -> None:
    assert to_markdown({}).startswith("# video\n")
    failed = to_markdown({"video_id": "v", "status": "failed", "error": "not a readable video"})
    assert "**Status:** failed — not a readable video" in failed
    odd = to_markdown(
        {
            "video_id": "v",
            "shots": [{"start_s": 0.0, "end_s": 1.0}],
            "transcript": {"text": "", "words": []},
            "summaries": {"weird": None, "listy": [1, 2], "captions": {"description": "composed text"}},
            "analyzers": {"x": {}},
        }
    )
    assert "> composed text" in odd
    assert "_No speech recognised._" in odd
    assert "| x |  | 0 / 0 | 0 |  |  |" in odd


PROMOTED_DOC: dict[str, Any] = {
    "video_id": "v2",
    "status": "complete",
    "description": {
        "description": "A dog runs on a beach.",
        "model": "Qwen2-VL",
        "provenance": "configured",
    },
    "shots": [
        {"index": 0, "start_s": 0.0, "end_s": 3.0, "caption": {"text": "a dog running", "mode": "model"}},
        {"index": 1, "start_s": 3.0, "end_s": 5.0, "caption": "waves at sunset"},
    ],
    "text_events": [{"text": "FOLLOW for more", "start_s": 1.0, "end_s": 2.5, "box": [0, 0, 1, 1]}],
    "faces": {"face_share": 0.25, "max_faces": 2, "track_count": 2, "shot_type": "wide", "tracks": []},
    "camera": {"dominant": "pan", "seconds": {"pan": 4.0}, "spans": []},
    "tracks": [
        {"track_id": 3, "label": "dog", "first_s": 0.0, "last_s": 2.9, "frames": 30, "mean_conf": 0.9}
    ],
    "about": {
        "keywords": [{"text": "beach dog", "score": 0.7}],
        "topics": [{"label": "pets", "score": 0.5}],
        "hashtags": ["#dogs"],
        "mentions": [],
        "links": [],
        "ctas": [
            {
                "kind": "follow",
                "text": "FOLLOW for more",
                "source": "screen",
                "start_s": 1.0,
                "end_s": 2.5,
            }
        ],
        "model": "all-MiniLM-L6-v2",
        "provenance": "packaged",
    },
    "summaries": {"ocr_text": {"events": [{"text": "ignored: text_events wins", "start_s": 0, "end_s": 1}]}},
}


def test_exports_read_promoted_fields() -> None:
    """The document layout with top-level description, text_events, faces, camera, tracks and about."""
    doc = PROMOTED_DOC
    md = to_markdown(doc)
    assert "> A dog runs on a beach." in md and "_Description by Qwen2-VL (configured)._" in md
    assert "| 0 | 0.00 | 3.00 | 3.00 s | a dog running |" in md
    assert "| 1 | 3.00 | 5.00 | 2.00 s | waves at sunset |" in md
    assert "| 0:01.0 | 0:02.5 | FOLLOW for more |" in md and "ignored" not in md
    assert "- **Topics**: pets" in md and "- **Keywords**: beach dog" in md and "- **Hashtags**: #dogs" in md
    assert "| 0:01.0 | 0:02.5 | follow | screen | FOLLOW for more |" in md
    assert "at most 2 at once" in md and "Mostly pan." in md
    assert "| 3 | dog | 0:00.0 | 0:02.9 | 30 | 0.9 |" in md
    cues = parse_vtt(to_webvtt(doc))
    assert [c["lines"] for c in cues] == [["TEXT: FOLLOW for more"]]
    assert (cues[0]["start"], cues[0]["end"]) == (1.0, 2.5)


def test_markdown_states_an_absent_stream_of_a_complete_video() -> None:
    md = to_markdown({"video_id": "v", "status": "complete", "absent_streams": ["audio"], "warnings": []})
    assert "**Status:** complete" in md and "**Streams absent:** audio" in md and "## Warnings" not in md
