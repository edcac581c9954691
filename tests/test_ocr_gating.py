"""OCR work not repeated (issue 18): a text line is recognised again only when the pixels under it changed,
per video; a frame with no change reuses the whole reading. Real RapidOCR on generated frames."""

from __future__ import annotations

import numpy as np
import pytest
from reelscope.analyzers.base import FrameItem
from reelscope.analyzers.common.change_gate import VideoMemory, changed, signature
from reelscope.analyzers.ocr_text import OcrTextAnalyzer, OcrTextOptions
from reelscope.infra.sample_media import textured, with_text

from tests.conftest import loaded_ocr


def frame(text: str, shift: int, seed: int = 3) -> np.ndarray:
    """A caption on a black box over a background that pans by `shift` pixels (360x640, landscape)."""
    return with_text(textured(640, 360, seed, shift=shift), text)


def texts(payload: dict) -> list[str]:
    return [line["text"] for line in payload["lines"]]


@pytest.fixture
def analyzer() -> OcrTextAnalyzer:
    return loaded_ocr()


def test_unchanged_line_is_reused_and_a_changed_one_read_again(analyzer: OcrTextAnalyzer) -> None:
    frames = [frame("HELLO 123", 0), frame("HELLO 123", 8), frame("HELLO 124", 16), frame("HELLO 124", 16)]
    read = []
    for i, image in enumerate(frames):
        read.append(texts(analyzer.analyze([FrameItem("v", i, i * 0.5, image, first=i == 0)])[0]))
        read[-1].append((analyzer.recognised, analyzer.reused, analyzer.frames_reused))
    assert read[0] == ["HELLO 123", (1, 0, 0)]
    # the background moved, so detection ran again; the caption's pixels did not: its reading is reused
    assert read[1] == ["HELLO 123", (1, 1, 0)]
    # one digit changed: read again, and read right
    assert read[2] == ["HELLO 124", (2, 1, 0)]
    # nothing changed at all: the frame's whole reading is reused, without detection
    assert read[3] == ["HELLO 124", (2, 1, 1)]


def test_memory_is_per_video_and_restarts_with_the_stream(analyzer: OcrTextAnalyzer) -> None:
    """Two videos in one batch (as a processor mixes them) with different captions at the same place:
    neither takes the other's reading; a stream's first item forgets what was seen before."""
    batch = [
        FrameItem("a", 0, 0.0, frame("HELLO 123", 0), first=True),
        FrameItem("b", 0, 0.0, frame("HELLO 987", 0), first=True),
        FrameItem("a", 1, 0.5, frame("HELLO 123", 0)),
        FrameItem("b", 1, 0.5, frame("HELLO 987", 0), final=True),
    ]
    assert [texts(p) for p in analyzer.analyze(batch)] == [["HELLO 123"], ["HELLO 987"]] * 2
    assert (analyzer.recognised, analyzer.frames_reused) == (2, 2)
    assert len(analyzer._memory) == 1  # b's final item forgot it
    replay = analyzer.analyze([FrameItem("a", 0, 0.0, frame("HELLO 123", 0), first=True)])
    assert texts(replay[0]) == ["HELLO 123"] and analyzer.recognised == 3


def test_gating_off_reads_every_line_every_frame() -> None:
    pytest.importorskip("rapidocr_onnxruntime")
    a = OcrTextAnalyzer(OcrTextOptions(reuse_unchanged=False))
    a.load()
    items = [FrameItem("v", i, i * 0.5, frame("HELLO 123", 0), first=i == 0) for i in range(3)]
    assert [texts(p) for p in a.analyze(items)] == [["HELLO 123"]] * 3
    assert (a.recognised, a.reused, a.frames_reused) == (3, 0, 0)


def test_signature_sees_one_character_not_noise() -> None:
    base = frame("HELLO 123", 0)
    noisy = np.clip(base.astype(np.int16) + np.random.default_rng(0).integers(-4, 5, base.shape), 0, 255)
    assert not changed(signature(base), signature(noisy.astype(np.uint8)), 16.0)
    assert changed(signature(base), signature(frame("HELLO 128", 0)), 16.0)
    assert changed(None, signature(base), 16.0)
    assert changed(signature(base), signature(base[:-8]), 16.0)  # another size is another image


