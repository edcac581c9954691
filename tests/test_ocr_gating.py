"""OCR work not repeated (issue 18): a text line is recognised again only when the pixels under it changed,
per video; a frame with no change reuses the whole reading. Real RapidOCR on generated frames."""

from __future__ import annotations

import numpy as np
import pytest
from reelscope.analyzers.base import FrameItem
from reelscope.analyzers.common.change_gate import VideoMemory, changed, signature
from reelscope.analyzers.ocr_text import OcrTextAnalyzer, OcrTextOptions
from reelscope.infra.sample_media import textured, with_text


def frame(text: str, shift: int, seed: int = 3) -> np.ndarray:
    """A caption on a black box over a background that pans by `shift` pixels (360x640, landscape)."""
    return with_text(textured(640, 360, seed, shift=shift), text)


def texts(payload: dict) -> list[str]:
    return [line["text"] for line in payload["lines"]]


@pytest.fixture
def analyzer() -> OcrTextAnalyzer:
    pytest.importorskip("rapidocr_onnxruntime")
    a = OcrTextAnalyzer()
    a.load()
    return a


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
