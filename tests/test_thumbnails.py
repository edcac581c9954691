"""Thumbnails: payload size on the worst case for JPEG (noise), and which frame each shot keeps."""

from __future__ import annotations

import base64
import io

import av
import numpy as np
import pytest
from PIL import Image, ImageFilter
from reelscope.analyzers.base import FrameItem, ItemResult
from reelscope.analyzers.registry import all_analyzers
from reelscope.analyzers.thumbnails import MAX_B64_BYTES, THUMB_SIDE, ThumbnailsAnalyzer, pick_thumbnails

from tests.media import SHARED_MEDIA, textured

needs_media = pytest.mark.skipif(
    not SHARED_MEDIA.is_dir(), reason=f"shared media not found at {SHARED_MEDIA}"
)


def sharp(seed: int) -> np.ndarray:
    """A 320x180 frame with fine detail (a texture with its own digit-sized marks)."""
    img = textured(320, 180, seed)
    rng = np.random.default_rng(seed)
    img[rng.random(img.shape[:2]) < 0.05] = 255
    return img


def blurred(image: np.ndarray, radius: float = 4.0) -> np.ndarray:
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))


def run(frames: list[tuple[float, np.ndarray]]) -> list[ItemResult]:
    """Analyze frames of one video as the processor would and hand back what the aggregator stores."""
    items = [FrameItem("v", i, t, img, final=i == len(frames) - 1) for i, (t, img) in enumerate(frames)]
    payloads = ThumbnailsAnalyzer().analyze(items)
    return [
        ItemResult(f"f{i:06d}", t, t + 1.0, p)
        for i, ((t, _), p) in enumerate(zip(frames, payloads, strict=True))
    ]


def decode(data: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data.removeprefix("data:image/jpeg;base64,"))))


def test_registered_as_a_light_frame_analyzer() -> None:
    cls = all_analyzers()["thumbnails"]
    assert cls is ThumbnailsAnalyzer
    assert (cls.input, cls.group, cls.sampling.fps, cls.sampling.max_side, cls.requires) == (
        "frame",
        "light",
        1.0,
        320,
        (),
    )


@pytest.mark.parametrize("shape", [(320, 180), (180, 320), (1280, 720)])
def test_payload_is_small_even_for_noise(shape: tuple[int, int]) -> None:
    w, h = shape
    noise = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    [result] = run([(0.0, noise)])
    data = result.payload["jpeg_b64"]
    assert len(data) <= MAX_B64_BYTES
    img = decode(data)
    assert img.format == "JPEG"
    assert max(img.size) == THUMB_SIDE
    assert img.size[0] / img.size[1] == pytest.approx(w / h, rel=0.02)


def test_sharpness_orders_sharp_above_blurred() -> None:
    a, b = run([(0.0, sharp(1)), (1.0, blurred(sharp(1)))])
    assert a.payload["sharpness"] > 5 * b.payload["sharpness"]
    fields = ThumbnailsAnalyzer.segment_fields([a.payload, b.payload])
    assert fields == {"sharpness": round((a.payload["sharpness"] + b.payload["sharpness"]) / 2, 2)}


def test_each_shot_keeps_its_sharp_middle_frame() -> None:
    frames = [
        (0.0, sharp(1)),  # shot 0's first frame: on the cut
        (1.0, blurred(sharp(2))),  # the middle, but blurred (motion)
        (2.0, sharp(3)),  # sharp, near the middle
        (3.0, blurred(sharp(4))),
        (4.1, sharp(5)),  # shot 1 = [4.0, 6.0): sharpest, but 0.1 s after the cut
        (5.0, blurred(sharp(6), 1.0)),  # less sharp, the middle
    ]
    results = run(frames)
    shots = [
        {"index": 0, "start_s": 0.0, "end_s": 4.0},
        {"index": 1, "start_s": 4.0, "end_s": 6.0},
        {"index": 2, "start_s": 6.0, "end_s": 6.4},  # no sampled frame: the nearest (5.0) stands in
        {"index": 3, "start_s": 9.0, "end_s": 12.0},  # far after the last frame: still the nearest
    ]
    picked = pick_thumbnails(results, shots)
    by_data = {r.payload["jpeg_b64"]: r.start_s for r in results}
    chosen = {i: by_data[uri.removeprefix("data:image/jpeg;base64,")] for i, uri in picked.items()}
    assert chosen == {0: 2.0, 1: 5.0, 2: 5.0, 3: 5.0}
    assert all(uri.startswith("data:image/jpeg;base64,") for uri in picked.values())


def test_shot_with_only_edge_frames_keeps_one() -> None:
    results = run([(0.0, blurred(sharp(1))), (0.3, sharp(2))])
    picked = pick_thumbnails(results, [{"index": 0, "start_s": 0.0, "end_s": 0.4}])
    assert picked[0].removeprefix("data:image/jpeg;base64,") == results[1].payload["jpeg_b64"]
    assert pick_thumbnails([], [{"index": 0, "start_s": 0.0, "end_s": 1.0}]) == {}


@needs_media
def test_real_clip_thumbnail_is_its_middle_frame() -> None:
    """counter.mp4: 3 s of equally sharp numbered frames, one shot: the keyframe is the one at 1.5 s."""
    frames = []
    with av.open(str(SHARED_MEDIA / "counter.mp4")) as container:
        for frame in container.decode(video=0):
            if round(frame.time * 10) % 5 == 0:  # 2 fps
                img = frame.to_image()
                img.thumbnail((320, 320))
                frames.append((float(frame.time), np.asarray(img)))
    results = run(frames)
    assert all(len(r.payload["jpeg_b64"]) <= MAX_B64_BYTES for r in results)
    picked = pick_thumbnails(results, [{"index": 0, "start_s": 0.0, "end_s": 3.0}])
    chosen = next(r.start_s for r in results if picked[0].endswith(r.payload["jpeg_b64"]))
    assert chosen == pytest.approx(1.5, abs=0.01)
