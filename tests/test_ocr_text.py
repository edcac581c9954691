"""OCR analyzer: real PP-OCR reads on real and generated video, and the caption-event merging.

Measured on this 2-core CPU: ~0.15 s per 960x540 frame (counter.mp4), ~0.07 s at 640 px.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from reelscope.analyzers.base import FrameItem, ItemResult
from reelscope.analyzers.common.text_entities import extract_entities
from reelscope.analyzers.ocr_text import OcrTextAnalyzer, group_blocks, same_text

from tests.conftest import loaded_ocr

COUNTER = Path(__file__).resolve().parents[2] / "shared" / "media" / "counter.mp4"
MAX_SIDE = OcrTextAnalyzer.sampling.max_side


def decode_frames(path: Path) -> list[tuple[float, np.ndarray]]:
    """Every frame as (PTS seconds, RGB array resized so the longest side is the analyzer's max_side)."""
    import av

    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            img = Image.fromarray(rgb)
            scale = MAX_SIDE / max(img.size)
            img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BILINEAR)
            frames.append((float(frame.time), np.asarray(img)))
    return frames


def run(analyzer: OcrTextAnalyzer, frames: list[tuple[float, np.ndarray]]) -> list[ItemResult]:
    items = [
        FrameItem("v", i, pts, image, final=i == len(frames) - 1) for i, (pts, image) in enumerate(frames)
    ]
    payloads = analyzer.analyze(items)
    return [
        ItemResult(f"f{i:07d}", it.pts_s, it.pts_s, p)
        for i, (it, p) in enumerate(zip(items, payloads, strict=True))
    ]


@pytest.fixture(scope="module")
def analyzer() -> OcrTextAnalyzer:
    return loaded_ocr()


def test_counter_reads_each_frames_number_and_times_events(analyzer: OcrTextAnalyzer) -> None:
    if not COUNTER.exists():
        pytest.skip(f"shared media absent: {COUNTER}")
    frames = decode_frames(COUNTER)
    assert len(frames) == 30
    results = run(analyzer, frames)

    read_right = 0
    for n, r in enumerate(results, start=1):
        numbers = {
            int(m) for line in r.payload["lines"] for m in re.findall(r"Frame\s*=\s*(\d+)", line["text"])
        }
        read_right += numbers == {n}
    assert read_right >= 27, f"own number read on {read_right}/30 frames"

    summary = OcrTextAnalyzer.video_summary(results)
    assert summary is not None
    assert summary["frame_interval_s"] == pytest.approx(0.1, abs=1e-3)
    timed_right = 0
    for n in range(1, 31):
        pts = (n - 1) * 0.1
        matching = [e for e in summary["events"] if re.search(rf"Frame\s*=\s*{n}(?!\d)", e["text"])]
        if len(matching) == 1:
            event = matching[0]
            timed_right += event["start_s"] == pytest.approx(pts, abs=1e-3) and event[
                "end_s"
            ] == pytest.approx(pts + 0.1, abs=1e-3)
    assert timed_right >= 27, f"{timed_right}/30 numbers have one event spanning [PTS, PTS+0.1]"
    # Both lines of the overlay ("Frame = n" over "PTS = t s") form one block, hence one event.
    with_pts = [e for e in summary["events"] if re.search(r"Frame\s*=\s*\d+ PTS", e["text"])]
    assert len(with_pts) >= 27


