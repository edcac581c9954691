"""Camera analyzer: known camera moves rendered over a natural-looking texture, and a real static clip.

Frames are rendered at 320x180, resized to 160 px and JPEG-compressed at quality 85, like the producer sends
them, and sampled at the analyzer's 5 fps.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image, ImageDraw
from reelscope.analyzers.base import FrameItem, ItemResult

cv2 = pytest.importorskip("cv2")

from reelscope.analyzers.camera import CameraAnalyzer, estimate_motion  # noqa: E402

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
FPS = 5
W, H = 320, 180
SECONDS = 3


def texture(seed: int, h: int = 720, w: int = 1280) -> np.ndarray:
    """Colour noise with a 1/f amplitude spectrum, like natural images: detail at every scale."""
    rng = np.random.default_rng(seed)
    f2 = np.fft.fftfreq(h)[:, None] ** 2 + np.fft.rfftfreq(w)[None, :] ** 2
    amplitude = 1.0 / np.maximum(f2, 1.0 / (h * w)) ** 0.8
    grey = np.fft.irfft2(amplitude * np.exp(2j * np.pi * rng.random(amplitude.shape)), s=(h, w))
    grey = (grey - grey.mean()) / grey.std()
    rgb = np.stack([grey, np.roll(grey, 7, 0), np.roll(grey, 13, 1)], axis=-1)
    return np.clip(128 + 45 * rgb, 0, 255).astype(np.float32)


def view(canvas: np.ndarray, x: float = 0.0, y: float = 0.0, zoom: float = 1.0) -> np.ndarray:
    """What a camera looking at canvas sees: centred (x, y) frames (of the 320x180 view) off the canvas
    centre, magnified by zoom; then sent like the producer does (160 px, JPEG quality 85)."""
    ch, cw = canvas.shape[:2]
    a = 2.0 / zoom  # canvas pixels per view pixel: the view is half the canvas at zoom 1
    cx, cy = cw / 2 + x * W * 2, ch / 2 + y * H * 2
    m = np.array([[a, 0, cx - a * W / 2], [0, a, cy - a * H / 2]], dtype=np.float64)
    frame = cv2.warpAffine(
        canvas, m, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_WRAP
    )
    small = Image.fromarray(np.clip(frame, 0, 255).astype(np.uint8)).resize((160, 90), Image.BILINEAR)
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=85)
    return np.asarray(Image.open(buf).convert("RGB"))


def with_square(image: np.ndarray, x: int, y: int, size: int = 12) -> np.ndarray:
    out = image.copy()
    out[y : y + size, x : x + size] = (250, 240, 30)
    return out


def run(frames: list[tuple[float, np.ndarray]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Analyze frames, then return (per-segment timeline fields, video summary) as the aggregator sees them."""
    analyzer = CameraAnalyzer()
    analyzer.load()
    items = [FrameItem("v", i, t, img, final=i == len(frames) - 1) for i, (t, img) in enumerate(frames)]
    payloads = analyzer.analyze(items)
    for p in payloads:
        assert len(json.dumps(p)) < 4096
    results = [
        ItemResult(f"f{i:06d}", t, t, p) for i, ((t, _), p) in enumerate(zip(frames, payloads, strict=True))
    ]
    timeline = CameraAnalyzer.timeline_results(results, 1.0)
    segments = [CameraAnalyzer.segment_fields([r.payload]) for r in timeline]
    assert [r.start_s for r in timeline] == [float(k) for k in range(len(timeline))]
    summary = CameraAnalyzer.video_summary(results)
    assert summary is not None
    json.dumps(summary)
    return segments, summary


def clip(position: Any) -> list[tuple[float, np.ndarray]]:
    """SECONDS of frames at FPS; position(t) gives the frame at time t."""
    return [(i / FPS, position(i / FPS)) for i in range(SECONDS * FPS)]


CANVAS = texture(1)


@pytest.mark.parametrize(
    ("label", "move", "magnitude"),
    [
        # the view's centre moving left over the scene: the camera pans left, the content slides right
        ("pan_left", lambda t: view(CANVAS, x=-0.2 * t), 0.2),
        ("pan_right", lambda t: view(CANVAS, x=0.35 * t), 0.35),
        ("tilt_up", lambda t: view(CANVAS, y=-0.15 * t), 0.15),
        ("tilt_down", lambda t: view(CANVAS, y=0.3 * t), 0.3),
        ("zoom_in", lambda t: view(CANVAS, zoom=np.exp(0.15 * t)), 0.15),
        ("zoom_out", lambda t: view(CANVAS, zoom=np.exp(-0.1 * t)), 0.1),
    ],
)
def test_steady_moves(label: str, move: Any, magnitude: float) -> None:
    segments, summary = run(clip(move))
    assert [s["label"] for s in segments] == [label] * SECONDS
    for s in segments:
        assert s["magnitude"] == pytest.approx(magnitude, rel=0.05)
        assert not s["shaky"]
    assert summary["dominant"] == label
    assert summary["unknown_steps"] == 0
    kind, direction = label.split("_")
    assert summary["spans"] == [
        {
            "kind": kind,
            "direction": direction,
            "start_s": 0.0,
            "end_s": float(SECONDS),
            "magnitude": pytest.approx(magnitude, rel=0.05),
        }
    ]


def test_portrait_frames() -> None:
    """A 9:16 video: the landscape pan-left clip turned a quarter anticlockwise, so its content, which
    slid right, now slides up at 0.2 frame heights per second: the camera tilts down."""
    frames = [(t, np.ascontiguousarray(np.rot90(img))) for t, img in clip(lambda t: view(CANVAS, x=-0.2 * t))]
    assert frames[0][1].shape == (160, 90, 3)
    segments, _ = run(frames)
    assert [s["label"] for s in segments] == ["tilt_down"] * SECONDS
    assert all(s["magnitude"] == pytest.approx(0.2, rel=0.05) for s in segments)


