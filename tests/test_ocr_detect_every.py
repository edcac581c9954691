"""OCR detection on every k-th sampled frame (issue 18): in between, the last detection's lines are read
again in place; a stream's first frame, a cut, and a line gone, faint or grown detect at once. Real RapidOCR
models on generated frames: captions over a background that pans (every frame changes outside the lines,
so the older gates skip nothing)."""

from __future__ import annotations

import numpy as np
import pytest
from reelscope.analyzers.base import FrameItem, ItemResult
from reelscope.analyzers.ocr_text import OcrTextAnalyzer, OcrTextOptions
from reelscope.infra.sample_media import textured, with_text

from tests.test_ocr_gating import add_text, frame, texts


def loaded(**options: object) -> OcrTextAnalyzer:
    pytest.importorskip("rapidocr_onnxruntime")
    analyzer = OcrTextAnalyzer(OcrTextOptions(**options))  # type: ignore[arg-type]
    analyzer.load()
    return analyzer


def run(analyzer: OcrTextAnalyzer, frames: list[np.ndarray]) -> list[dict]:
    return [
        analyzer.analyze([FrameItem("v", i, i * 0.5, image, first=i == 0)])[0]
        for i, image in enumerate(frames)
    ]


def squeezed(payload: dict) -> list[str]:
    return sorted(t.replace(" ", "") for t in texts(payload))


def counter_over_pan(n: int = 6) -> list[np.ndarray]:
    """A counter changing on every frame over a background panning by 4 px a frame (a quarter of its blocks)."""
    return [frame(f"HELLO {120 + i}", 4 * i) for i in range(n)]


def test_detection_skipped_between_detections_with_the_same_readings() -> None:
    every = loaded(detect_every=1)
    second = loaded()
    assert second.options.detect_every == 2
    frames = counter_over_pan()
    want = [squeezed(p) for p in run(every, frames)]
    assert want == [[f"HELLO{120 + i}"] for i in range(6)]
    assert [squeezed(p) for p in run(second, frames)] == want
    assert (every.detections, every.detections_deferred) == (6, 0)
    # frames 0, 2, 4 detect; 1, 3, 5 read the counter again in its box
    assert (second.detections, second.detections_deferred, second.detections_skipped) == (3, 3, 3)


def test_detect_every_three() -> None:
    analyzer = loaded(detect_every=3)
    assert [squeezed(p) for p in run(analyzer, counter_over_pan())] == [[f"HELLO{120 + i}"] for i in range(6)]
    assert (analyzer.detections, analyzer.detections_deferred) == (2, 4)


def test_new_caption_between_detections_is_found_at_the_next() -> None:
    """Text that appears on a frame between detections is found by the next detection, one sampled frame
    later: its event starts 0.5 s late at 2 fps (the documented price)."""
    analyzer = loaded()
    frames = [
        frame("HELLO 123", 0),
        add_text(frame("HELLO 123", 4), "NEW TEXT 77", (300, 250)),
        add_text(frame("HELLO 123", 8), "NEW TEXT 77", (300, 250)),
        add_text(frame("HELLO 123", 12), "NEW TEXT 77", (300, 250)),
    ]
    payloads = run(analyzer, frames)
    assert [squeezed(p) for p in payloads] == [["HELLO123"], ["HELLO123"]] + [["HELLO123", "NEWTEXT77"]] * 2
    assert (analyzer.detections, analyzer.detections_deferred) == (2, 2)
    results = [ItemResult(f"f{i}", i * 0.5, i * 0.5, p) for i, p in enumerate(payloads)]
    events = {e["text"].replace(" ", ""): e for e in OcrTextAnalyzer.video_summary(results)["events"]}
    assert events["NEWTEXT77"]["start_s"] == 1.0  # it appeared at 0.5
    assert events["HELLO123"]["start_s"] == 0.0


def test_text_elsewhere_on_a_detection_frame_is_found_at_once() -> None:
    """The same new text on a frame where detection is due: found on that frame."""
    analyzer = loaded()
    frames = [
        frame("HELLO 123", 0),
        frame("HELLO 123", 4),
        add_text(frame("HELLO 123", 8), "NEW TEXT 77", (300, 250)),
    ]
    assert [squeezed(p) for p in run(analyzer, frames)][2] == ["HELLO123", "NEWTEXT77"]


def moved(text: str, shift: int) -> np.ndarray:
    """The caption on its black box in the middle of the frame instead of the top left."""
    return add_text(textured(640, 360, 3, shift=shift), text, (250, 200))


def at(y: int, shift: int, text: str = "HELLO 123") -> np.ndarray:
    """The caption on its black box at height `y` of the panning background."""
    return add_text(textured(640, 360, 3, shift=shift), text, (20, y))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (frame("HELLO 123", 0), moved("HELLO 123", 4)),  # down and across: nothing left in its band
        # down by 36 px: the band (one line height above and below) cuts the line, which would read `123`
        (at(150, 0), at(186, 4)),
    ],
)
def test_caption_that_moves_away_detects_at_once(first: np.ndarray, second: np.ndarray) -> None:
    analyzer = loaded()
    payloads = run(analyzer, [first, second])
    assert [squeezed(p) for p in payloads] == [["HELLO123"], ["HELLO123"]]
    assert (analyzer.detections, analyzer.detections_deferred) == (2, 0)