def make_caption_video(path: Path, fps: int = 10, seconds: float = 3.6) -> tuple[float, float]:
    """A 960x540 H.264 clip: grain noise everywhere, a two-line caption that jitters by a pixel or two,
    shown from 0.3 s for exactly 3 s. Returns the caption's (start, end) in seconds."""
    import av

    rng = np.random.default_rng(7)
    font = ImageFont.load_default(size=34)
    shown = (3, 33)  # frame indices [first, last): 30 frames at 10 fps
    grains = [
        np.clip(
            np.full((540, 960, 3), (40, 70, 110), np.int16) + rng.integers(-12, 13, (540, 960, 3)), 0, 255
        ).astype(np.uint8)
        for _ in range(4)
    ]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 960, 540, "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        for i in range(round(seconds * fps)):
            img = Image.fromarray(grains[i % len(grains)])
            if shown[0] <= i < shown[1]:
                draw = ImageDraw.Draw(img)
                dx, dy = rng.integers(-2, 3, 2)
                for row, line in enumerate(("Wait for the ending", "you won't believe it")):
                    w = draw.textlength(line, font=font)
                    draw.text(
                        ((960 - w) / 2 + dx, 390 + row * 46 + dy),
                        line,
                        font=font,
                        fill="white",
                        stroke_width=3,
                        stroke_fill="black",
                    )
            frame = av.VideoFrame.from_ndarray(np.asarray(img), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return shown[0] / fps, shown[1] / fps


def test_two_line_caption_held_three_seconds_is_one_event(analyzer: OcrTextAnalyzer, tmp_path: Path) -> None:
    start, end = make_caption_video(tmp_path / "caption.mp4")
    results = run(analyzer, decode_frames(tmp_path / "caption.mp4"))
    summary = OcrTextAnalyzer.video_summary(results)
    assert summary is not None
    events = summary["events"]
    assert len(events) == 1, events
    event = events[0]
    assert same_text(event["text"], "Wait for the ending you won't believe it"), event["text"]
    assert event["start_s"] == pytest.approx(start, abs=1e-3)
    assert event["end_s"] == pytest.approx(end, abs=1e-3)
    assert 0.35 < (event["box"][0] + event["box"][2]) / 2 < 0.65
    assert event["box"][1] > 0.65


def _result(pts: float, *blocks: tuple[str, list[float]]) -> ItemResult:
    payload = {"blocks": [{"text": t, "box": b, "conf": 0.9} for t, b in blocks]}
    return ItemResult(f"f{round(pts * 10):07d}", pts, pts, payload)


def test_summary_tolerates_ocr_noise_and_a_missed_frame() -> None:
    cap = [0.2, 0.7, 0.8, 0.82]
    readings = {
        0.0: "Follow @chef.ana for more #pasta",
        0.5: "FolIow @chef.ana for more #pasta",  # I/l confusion
        1.0: None,  # OCR missed this frame
        1.5: "Follow @chef.ana for more #pasta",
        2.0: "Follow @chef.ana for",  # only part of the caption read
        2.5: "Follow @chef.ana for more #pasta",
    }
    results = [_result(t, (text, cap)) if text else _result(t) for t, text in readings.items()]
    # A different caption at the same place, then a price that changes: both are new events.
    results += [
        _result(3.0, ("Recipe at cooking.com/ana", cap)),
        _result(3.5, ("Only 5 dollars", cap)),
        _result(4.0, ("Only 6 dollars", cap)),
    ]
    summary = OcrTextAnalyzer.video_summary(results)
    assert summary is not None
    events = summary["events"]
    assert [e["text"] for e in events] == [
        "Follow @chef.ana for more #pasta",
        "Recipe at cooking.com/ana",
        "Only 5 dollars",
        "Only 6 dollars",
    ]
    assert (events[0]["start_s"], events[0]["end_s"], events[0]["frames"]) == (0.0, 3.0, 5)
    assert (events[1]["start_s"], events[1]["end_s"]) == (3.0, 3.5)
    assert summary["hashtags"] == ["#pasta"]
    assert summary["mentions"] == ["@chef.ana"]
    assert summary["links"] == ["cooking.com/ana"]


def test_summary_keeps_a_caption_gone_for_two_frames_as_two_events() -> None:
    cap = [0.2, 0.1, 0.8, 0.15]
    results = [_result(0.0, ("Part one", cap)), _result(0.5), _result(1.0), _result(1.5, ("Part one", cap))]
    events = OcrTextAnalyzer.video_summary(results)["events"]  # type: ignore[index]
    assert [(e["start_s"], e["end_s"]) for e in events] == [(0.0, 0.5), (1.5, 2.0)]


def test_blocks_join_stacked_lines_and_keep_separate_captions_apart() -> None:
    lines = [
        {"text": "you won't believe it", "box": [0.3, 0.78, 0.7, 0.82], "conf": 0.9},
        {"text": "Wait for the ending", "box": [0.32, 0.72, 0.68, 0.76], "conf": 0.8},
        {"text": "@brand", "box": [0.02, 0.02, 0.12, 0.05], "conf": 0.95},
        {"text": "tiny footer", "box": [0.35, 0.84, 0.6, 0.85], "conf": 0.9},
    ]
    blocks = group_blocks(lines)
    assert [b["text"] for b in blocks] == [
        "@brand",
        "Wait for the ending you won't believe it",
        "tiny footer",
    ]
    assert blocks[1]["box"] == [0.3, 0.72, 0.7, 0.82]


def test_segment_fields_dedupes_noisy_repeats() -> None:
    payloads = [
        {"blocks": [{"text": "Hello world", "box": [0, 0, 1, 1], "conf": 0.9}]},
        {
            "blocks": [
                {"text": "HelIo world", "box": [0, 0, 1, 1], "conf": 0.9},
                {"text": "Score 3", "box": [0, 0, 1, 1], "conf": 0.9},
            ]
        },
    ]
    assert OcrTextAnalyzer.segment_fields(payloads) == {
        "text": "Hello world | Score 3",
        "lines": ["Hello world", "Score 3"],
        "text_blocks": 2,
        "has_text": True,
    }
    assert OcrTextAnalyzer.segment_fields([{"blocks": []}])["has_text"] is False


def test_a_caption_with_a_pipe_stays_one_line_up_to_the_shot_context() -> None:
    """Lines travel as lists from the segment fields to what shot analyzers read: never split on ' | '."""
    from reelscope.analyzers.base import ItemResult
    from reelscope.sinks.reconstruction import build_segments, shot_context

    lines = ["Before | After", "50% off"]
    frames = [
        ItemResult(
            "f000000",
            0.2,
            0.2,
            {"blocks": [{"text": t, "box": [0.1, 0.1 + 0.3 * i, 0.9, 0.3 + 0.3 * i], "conf": 0.9}]},
        )
        for i, t in enumerate(lines)
    ]
    shot = {"index": 0, "start_s": 0.0, "end_s": 1.0}
    segments = build_segments({"ocr_text": frames}, {"ocr_text": OcrTextAnalyzer}, [shot], 0.0, 1.0, 1.0)
    assert segments[0]["ocr_text"]["lines"] == lines
    assert shot_context({"segments": segments}, shot)["text"] == lines


def test_entities() -> None:
    found = extract_entities(
        ["Link in bio: https://shop.example.com/x. #Sale #sale_2 write hi@mail.com @Shop_1"]
    )
    assert found["hashtags"] == ["#Sale", "#sale_2"]
    assert found["mentions"] == ["@Shop_1"]
    assert "https://shop.example.com/x" in found["links"]


def test_glued_digits_that_differ_are_different_lines_and_faint_text_is_no_event() -> None:
    """The sample clip's failure: OCR read `frame0` then `frame30` (no space) at the same place, and the two
    merged into one event; a half-read sign at confidence 0.6 became an event and keywords."""
    assert not same_text("frame0", "frame30") and not same_text("frame 0", "frame30")
    assert same_text("HELL0 world", "HELLO world")  # a 0 read for an O is still noise
    cap, sign = [0.01, 0.01, 0.25, 0.05], [0.6, 0.7, 0.8, 0.75]
    results = [_result(0.0, ("frame0", cap)), _result(0.5, ("frame15", cap)), _result(1.0, ("frame30", cap))]
    faint = {"blocks": [{"text": "OPFN 24H", "box": sign, "conf": 0.6}]}
    results += [ItemResult(f"s{k}", t, t, faint) for k, t in enumerate((0.0, 0.5, 1.0))]
    summary = OcrTextAnalyzer.video_summary(results)
    assert summary is not None
    assert [(e["text"], e["start_s"], e["end_s"]) for e in summary["events"]] == [
        ("frame0", 0.0, 0.5),
        ("frame15", 0.5, 1.0),
        ("frame30", 1.0, 1.5),
    ]
    assert summary["faint_texts_dropped"] == 1
    assert OcrTextAnalyzer.segment_fields([faint])["lines"] == []