def test_pan_that_starts_and_stops() -> None:
    """Still, then a pan right during the second second, then still: the abrupt starts are no shake."""
    segments, summary = run(clip(lambda t: view(CANVAS, x=0.3 * min(max(t - 1.0, 0.0), 1.0))))
    assert [s["label"] for s in segments] == ["static", "pan_right", "static"]
    assert not any(s["shaky"] for s in segments)
    assert [(s["kind"], s["start_s"], s["end_s"]) for s in summary["spans"]] == [
        ("static", 0.0, 1.0),
        ("pan", 1.0, 2.0),
        ("static", 2.0, 3.0),
    ]
    assert summary["spans"][1]["magnitude"] == pytest.approx(0.3, rel=0.05)


def test_static_camera_with_moving_subject() -> None:
    """A small object crossing a still scene moves some tracks; the camera stays static."""
    base = view(CANVAS)
    segments, summary = run(clip(lambda t: with_square(base, int(10 + 45 * t), int(20 + 15 * t))))
    assert [s["label"] for s in segments] == ["static"] * SECONDS
    assert max(abs(s["pan"]) + abs(s["tilt"]) + abs(s["zoom"]) for s in segments) < 0.01
    assert summary["spans"] == [
        {
            "kind": "static",
            "direction": None,
            "start_s": 0.0,
            "end_s": 3.0,
            "magnitude": pytest.approx(0, abs=0.01),
        }
    ]


def test_pan_under_a_fixed_caption() -> None:
    """Burned-in captions stay put while the scene pans; their sharp corners must not outvote the scene."""

    def captioned(t: float) -> np.ndarray:
        image = Image.fromarray(view(CANVAS, x=0.3 * t))
        draw = ImageDraw.Draw(image)
        draw.rectangle((8, 58, 152, 80), fill=(0, 0, 0))
        draw.text((12, 60), "WAIT FOR IT", fill=(255, 255, 255))
        draw.text((12, 69), "best pan ever 100%", fill=(255, 255, 255))
        return np.asarray(image)

    segments, _ = run(clip(captioned))
    assert [s["label"] for s in segments] == ["pan_right"] * SECONDS
    assert all(s["magnitude"] == pytest.approx(0.3, rel=0.05) for s in segments)


def test_handheld_jitter_is_shake_not_pan() -> None:
    """Random offsets of up to 5 px (of 320) each frame: jitter whose steps cancel, so no net move."""
    offsets = np.random.default_rng(3).uniform(-5, 5, size=(SECONDS * FPS, 2)) / np.array([W, H])
    frames = [(i / FPS, view(CANVAS, x=dx, y=dy)) for i, (dx, dy) in enumerate(offsets)]
    segments, summary = run(frames)
    assert [s["label"] for s in segments] == ["shake"] * SECONDS
    assert summary["dominant"] == "shake"
    assert summary["shaky_s"] == SECONDS


def test_jittery_pan_is_a_shaky_pan() -> None:
    offsets = np.random.default_rng(4).uniform(-3, 3, size=(SECONDS * FPS, 2)) / np.array([W, H])
    frames = [(i / FPS, view(CANVAS, x=0.5 * i / FPS + dx, y=dy)) for i, (dx, dy) in enumerate(offsets)]
    segments, _ = run(frames)
    assert [s["label"] for s in segments] == ["pan_right"] * SECONDS
    assert sum(s["shaky"] for s in segments) >= 2


def test_cut_is_unknown_and_breaks_the_span() -> None:
    """A hard cut inside a pan: the step across it has no motion, the pan continues on both sides."""
    other = texture(2)
    frames = clip(lambda t: view(CANVAS if t < 1.5 else other, x=-0.25 * t))
    segments, summary = run(frames)
    assert summary["unknown_steps"] == 1
    assert [s["label"] for s in segments] == ["pan_left"] * SECONDS
    assert all(s["magnitude"] == pytest.approx(0.25, rel=0.05) for s in segments)


def test_fast_pan_beyond_the_tracker_pyramid() -> None:
    """Two frame widths per second, 40 % of the frame per step: phase correlation seeds the tracks."""
    a = view(CANVAS)
    b = view(CANVAS, x=0.4)
    grey = [
        cv2.resize(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), (128, 72), interpolation=cv2.INTER_AREA)
        for x in (a, b)
    ]
    motion = estimate_motion(*grey)
    assert motion is not None
    assert motion[0] == pytest.approx(-0.4, abs=0.01)
    assert motion[1] == pytest.approx(0.0, abs=0.01)


@pytest.mark.skipif(not MEDIA.is_dir(), reason=f"shared test media not found at {MEDIA}")
def test_counter_clip_is_static() -> None:
    """counter.mp4: a fixed camera on changing numbers, sampled at 5 fps like the producer would."""
    frames = []
    with av.open(str(MEDIA / "counter.mp4")) as container:
        for k, frame in enumerate(container.decode(video=0)):
            if k % 2 == 0:  # 10 fps source
                small = frame.to_image().resize((160, 90), Image.BILINEAR)
                frames.append((float(frame.time), np.asarray(small)))
    segments, summary = run(frames)
    assert len(segments) == 3
    assert {s["label"] for s in segments} == {"static"}
    assert summary["dominant"] == "static"
    # its only corners are on the text in one corner, half of them on digits that change every frame:
    # no zoom may be read from that cluster, and the noise must stay far below the motion thresholds
    for s in segments:
        assert abs(s["pan"]) < 0.015 and abs(s["tilt"]) < 0.015 and s["zoom"] == 0.0
        assert s["shake"] < 0.01
