"""Each analyzer gets a batch's frames at its own sampling size, decoded once and shrunk once per size.

Frames travel once per timestamp at the largest size any analyzer sampling them asked for (OCR's 960 px),
so without this a 320 px analyzer (colour) paid for 960 px pixels and its figures depended on which other
analyzers were enabled."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image
from reelscope.analyzers.base import FrameItem, Sampling, fit_to_side
from reelscope.schemas.events import AudioChunk, Frame
from reelscope.stream_processors.runtime import BatchItems


class _Wants:
    """Stands in for an analyzer: only its sampling size matters here."""

    def __init__(self, side: int) -> None:
        self.sampling = Sampling(fps=1.0, max_side=side)


def _frame(width: int, height: int) -> Frame:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=90)
    return Frame(
        video_id="v", index=0, pts_s=0.0, width=width, height=height, jpeg=buf.getvalue(), targets=[]
    )


def _shape(items: BatchItems, event: Any, side: int) -> tuple[int, ...]:
    (item,) = items.batch(_Wants(side), [event])  # type: ignore[arg-type]
    assert isinstance(item, FrameItem)
    return item.image.shape


def test_each_analyzer_sees_the_frame_at_its_own_size() -> None:
    items, event = BatchItems(), _frame(960, 540)
    assert _shape(items, event, 960) == (540, 960, 3)
    assert _shape(items, event, 640) == (360, 640, 3)
    assert _shape(items, event, 320) == (180, 320, 3)
    assert _shape(items, event, 1280) == (540, 960, 3)  # never enlarged


def test_a_frame_is_decoded_once_and_each_size_made_once() -> None:
    items, event = BatchItems(), _frame(960, 540)
    a = items.batch(_Wants(320), [event])[0]  # type: ignore[arg-type]
    b = items.batch(_Wants(320), [event])[0]  # type: ignore[arg-type]
    assert a is b and len(items.decoded) == 1 and len(items.sized) == 1


def test_a_size_made_from_a_larger_one_matches_the_direct_shrink() -> None:
    event = _frame(960, 540)
    cascaded = BatchItems()
    _shape(cascaded, event, 640)
    (small,) = cascaded.batch(_Wants(320), [event])  # type: ignore[arg-type]
    direct = fit_to_side(BatchItems().get(event, 960).image, 320)  # type: ignore[union-attr]
    diff = np.abs(small.image.astype(int) - direct.astype(int))  # type: ignore[union-attr]
    assert small.image.shape == direct.shape and diff.mean() < 8  # type: ignore[union-attr]


def test_audio_passes_through_unchanged() -> None:
    chunk = AudioChunk(
        video_id="v", index=0, start_s=0.0, end_s=1.0, sample_rate=16000, pcm=b"\0\0" * 16000, targets=[]
    )
    (item,) = BatchItems().batch(_Wants(320), [chunk])  # type: ignore[arg-type]
    assert item.samples.shape == (16000,)  # type: ignore[union-attr]