def test_video_memory_first_final_and_bound() -> None:
    memory: VideoMemory[int] = VideoMemory(max_videos=2)
    memory.put("a", 1)
    assert memory.get("a") == 1
    assert memory.get("a", first=True) is None and memory.get("a") is None
    memory.put("a", 1)
    memory.put("b", 2)
    memory.get("a")  # a is now the most recently used
    memory.put("c", 3)
    assert (memory.get("a"), memory.get("b"), memory.get("c")) == (1, None, 3)
    memory.put("c", 4, final=True)
    assert memory.get("c") is None and len(memory) == 1


def still(text: str, seed: int = 3) -> np.ndarray:
    """A caption over a background that does not move (a talking-head's wall, a slide, a screen)."""
    return with_text(textured(640, 360, seed), text)


def add_text(image: np.ndarray, text: str, xy: tuple[int, int]) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    font = ImageFont.load_default(size=28)
    left, top, right, bottom = draw.textbbox(xy, text, font=font)
    draw.rectangle((left - 6, top - 6, right + 6, bottom + 6), fill=(0, 0, 0))
    draw.text(xy, text, font=font, fill=(255, 255, 255))
    return np.asarray(pil)


def read_all(analyzer: OcrTextAnalyzer, frames: list[np.ndarray]) -> list[list[str]]:
    return [
        texts(analyzer.analyze([FrameItem("v", i, i * 0.5, image, first=i == 0)])[0])
        for i, image in enumerate(frames)
    ]


def test_caption_changing_in_place_is_read_again_without_detection(analyzer: OcrTextAnalyzer) -> None:
    frames = [still("HELLO 123"), still("HELLO 124"), still("HELLO 125")]
    assert read_all(analyzer, frames) == [["HELLO 123"], ["HELLO 124"], ["HELLO 125"]]
    assert (analyzer.recognised, analyzer.detections_skipped) == (3, 2)


def test_new_text_elsewhere_is_detected() -> None:
    """A change outside the known lines runs detection (with detection on every frame; with `detect_every`
    it waits for the next due frame, tests/test_ocr_detect_every.py): new text there is found, and when it
    goes the caption alone is read again."""
    pytest.importorskip("rapidocr_onnxruntime")
    analyzer = OcrTextAnalyzer(OcrTextOptions(detect_every=1))
    analyzer.load()
    frames = [
        still("HELLO 123"),
        add_text(still("HELLO 124"), "NEW TEXT 77", (300, 250)),
        still("HELLO 124"),
    ]
    read = read_all(analyzer, frames)
    assert read[0] == ["HELLO 123"]
    assert sorted(t.replace(" ", "") for t in read[1]) == ["HELLO124", "NEWTEXT77"]
    assert read[2] == ["HELLO 124"]
    assert analyzer.detections_skipped == 0


def test_text_gone_in_place_runs_detection(analyzer: OcrTextAnalyzer) -> None:
    """Glyphs painted over inside the line's own box (the change lies inside it): reading the box again
    gives nothing confident, so detection runs, and finds no line."""
    first = still("HELLO 123")
    assert read_all(analyzer, [first]) == [["HELLO 123"]]
    x0, y0, x1, y1 = analyzer._memory.get("v").regions[0].rect
    gone = first.copy()
    gone[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2] = 0
    assert texts(analyzer.analyze([FrameItem("v", 1, 0.5, gone)])[0]) == []
    assert analyzer.detections_skipped == 0


def test_reread_in_place_off_detects_every_changed_frame() -> None:
    pytest.importorskip("rapidocr_onnxruntime")
    a = OcrTextAnalyzer(OcrTextOptions(reread_in_place=False, detect_every=1))
    a.load()
    assert read_all(a, [still("HELLO 123"), still("HELLO 124")]) == [["HELLO 123"], ["HELLO 124"]]
    assert a.detections_skipped == 0
