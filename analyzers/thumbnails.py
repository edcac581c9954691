"""Keyframe thumbnails: a small JPEG and a sharpness score per sampled frame, one kept per shot.

Each 1 fps frame becomes a JPEG of at most 192 px on its longest side (under 12 KB as base64: a quality
step-down guards noisy frames) with the variance of its Laplacian as sharpness. Shots are only known once
the scene summary is built, so the choice is `pick_thumbnails` (the `shot_thumbnails` hook, which the
reconstruction calls with the video's shots): per shot the sharpest frame near its middle, away from the
cut at either end.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image
from reelscope.analyzers.base import FrameAnalyzer, FrameItem, ItemResult, Sampling
from reelscope.analyzers.quality import quality_stats

THUMB_SIDE = 192
JPEG_QUALITIES = (70, 55, 40, 25)
"""Tried in order until the encoded image fits MAX_B64_BYTES."""
MAX_B64_BYTES = 12_000
EDGE_S = 0.2
"""Frames this close to a shot's start or end may straddle the cut (or a transition into it)."""
CENTRE_WEIGHT = 0.5
"""How much a frame at a shot's end loses against one at its middle, as a share of its sharpness."""


def encode_thumbnail(image: np.ndarray) -> str:
    """Base64 JPEG, longest side THUMB_SIDE, at the best quality that fits MAX_B64_BYTES."""
    img = Image.fromarray(np.ascontiguousarray(image[:, :, :3]).astype(np.uint8), "RGB")
    img.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR, reducing_gap=2.0)
    data = ""
    for quality in JPEG_QUALITIES:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality, optimize=True)
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        if len(data) <= MAX_B64_BYTES:
            break
    return data


class ThumbnailsAnalyzer(FrameAnalyzer):
    """Model-free: PIL and numpy only."""

    name = "thumbnails"
    group = "light"
    sampling = Sampling(fps=1.0, max_side=320)

    def analyze(self, items: Sequence[FrameItem]) -> list[dict[str, Any]]:
        return [
            {
                "jpeg_b64": encode_thumbnail(item.image),
                "sharpness": float(quality_stats(item.image)["sharpness"]),
            }
            for item in items
        ]

    @classmethod
    def segment_fields(cls, payloads: list[dict[str, Any]]) -> dict[str, Any]:
        """Mean sharpness only: the images stay out of the timeline."""
        values = [float(p["sharpness"]) for p in payloads if "sharpness" in p]
        return {"sharpness": round(sum(values) / len(values), 2)} if values else {}

    @classmethod
    def shot_thumbnails(cls, results: list[ItemResult], shots: list[dict[str, Any]]) -> dict[int, str]:
        return pick_thumbnails(results, shots)


def pick_thumbnails(results: list[ItemResult], shots: list[dict[str, Any]]) -> dict[int, str]:
    """Shot index -> data URI of its keyframe.

    Within a shot, frames more than EDGE_S from both ends are preferred (all of the shot's frames when none
    is); among them the best sharpness relative to the shot's sharpest, discounted by up to CENTRE_WEIGHT
    with the distance from the shot's middle. A shot with no sampled frame takes the frame nearest in time.
    """
    frames = [r for r in results if r.payload.get("jpeg_b64")]
    if not frames:
        return {}
    picked: dict[int, str] = {}
    for shot in shots:
        start, end = float(shot["start_s"]), float(shot["end_s"])
        mid, half = (start + end) / 2, max((end - start) / 2, 1e-6)
        inside = [r for r in frames if start <= r.start_s < end]
        inner = [r for r in inside if r.start_s >= start + EDGE_S and r.start_s <= end - EDGE_S]
        candidates = inner or inside
        if candidates:
            top = max(float(r.payload.get("sharpness", 0.0)) for r in candidates) or 1.0

            def score(r: ItemResult, mid: float = mid, half: float = half, top: float = top) -> float:
                centrality = 1.0 - CENTRE_WEIGHT * min(abs(r.start_s - mid) / half, 1.0)
                return float(r.payload.get("sharpness", 0.0)) / top * centrality

            best = max(candidates, key=score)
        else:
            best = min(frames, key=lambda r: abs(r.start_s - mid))
        picked[int(shot["index"])] = "data:image/jpeg;base64," + best.payload["jpeg_b64"]
    return picked
