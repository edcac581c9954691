"""Composition: where the subject sits (rule of thirds, position), left-right symmetry and horizon tilt.

The subject is the strongest blob of a frequency-tuned saliency map (Achanta et al., CVPR 2009): how far
each blurred pixel's Lab colour is from the frame's mean colour. `cv2.saliency` only ships in the contrib
build, and the spectral residual (Hou & Zhang 2007) missed a plain bright blob on a smooth background in
most test placements, so it is computed here in a few lines. No model: person/background segmentation
would need weights that no installed wheel ships.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from reelscope.analyzers.base import FrameAnalyzer, FrameItem, ItemResult, Sampling, mean_numeric

_SALIENCY_SIDE = 64  # saliency works on a 64-px image: the subject's place, not its outline
_SALIENCY_BLUR = 1.0  # Gaussian sigma before comparing with the mean colour, pixels at 64 px
_SUBJECT_RATIO = 2.0  # saliency over twice its mean belongs to an object (the paper's adaptive threshold)
_FLAT = 1.0  # mean squared Lab distance (delta E squared) below which nothing stands out: no subject
_THIRDS = (1.0 / 3.0, 2.0 / 3.0)
_THIRDS_SIGMA = 0.1  # rule-of-thirds score: Gaussian of the distance to the nearest power point
_SIDES = (5.0 / 12.0, 7.0 / 12.0)  # halfway between a thirds line and the centre
_SYMMETRY_SIDE = 64
_CANNY = (25, 75)  # hysteresis thresholds: after the 5x5 blur a step of about 30 grey levels is an edge
_HORIZON_MIN_LENGTH = 0.4  # a horizon candidate spans this share of the width
_HORIZON_MAX_DEG = 20.0  # and is within this many degrees of level


def _shrink(image: np.ndarray, side: int) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    scale = side / max(h, w)
    size = (max(4, round(w * scale)), max(4, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def saliency(rgb: np.ndarray) -> np.ndarray:
    """Frequency-tuned saliency at 64 px on the longest side: squared Lab distance of each (slightly
    blurred) pixel from the frame's mean colour. Large objects light up whole, not just their edges."""
    import cv2

    lab = cv2.cvtColor(_shrink(rgb, _SALIENCY_SIDE).astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    blurred = cv2.GaussianBlur(lab, (0, 0), _SALIENCY_BLUR)
    return ((blurred - lab.reshape(-1, 3).mean(axis=0)) ** 2).sum(axis=-1)


def _subject(sal: np.ndarray) -> tuple[float, float, float] | None:
    """(x, y, area) of the salient blob holding the most saliency: its centroid as shares of the width and
    height, and its area as a share of the frame; None for a frame with no salient blob.

    Pixels weigh by how far they exceed the object threshold, so the background the blob touches barely
    pulls its centroid."""
    import cv2

    if float(sal.mean()) < _FLAT:
        return None
    threshold = _SUBJECT_RATIO * float(sal.mean())
    mask = (sal > threshold).astype(np.uint8)
    count, labels = cv2.connectedComponents(mask, connectivity=8)
    if count < 2:
        return None
    mass = np.bincount(labels.ravel(), weights=sal.ravel(), minlength=count)
    best = int(np.argmax(mass[1:])) + 1
    ys, xs = np.nonzero(labels == best)
    weights = sal[ys, xs] - threshold
    h, w = sal.shape
    x = float((xs + 0.5) @ weights / weights.sum()) / w
    y = float((ys + 0.5) @ weights / weights.sum()) / h
    return x, y, float(len(xs)) / (h * w)


def thirds_score(x: float, y: float) -> float:
    """1 on a thirds intersection (a power point), falling as a Gaussian of the distance to the nearest one
    (sigma 0.1 of the frame): 0.06 at the centre."""
    d2 = min((x - px) ** 2 + (y - py) ** 2 for px in _THIRDS for py in _THIRDS)
    return float(np.exp(-d2 / (2 * _THIRDS_SIGMA**2)))


def _place(v: float, names: tuple[str, str, str]) -> str:
    """The nearest of the first thirds line, the centre and the second thirds line."""
    low, high = _SIDES
    return names[0] if v < low else names[2] if v > high else names[1]


def symmetry(grey: np.ndarray) -> float:
    """Left-right mirror similarity: correlation of the image with its mirror, 0 (none or anti) to 1 (a
    mirror image; also a blank frame). Blurred a little so a near-mirror still scores high."""
    import cv2

    small = cv2.GaussianBlur(_shrink(grey, _SYMMETRY_SIDE).astype(np.float32), (0, 0), 1.0)
    a = small - small.mean()
    b = a[:, ::-1]
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return max(0.0, float((a * b).sum()) / denom) if denom > 0 else 1.0


def horizon_tilt(grey: np.ndarray) -> float | None:
    """Degrees the longest near-level straight edge rises to the right (negative: falls), None without one.

    A long straight edge within 20 degrees of level is usually the horizon, a table or a shelf: its tilt
    is how far the camera is rolled off level."""
    import cv2

    w = grey.shape[1]
    edges = cv2.Canny(cv2.GaussianBlur(grey, (5, 5), 0), _CANNY[0], _CANNY[1])
    min_length = _HORIZON_MIN_LENGTH * w
    lines = cv2.HoughLinesP(
        edges, 1, np.pi / 360, threshold=int(min_length / 2), minLineLength=min_length, maxLineGap=w // 40
    )
    best: tuple[float, float] | None = None
    for x1, y1, x2, y2 in [] if lines is None else lines.reshape(-1, 4).tolist():
        if x2 < x1:
            x1, y1, x2, y2 = x2, y2, x1, y1
        angle = float(np.degrees(np.arctan2(y1 - y2, x2 - x1)))  # image y grows downwards
        length = float(np.hypot(x2 - x1, y2 - y1))
        if abs(angle) <= _HORIZON_MAX_DEG and (best is None or length > best[0]):
            best = (length, angle)
    return None if best is None else round(best[1], 1)


def composition(image: np.ndarray) -> dict[str, Any]:
    """The per-frame payload: subject position and size, rule-of-thirds score, symmetry, horizon tilt."""
    import cv2

    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    subject = _subject(saliency(image))
    out: dict[str, Any] = {
        "symmetry": round(symmetry(grey), 4),
        "horizon_tilt_deg": horizon_tilt(grey),
    }
    if subject is None:
        return {
            **out,
            **dict.fromkeys(("thirds", "subject_x", "subject_y", "subject_size", "horizontal", "vertical")),
        }
    x, y, size = subject
    return {
        **out,
        "thirds": round(thirds_score(x, y), 4),
        "subject_x": round(x, 4),
        "subject_y": round(y, 4),
        "subject_size": round(size, 4),
        "horizontal": _place(x, ("left", "center", "right")),
        "vertical": _place(y, ("top", "middle", "bottom")),
    }


def _shares(values: list[str]) -> dict[str, float]:
    return {v: round(values.count(v) / len(values), 4) for v in sorted(set(values))}


class CompositionAnalyzer(FrameAnalyzer):
    name = "composition"
    group = "light"
    sampling = Sampling(fps=1.0, max_side=320)
    requires = ("cv2",)

    def analyze(self, items: Sequence[FrameItem]) -> list[dict[str, Any]]:
        return [composition(item.image) for item in items]

    @classmethod
    def segment_fields(cls, payloads: list[dict[str, Any]]) -> dict[str, Any]:
        """Numeric means plus the subject's place in the middle frame of the segment."""
        fields = mean_numeric(payloads)
        if payloads:
            middle = payloads[len(payloads) // 2]
            fields["horizontal"], fields["vertical"] = middle["horizontal"], middle["vertical"]
        return fields

    @classmethod
    def video_summary(cls, results: list[ItemResult]) -> dict[str, Any] | None:
        """Means over the video, how often the subject sits in each place, and the typical horizon tilt."""
        payloads = [r.payload for r in results]
        if not payloads:
            return None
        placed = [p for p in payloads if p["horizontal"] is not None]
        tilts = [p["horizon_tilt_deg"] for p in payloads if p["horizon_tilt_deg"] is not None]
        return {
            "frames": len(payloads),
            "thirds": round(float(np.mean([p["thirds"] for p in placed])), 4) if placed else None,
            "symmetry": round(float(np.mean([p["symmetry"] for p in payloads])), 4),
            "horizontal": _shares([p["horizontal"] for p in placed]) if placed else {},
            "vertical": _shares([p["vertical"] for p in placed]) if placed else {},
            "horizon_tilt_deg": round(float(np.median(tilts)), 1) if tilts else None,
            "horizon_frames": len(tilts),
        }
