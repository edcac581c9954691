"""Scene analyzer: cuts and transitions on real clips with known truth and on generated clips.

Generated clips go through a real H.264 encode and decode, so compression noise is part of every check.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image
from reelscope.analyzers.base import FrameItem, ItemResult
from reelscope.analyzers.scene import SceneAnalyzer, frame_signature

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
FPS = 25
W, H = 160, 90

needs_media = pytest.mark.skipif(not MEDIA.is_dir(), reason=f"shared test media not found at {MEDIA}")

Frames = list[tuple[float, np.ndarray]]


def decode(source: str | io.BytesIO) -> Frames:
    """Every frame as (PTS seconds, RGB resized so the longest side is 160), like the producer sends it."""
    out: Frames = []
    with av.open(source) as container:
        for frame in container.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            scale = 160 / max(rgb.shape[:2])
            size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
            out.append((float(frame.time), np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))))
    return out


def encode(images: list[np.ndarray], fps: int = FPS) -> Frames:
    """Round-trip generated RGB frames through an in-memory H.264 MP4."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for img in images:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        container.mux(stream.encode())
    buf.seek(0)
    return decode(buf)


def summarize(frames: Frames) -> dict[str, Any]:
    analyzer = SceneAnalyzer()
    analyzer.load()
    items = [FrameItem("v", i, t, img, final=i == len(frames) - 1) for i, (t, img) in enumerate(frames)]
    payloads = analyzer.analyze(items)
    for p in payloads:
        assert len(json.dumps(p)) < 1200  # a 16x16 RGB grid: the active picture needs the finer cells
    results = [
        ItemResult(f"f{i:06d}", t, t, p) for i, ((t, _), p) in enumerate(zip(frames, payloads, strict=True))
    ]
    summary = SceneAnalyzer.video_summary(results)
    assert summary is not None
    json.dumps(summary)  # plain JSON types only
    return summary


def kinds(summary: dict[str, Any], *names: str) -> list[dict[str, Any]]:
    return [t for t in summary["transitions"] if t["kind"] in names]


def covers(events: list[dict[str, Any]], time_s: float, slack: float = 0.5) -> bool:
    return any(e["start_s"] - slack <= time_s <= e["end_s"] + slack for e in events)