def test_caption_that_moves_within_its_band_is_read_there() -> None:
    analyzer = loaded()
    payloads = run(analyzer, [at(150, 0), at(170, 4)])
    assert [squeezed(p) for p in payloads] == [["HELLO123"], ["HELLO123"]]
    assert payloads[1]["lines"][0]["box"][1] > payloads[0]["lines"][0]["box"][1] + 0.04  # its new place
    assert (analyzer.detections, analyzer.detections_deferred) == (1, 1)


@pytest.mark.parametrize("grown", ["HELLO 123 WORLD", "HELLO 12345678"])
def test_caption_that_grows_is_read_whole_at_once(grown: str) -> None:
    """A caption that grew past its box (the box's own pixels unchanged): the band across the frame's width
    finds the whole line, without full detection."""
    analyzer = loaded()
    payloads = run(analyzer, [frame("HELLO 123", 0), frame(grown, 4)])
    assert [squeezed(p) for p in payloads] == [["HELLO123"], [grown.replace(" ", "")]]
    assert (analyzer.detections, analyzer.detections_deferred) == (1, 1)


def test_faint_reading_detects_at_once() -> None:
    """The confidence fallback: the caption's lower half covered, the line found in its band reads under
    the event floor, so full detection runs on that frame."""
    first = loaded()
    run(first, [frame("HELLO 123", 0)])
    x0, y0, x1, y1 = first._memory.get("v").regions[0].rect
    covered = frame("HELLO 123", 4).copy()
    covered[y0 + (y1 - y0) // 2 : y1 - 2, x0 + 2 : x1 - 2] = 0
    analyzer = loaded()
    payloads = run(analyzer, [frame("HELLO 123", 0), covered])
    assert all(line["conf"] < 0.8 for line in payloads[1]["lines"])
    assert (analyzer.detections, analyzer.detections_deferred) == (2, 0)


def test_caption_gone_detects_at_once() -> None:
    analyzer = loaded()
    payloads = run(analyzer, [frame("HELLO 123", 0), textured(640, 360, 3, shift=4)])
    assert [texts(p) for p in payloads] == [["HELLO 123"], []]
    assert (analyzer.detections, analyzer.detections_deferred) == (2, 0)


def cut_frames() -> list[np.ndarray]:
    """A caption over one scene, then a cut to another (another texture and tint) with new text in it."""
    before = with_text(textured(640, 360, 1), "HELLO 123")
    after = add_text(with_text(textured(640, 360, 2), "HELLO 123"), "NEW TEXT 77", (300, 250))
    return [before, after]


def test_cut_detects_at_once() -> None:
    analyzer = loaded()
    assert [squeezed(p) for p in run(analyzer, cut_frames())] == [["HELLO123"], ["HELLO123", "NEWTEXT77"]]
    assert (analyzer.detections, analyzer.detections_deferred) == (2, 0)


def test_without_the_cut_rule_the_new_scene_waits() -> None:
    """The control of the test above: with the cut threshold out of reach the same frames defer detection,
    and the new scene's text is not read on its first frame."""
    analyzer = loaded(cut_threshold=255.0)
    assert [squeezed(p) for p in run(analyzer, cut_frames())] == [["HELLO123"], ["HELLO123"]]
    assert (analyzer.detections, analyzer.detections_deferred) == (1, 1)


def test_text_free_video_detects_every_other_frame() -> None:
    """No line found is no reason to detect: the saving on video without text."""
    analyzer = loaded()
    payloads = run(analyzer, [textured(640, 360, 3, shift=4 * i) for i in range(4)])
    assert [texts(p) for p in payloads] == [[]] * 4
    assert (analyzer.detections, analyzer.detections_deferred) == (2, 2)


def test_detect_every_one_detects_every_changed_frame() -> None:
    """detect_every=1 restores the older gating: every frame that changed outside the lines detects, and
    the readings are those of no gating at all."""
    analyzer = loaded(detect_every=1)
    plain = loaded(reuse_unchanged=False)
    frames = counter_over_pan(4) + [frame("HELLO 123", 12)] * 2
    got = run(analyzer, frames)
    assert [texts(p) for p in got] == [texts(p) for p in run(plain, frames)]
    # the last two frames are the one before them unchanged: reused whole, no detection
    assert (analyzer.detections, analyzer.detections_deferred, analyzer.frames_reused) == (4, 0, 2)


def test_a_new_stream_detects_at_once() -> None:
    """A video's first item forgets the last detection, even when the next one is not due."""
    analyzer = loaded()
    run(analyzer, [frame("HELLO 123", 0)])
    replay = analyzer.analyze([FrameItem("v", 0, 0.0, frame("HELLO 999", 4), first=True)])
    assert texts(replay[0]) == ["HELLO 999"] and analyzer.detections == 2
