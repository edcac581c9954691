"""Person segmentation per frame (MediaPipe's packaged selfie_segmentation model): how much of the frame the
people fill, what the background looks like, and whether it is a green (or blue) screen; background
changes over the video (a new set, a virtual background switched) in `video_summary`.

The background signature is the mean colour of the non-person pixels in a 4x4 grid (cells the person
covers stay empty), so a person moving in front of the same set does not read as a change.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
from pydantic import BaseModel
from reelscope.analyzers.base import (
    FrameAnalyzer,
    FrameItem,
    ItemResult,
    ModelInfo,
    Runtime,
    Sampling,
    fit_to_side,
)
from reelscope.analyzers.common import mediapipe_solutions

GRID = 4
MIN_CELL_SHARE = 0.2
"""A grid cell with less background than this share has no colour in the signature."""
CHROMA_SHARE = 0.6
"""Background this green (or blue) by share: a chroma-key screen."""
BACKGROUND_CHANGE = 0.12
"""Mean colour distance (0-1 RGB units, over the grid cells both frames see) from which the background
changed between two sampled frames."""


def chroma_share(pixels: np.ndarray) -> dict[str, float]:
    """Share of RGB uint8 pixels (N x 3) that are saturated, bright key green or key blue."""
    if not len(pixels):
        return {"green": 0.0, "blue": 0.0}
    rgb = pixels.astype(np.float64) / 255.0
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    top = np.maximum(np.maximum(r, g), b)  # rgb.max(axis=1)'s values at a fifth of its CPU
    saturation = (top - np.minimum(np.minimum(r, g), b)) / np.maximum(top, 1e-9)
    vivid = (saturation >= 0.4) & (top >= 0.25)
    green = vivid & (rgb[:, 1] == top) & (rgb[:, 1] - np.maximum(rgb[:, 0], rgb[:, 2]) >= 0.15)
    blue = vivid & (rgb[:, 2] == top) & (rgb[:, 2] - np.maximum(rgb[:, 0], rgb[:, 1]) >= 0.15)
    return {"green": round(float(green.mean()), 4), "blue": round(float(blue.mean()), 4)}


def background_signature(image: np.ndarray, person: np.ndarray) -> list[list[float] | None]:
    """Mean RGB (0-1) of the background in each cell of a GRID x GRID grid, row by row; None where the
    person covers the cell."""
    h, w = person.shape
    out: list[list[float] | None] = []
    for r in range(GRID):
        for c in range(GRID):
            ys = slice(r * h // GRID, (r + 1) * h // GRID)
            xs = slice(c * w // GRID, (c + 1) * w // GRID)
            background = ~person[ys, xs]
            if background.mean() < MIN_CELL_SHARE:
                out.append(None)
            else:
                mean = image[ys, xs][background].astype(np.float64).mean(axis=0) / 255.0
                out.append([round(float(v), 3) for v in mean])
    return out


def signature_distance(
    a: Sequence[Sequence[float] | None], b: Sequence[Sequence[float] | None]
) -> float | None:
    """Mean colour distance over the cells both signatures see; None when they share none."""
    shared = [np.linalg.norm(np.subtract(x, y)) for x, y in zip(a, b, strict=True) if x and y]
    return float(np.mean(shared)) if shared else None


def frame_payload(image: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    """One frame's payload from its RGB image and the model's person probability mask (H x W)."""
    person = mask >= 0.5
    background = image[~person]
    keyed = chroma_share(background)
    return {
        "person_share": round(float(person.mean()), 4),
        "green_screen": keyed["green"] >= CHROMA_SHARE,
        "blue_screen": keyed["blue"] >= CHROMA_SHARE,
        "background_green_share": keyed["green"],
        "background": background_signature(image, person),
    }


class SegmentationOptions(BaseModel):
    """Person segmentation (REELSCOPE_SEGMENTATION__*)."""

    landscape: bool = True
    """MediaPipe's landscape model (144x256 input, faster) rather than the general one (256x256)."""


class SegmentationAnalyzer(FrameAnalyzer):
    """Person share, background colour and chroma-key screens per frame; background changes per video.

    Sampling: 1 fps at 256 px: the model sees 256 px at most, and a set or background changes on the scale
    of seconds.
    """

    name = "segmentation"
    group = "vision"
    sampling = Sampling(fps=1.0, max_side=256)
    requires = ("mediapipe",)
    model_name = mediapipe_solutions.describe("selfie_segmentation_landscape.tflite")
    provenance = "packaged"
    options_model = SegmentationOptions
    options: SegmentationOptions

    def __init__(self, options: SegmentationOptions | None = None, runtime: Runtime | None = None) -> None:
        super().__init__(options, runtime)
        self._graph: Any = None

    @classmethod
    def models(cls, options: Any, runtime: Runtime | None = None) -> list[ModelInfo]:
        return [mediapipe_solutions.packaged(("selfie_segmentation_landscape.tflite",), cls.name, True)]

    def load(self) -> None:
        self._graph = mediapipe_solutions.solutions().selfie_segmentation.SelfieSegmentation(
            model_selection=1 if self.options.landscape else 0
        )

    def analyze(self, items: Sequence[FrameItem]) -> list[dict[str, Any]]:
        if self._graph is None:
            raise RuntimeError("load() was not called")
        out = []
        for item in items:
            image = fit_to_side(item.image, self.sampling.max_side)
            out.append(frame_payload(image, self._graph.process(image).segmentation_mask))
        return out

    @classmethod
    def segment_fields(cls, payloads: list[dict[str, Any]]) -> dict[str, Any]:
        """Mean person share and the share of frames on a green or blue screen."""
        return {
            k: v
            for k, v in super().segment_fields(payloads).items()
            if k in ("person_share", "green_screen_share", "blue_screen_share")
        }

    @classmethod
    def video_summary(cls, results: list[ItemResult]) -> dict[str, Any] | None:
        """Mean and largest person share, chroma-key share, and the times the background changed."""
        if not results:
            return None
        frames = sorted(results, key=lambda r: r.start_s)
        shares = [float(r.payload.get("person_share", 0.0)) for r in frames]
        changes = []
        for a, b in pairwise(frames):
            distance = signature_distance(a.payload.get("background", []), b.payload.get("background", []))
            if distance is not None and distance >= BACKGROUND_CHANGE:
                changes.append({"at_s": round(b.start_s, 4), "distance": round(distance, 4)})
        n = len(frames)
        return {
            "frames": n,
            "mean_person_share": round(sum(shares) / n, 4),
            "max_person_share": round(max(shares), 4),
            "green_screen_share": round(sum(bool(r.payload.get("green_screen")) for r in frames) / n, 4),
            "blue_screen_share": round(sum(bool(r.payload.get("blue_screen")) for r in frames) / n, 4),
            "background_changes": changes,
        }