def texture(kind: str, t: int, rng: np.random.Generator) -> np.ndarray:
    """Two very different moving, noisy textures: blue blobs drifting right, or orange diagonal stripes."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    if kind == "a":
        base = np.sin((x + 3 * t) / 9.0) * np.cos(y / 7.0)
        img = np.stack([40 + 30 * base, 80 + 50 * base, 170 + 60 * base], axis=-1)
    else:
        base = np.sign(np.sin((x + y - 4 * t) / 5.0))
        img = np.stack([220 + 30 * base, 130 + 60 * base, 30 + 20 * base], axis=-1)
    img += rng.normal(0, 14, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def scaled(img: np.ndarray, gain: float) -> np.ndarray:
    return np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def landscape(width: int = 2000) -> np.ndarray:
    """A wide, smooth, colourful picture to pan over (upsampled coarse noise, like a real scene's layout)."""
    coarse = np.random.default_rng(5).uniform(0, 255, (6, width // 15, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((width, H), Image.BICUBIC))


def clip(make: Callable[[int, np.random.Generator], np.ndarray], n: int = 100) -> Frames:
    rng = np.random.default_rng(7)
    return encode([make(t, rng) for t in range(n)])


def test_signature_is_small_and_measures_the_frame() -> None:
    img = np.zeros((90, 160, 3), np.uint8)
    img[:, :80] = (255, 0, 0)
    sig = frame_signature(img)
    assert sig["luma"] == pytest.approx(0.299 * 255 / 2, abs=0.01)
    assert sig["s"] == pytest.approx(127.5) and sig["v"] == pytest.approx(127.5)
    assert sig["dark_share"] == 0.5 and sig["black"] is False
    assert frame_signature(np.zeros((90, 160, 3), np.uint8))["black"] is True


def test_generated_cut_is_found_once_at_its_frame() -> None:
    frames = clip(lambda t, rng: texture("a" if t < 50 else "b", t, rng))
    summary = summarize(frames)
    assert len(summary["cuts"]) == 1, summary["cuts"]
    cut = summary["cuts"][0]
    assert cut["frame_index"] == 50
    assert cut["time_s"] == pytest.approx(frames[50][0], abs=1 / FPS)
    assert cut["score"] > 27
    assert not kinds(summary, "dissolve", "flash", "freeze", "black")


def test_cross_dissolve_is_a_transition_not_a_cut() -> None:
    """Moving shot A until frame 40, a 1 s linear blend into moving shot B over frames 40..65, then B."""

    def make(t: int, rng: np.random.Generator) -> np.ndarray:
        alpha = float(np.clip((t - 40) / 25.0, 0.0, 1.0))
        a, b = texture("a", t, rng).astype(np.float32), texture("b", t, rng).astype(np.float32)
        return np.clip((1 - alpha) * a + alpha * b, 0, 255).astype(np.uint8)

    summary = summarize(clip(make))
    assert summary["cuts"] == []
    dissolves = kinds(summary, "dissolve")
    assert len(dissolves) == 1, summary["transitions"]
    assert dissolves[0]["start_s"] == pytest.approx(1.6, abs=0.2)
    assert dissolves[0]["end_s"] == pytest.approx(2.6, abs=0.2)


def test_flash_frame_is_a_flash_not_a_cut() -> None:
    def make(t: int, rng: np.random.Generator) -> np.ndarray:
        img = texture("a", t, rng)
        return np.full_like(img, 250) if t == 50 else img

    summary = summarize(clip(make))
    assert summary["cuts"] == []
    flashes = kinds(summary, "flash")
    assert len(flashes) == 1, summary["transitions"]
    assert flashes[0]["start_s"] == pytest.approx(2.0, abs=0.01)
    assert flashes[0]["end_s"] == pytest.approx(2.04, abs=0.01)


def test_frozen_frames_are_a_freeze() -> None:
    """Moving texture that stops on frame 30 until frame 60 (1.24 s shown still), then moves on from there."""
    rng = np.random.default_rng(7)
    images = [texture("a", t if t <= 30 else t - 30, rng) for t in range(100)]
    images[31:61] = [images[30]] * 30
    summary = summarize(encode(images))
    assert summary["cuts"] == []
    freezes = kinds(summary, "freeze")
    assert len(freezes) == 1, summary["transitions"]
    assert freezes[0]["start_s"] == pytest.approx(1.2, abs=0.1)
    assert freezes[0]["end_s"] == pytest.approx(2.44, abs=0.1)


def test_several_cuts_are_found_exactly() -> None:
    """Shots of 15..40 frames, each a different texture, colour gain and framing."""
    starts = [0, 30, 45, 85, 105, 140]

    def make(t: int, rng: np.random.Generator) -> np.ndarray:
        k = sum(t >= s for s in starts) - 1
        return np.roll(scaled(texture("ab"[k % 2], t, rng), (0.6, 1.0, 0.8)[k % 3]), 40 * k, axis=1)

    summary = summarize(clip(make, n=170))
    assert [c["frame_index"] for c in summary["cuts"]] == starts[1:]


@pytest.mark.parametrize(("speed", "phase"), [(10, 25), (2, 10), (4, 10)])
def test_stop_and_go_pan_is_neither_cut_nor_dissolve(speed: int, phase: int) -> None:
    """A camera that rests and pans by turns: motion starting is no cut, a short pan between rests no blend."""
    scene = landscape()
    pos = np.cumsum([0 if (t // phase) % 2 == 0 else speed for t in range(100)])
    summary = summarize(encode([np.ascontiguousarray(scene[:, p : p + W]) for p in pos]))
    assert summary["cuts"] == []
    assert not kinds(summary, "dissolve", "flash")


def test_brief_inserts_do_not_make_extra_cuts() -> None:
    """Two frames of other (darker) content inside a shot are no cut; a 6-frame shot between two shots
    gives one cut, not two (minimum shot length)."""
    dark_b = scaled(texture("b", 0, np.random.default_rng(1)), 0.3)
    glitch = summarize(clip(lambda t, rng: dark_b if t in (50, 51) else texture("a", t, rng)))
    assert glitch["cuts"] == []

    def burst(t: int, rng: np.random.Generator) -> np.ndarray:
        if t < 50:
            return texture("a", t, rng)
        return (
            scaled(texture("b", t, rng), 0.5)
            if t < 56
            else np.roll(texture("a", t, rng)[..., ::-1], 50, axis=1)
        )

    cuts = summarize(clip(burst))["cuts"]
    assert len(cuts) == 1 and cuts[0]["frame_index"] in (50, 56)


def test_brightness_jump_on_the_same_picture_is_not_a_cut() -> None:
    summary = summarize(clip(lambda t, rng: scaled(texture("a", t, rng), 1.0 if t < 50 else 1.6)))
    assert summary["cuts"] == []


def test_dips_between_shots_are_transitions_that_mark_the_new_shot() -> None:
    """A hard cut to black and out again, and a white flash frame between two different shots."""
    black = np.zeros((H, W, 3), np.uint8)
    dip = summarize(
        clip(lambda t, rng: texture("a", t, rng) if t < 40 else black if t < 50 else texture("b", t, rng))
    )
    assert dip["cuts"] == []
    assert [(e["start_s"], e["end_s"], e["new_shot"]) for e in dip["transitions"]] == [(1.6, 2.0, True)]

    white = np.full((H, W, 3), 250, np.uint8)
    flash = summarize(
        clip(lambda t, rng: texture("a", t, rng) if t < 50 else white if t == 50 else texture("b", t, rng))
    )
    assert flash["cuts"] == []
    assert [(e["kind"], e["start_s"], e["new_shot"]) for e in flash["transitions"]] == [("flash", 2.0, True)]


def test_quick_fade_through_black_is_no_cut() -> None:
    """Shot A fades out over 4 frames, 3 frames of black, shot B fades in over 4 frames."""

    def make(t: int, rng: np.random.Generator) -> np.ndarray:
        if t < 46:
            return scaled(texture("a", t, rng), 1 - max(0, t - 41) / 5)
        if t < 49:
            return np.zeros((H, W, 3), np.uint8)
        return scaled(texture("b", t, rng), min(1.0, (t - 48) / 5))

    summary = summarize(clip(make))
    assert summary["cuts"] == []
    assert [e["kind"] for e in summary["transitions"]] == ["fade_out", "black", "fade_in"]
    assert kinds(summary, "black")[0]["new_shot"] is True
    assert kinds(summary, "fade_out")[0]["start_s"] == pytest.approx(41 / FPS, abs=1.01 / FPS)
    assert kinds(summary, "fade_in")[0]["end_s"] == pytest.approx(54 / FPS, abs=1.01 / FPS)


@needs_media
def test_fades_clip_has_fades_and_no_cut() -> None:
    frames = decode(str(MEDIA / "fades.mp4"))
    summary = summarize(frames)
    goldens = MEDIA / "goldens"
    for detector in ("ContentDetector.default", "AdaptiveDetector.default", "HashDetector.default"):
        assert json.loads((goldens / f"fades.mp4.{detector}.json").read_text())["cuts"] == summary["cuts"]
    fades = kinds(summary, "fade_out", "fade_in", "black")
    for frame in json.loads((goldens / "fades.mp4.ThresholdDetector.default.json").read_text())["cuts"]:
        assert covers(kinds(summary, "black"), frame / FPS, slack=0.0)
        assert covers(kinds(summary, "fade_out"), frame / FPS) and covers(
            kinds(summary, "fade_in"), frame / FPS
        )
    assert covers(fades, 3.36) and covers(fades, 6.68)
    assert not kinds(summary, "flash", "dissolve", "freeze")


@needs_media
def test_delayed_start_keeps_stream_time_and_has_no_cut() -> None:
    frames = decode(str(MEDIA / "delayed_start.mp4"))
    assert frames[0][0] == pytest.approx(1.075, abs=0.001)
    summary = summarize(frames)
    assert summary["cuts"] == []
    black = kinds(summary, "black")
    assert black and black[0]["start_s"] == pytest.approx(1.075, abs=0.001)
    assert kinds(summary, "fade_in")[0]["start_s"] == pytest.approx(black[0]["end_s"], abs=0.001)


@needs_media
def test_counter_has_no_cut_and_no_freeze() -> None:
    """Only the printed number (and, every second, the background colour) changes: no new shot."""
    summary = summarize(decode(str(MEDIA / "counter.mp4")))
    assert summary["cuts"] == []
    assert summary["transitions"] == []


def test_segment_fields_merge_brightness_and_black() -> None:
    white = frame_signature(np.full((90, 160, 3), 200, np.uint8))
    black = frame_signature(np.zeros((90, 160, 3), np.uint8))
    fields = SceneAnalyzer.segment_fields([white, black, black, black])
    assert fields["brightness"] == pytest.approx(50.0, abs=0.01)
    assert fields["black_share"] == 0.75


def test_a_large_frame_is_reduced_to_about_the_signature_size() -> None:
    """A 960 px frame another analyzer sampled gives about the signature of the same picture at 96 px."""
    from reelscope.analyzers.scene import reduced

    rng = np.random.default_rng(1)
    small = np.kron(rng.integers(0, 255, (16, 9, 3), dtype=np.uint8), np.ones((6, 6, 1), np.uint8))
    large = np.kron(small, np.ones((10, 10, 1), np.uint8))  # 960 x 540, the same picture
    assert reduced(large).shape == small.shape and reduced(small) is small
    a, b = frame_signature(reduced(large)), frame_signature(small)
    assert a["grid"] == b["grid"] and abs(a["luma_std"] - b["luma_std"]) < 0.5 and abs(a["h"] - b["h"]) < 0.5


def test_signature_is_the_same_with_or_without_opencv(monkeypatch: pytest.MonkeyPatch) -> None:
    import reelscope.analyzers.scene as scene

    pytest.importorskip("cv2")
    image = np.random.default_rng(2).integers(0, 255, (96, 54, 3), dtype=np.uint8)
    with_cv = frame_signature(image)
    monkeypatch.setattr(scene, "_OPENCV", False)
    assert frame_signature(image) == with_cv
