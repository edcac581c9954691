"""Composition analyzer on generated frames whose subject place, symmetry and horizon angle are known.

Frames are 320 px on the longest side and JPEG-compressed at quality 85, as the producer sends them.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageDraw
from reelscope.analyzers.base import FrameItem, ItemResult

cv2 = pytest.importorskip("cv2")

from reelscope.analyzers.composition import CompositionAnalyzer, composition  # noqa: E402

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"


def jpeg(image: np.ndarray) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=85)
    return np.asarray(Image.open(buf).convert("RGB"))


def background(w: int, h: int, seed: int = 0, contrast: float = 16.0) -> np.ndarray:
    """A smooth, mottled, slightly tinted background (blurred noise), luma std `contrast` grey levels."""
    noise = np.random.default_rng(seed).normal(size=(h, w, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 8)
    smooth /= smooth.std()
    tinted = smooth[..., :1] + 0.3 * smooth[..., 1:2] * np.array([1.0, -0.5, -0.5], dtype=np.float32)
    return np.array([110, 115, 100], dtype=np.float32) + contrast * tinted


def blob_frame(x: float, y: float, w: int = 320, h: int = 180, radius: float = 14.0) -> np.ndarray:
    """A bright, warm round subject centred at (x, y), shares of the width and height."""
    yy, xx = np.mgrid[0:h, 0:w]
    blob = np.exp(-((xx - x * w) ** 2 + (yy - y * h) ** 2) / (2 * radius**2))[..., None]
    image = background(w, h) + blob * np.array([145, 120, 60], dtype=np.float32)
    return jpeg(np.clip(image, 0, 255).astype(np.uint8))


def horizon_frame(degrees: float) -> np.ndarray:
    """Sky over ground, the boundary through the centre rising `degrees` to the right."""
    image = Image.fromarray(np.clip(background(320, 180, seed=1, contrast=4), 0, 255).astype(np.uint8))
    direction = np.array([np.cos(np.radians(degrees)), -np.sin(np.radians(degrees))]) * 400
    left, right = np.array([160, 95]) - direction, np.array([160, 95]) + direction
    sky = [tuple(left), tuple(right), (right[0], -600), (left[0], -600)]
    ImageDraw.Draw(image).polygon(sky, fill=(150, 185, 230))
    return jpeg(np.asarray(image))


@pytest.mark.parametrize(
    ("x", "y", "horizontal", "vertical"),
    [
        (1 / 3, 1 / 3, "left", "top"),
        (2 / 3, 1 / 3, "right", "top"),
        (1 / 3, 2 / 3, "left", "bottom"),
        (2 / 3, 2 / 3, "right", "bottom"),
    ],
)
def test_subject_on_a_power_point(x: float, y: float, horizontal: str, vertical: str) -> None:
    p = composition(blob_frame(x, y))
    assert p["subject_x"] == pytest.approx(x, abs=0.03)
    assert p["subject_y"] == pytest.approx(y, abs=0.03)
    assert p["thirds"] > 0.9
    assert (p["horizontal"], p["vertical"]) == (horizontal, vertical)
    assert 0.005 < p["subject_size"] < 0.1  # the blob's bright core is about 2 % of the frame


def test_centred_subject() -> None:
    p = composition(blob_frame(0.5, 0.5))
    assert (p["horizontal"], p["vertical"]) == ("center", "middle")
    assert p["thirds"] < 0.15


def test_subject_on_a_thirds_line_only() -> None:
    """On the left line but vertically centred: between a power point and the centre."""
    p = composition(blob_frame(1 / 3, 0.5))
    assert (p["horizontal"], p["vertical"]) == ("left", "middle")
    assert 0.15 < p["thirds"] < 0.5


def test_portrait_frame() -> None:
    p = composition(blob_frame(2 / 3, 0.8, w=180, h=320, radius=10))
    assert (p["horizontal"], p["vertical"]) == ("right", "bottom")
    assert p["subject_x"] == pytest.approx(2 / 3, abs=0.03)
    assert p["subject_y"] == pytest.approx(0.8, abs=0.03)


def test_symmetry() -> None:
    textured = np.clip(background(320, 180, seed=5, contrast=40), 0, 255).astype(np.uint8)
    mirrored = np.concatenate([textured[:, :160], textured[:, :160][:, ::-1]], axis=1)
    assert composition(jpeg(mirrored))["symmetry"] > 0.95
    assert composition(jpeg(textured))["symmetry"] < 0.3
    assert composition(blob_frame(0.5, 0.4))["symmetry"] > composition(blob_frame(0.25, 0.4))["symmetry"]


@pytest.mark.parametrize("degrees", [0.0, 4.0, -7.0, 15.0])
def test_horizon_tilt(degrees: float) -> None:
    assert composition(horizon_frame(degrees))["horizon_tilt_deg"] == pytest.approx(degrees, abs=0.5)


def test_no_horizon_and_no_subject() -> None:
    """No straight edge: no horizon; one flat colour: no subject at all."""
    assert composition(blob_frame(0.3, 0.3))["horizon_tilt_deg"] is None
    flat = composition(np.full((180, 320, 3), 90, dtype=np.uint8))
    assert flat["horizontal"] is None and flat["thirds"] is None and flat["horizon_tilt_deg"] is None
    noise = np.random.default_rng(2).normal(90, 1.5, size=(180, 320, 3))
    assert composition(jpeg(np.clip(noise, 0, 255).astype(np.uint8)))["horizontal"] is None


def test_analyzer_segment_and_summary() -> None:
    frames = [blob_frame(1 / 3, 1 / 3), blob_frame(2 / 3, 1 / 3), horizon_frame(3.0)]
    analyzer = CompositionAnalyzer()
    analyzer.load()
    payloads = analyzer.analyze([FrameItem("v", i, float(i), f) for i, f in enumerate(frames)])
    for p in payloads:
        assert len(json.dumps(p)) < 400
    fields = CompositionAnalyzer.segment_fields(payloads[:2])
    assert fields["thirds"] > 0.9
    assert fields["subject_y"] == pytest.approx(1 / 3, abs=0.03)
    assert fields["vertical"] == "top"
    summary = CompositionAnalyzer.video_summary(
        [ItemResult(f"f{i}", float(i), float(i), p) for i, p in enumerate(payloads)]
    )
    assert summary is not None
    assert summary["frames"] == 3
    # the two-tone horizon frame has no subject: each colour is as far from the mean as the other
    assert summary["horizontal"] == {"left": 0.5, "right": 0.5}
    assert summary["vertical"] == {"top": 1.0}
    assert summary["thirds"] > 0.9
    assert summary["horizon_tilt_deg"] == pytest.approx(3.0, abs=0.5)
    assert summary["horizon_frames"] == 1


@pytest.mark.skipif(not MEDIA.is_dir(), reason=f"shared test media not found at {MEDIA}")
def test_counter_clip_subject_is_its_text() -> None:
    """counter.mp4 is a flat grey frame whose only content is its two text lines in the bottom right."""
    with av.open(str(MEDIA / "counter.mp4")) as container:
        frame = next(container.decode(video=0))
    p = composition(np.asarray(frame.to_image().resize((320, 180), Image.BILINEAR)))
    assert (p["horizontal"], p["vertical"]) == ("right", "bottom")
    assert p["subject_x"] > 0.7 and p["subject_y"] > 0.75
    assert p["horizon_tilt_deg"] is None
