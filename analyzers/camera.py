"""Camera motion: static, pan, tilt, zoom and shake per timeline segment, from tiny per-frame thumbnails.

`analyze` only keeps each sampled frame as a 128-px grey JPEG thumbnail (1-3 KB), so a processor holds no
state between frames. The motion between consecutive thumbnails is estimated where the whole video is in
view (`timeline_results`, `video_summary`): corner features tracked with pyramidal Lucas-Kanade, kept when
the backward track returns to its start, then fitted with a RANSAC similarity (translation, scale, roll),
the classic global-motion estimate of video stabilisers. Corners are spread over a 4 x 4 grid, so a moving
subject or a fixed caption holding under half of the consistent tracks is voted out as outliers; a cut
leaves too few consistent tracks and the step is `unknown`.

Directions name what the camera does, the picture content moves the other way: `pan right` means the
content slides left, `tilt up` that it slides down, `zoom in` that it grows.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from reelscope.analyzers.base import FrameAnalyzer, FrameItem, ItemResult, Sampling

_THUMB_SIDE = 128  # longest side of the stored thumbnail, pixels
_JPEG_QUALITIES = (90, 75, 60, 45)  # tried in turn until the thumbnail fits _MAX_THUMB_CHARS
_MAX_THUMB_CHARS = 3000  # base64 characters

_CORNER_GRID = 4  # corners are balanced over 4 x 4 cells of the frame
_CELL_CORNERS = 12  # strongest corners kept per cell
# corner strength floor relative to the strongest corner: low, so a caption's sharp corners do not crowd
# out the scene's
_CORNER_QUALITY = 0.001
_CORNER_DISTANCE = 3  # pixels between corners
_LK_WINDOW = (11, 11)
_LK_LEVELS = 3  # pyramid levels: track about 30 % of the frame per step unseeded
_FAR_SHIFT = 0.1  # a phase-correlation shift beyond this share of the frame seeds the tracks
_BACKTRACK_PX = 0.5  # largest forward-backward tracking error of a kept track
_RANSAC_PX = 1.0
_MIN_INLIERS = 8
_MIN_INLIER_SHARE = 0.5  # of the consistent tracks: fewer means no single motion dominates
_MIN_SPREAD = 0.15  # RMS distance of the inliers from their centroid, share of the frame diagonal, to fit
# a zoom: a tighter cluster (a logo, a caption) cannot tell zoom from pan, its shift is taken as a pan
_MAX_GAP_S = 1.0  # frames further apart than this are not compared

_SEGMENT_S = 1.0  # segments of the video summary
_PAN_MIN = 0.05  # frames per second of net translation for a pan or a tilt
_ZOOM_MIN = 0.05  # log scale change per second for a zoom (5 %/s)
_SHAKE_MIN = 0.04  # frames per second: median change of velocity between consecutive steps


def encode_thumb(image: np.ndarray) -> str:
    """Grey thumbnail with its longest side at 128 px, as base64 JPEG no longer than 3000 characters."""
    import cv2

    h, w = image.shape[:2]
    scale = _THUMB_SIDE / max(h, w)
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    grey = cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA)
    text = ""
    for quality in _JPEG_QUALITIES:
        _, data = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, quality])
        text = base64.b64encode(data.tobytes()).decode("ascii")
        if len(text) <= _MAX_THUMB_CHARS:
            break
    return text


def decode_thumb(text: str) -> np.ndarray:
    import cv2

    return cv2.imdecode(np.frombuffer(base64.b64decode(text), np.uint8), cv2.IMREAD_GRAYSCALE)


def _corners(grey: np.ndarray) -> np.ndarray:
    """Shi-Tomasi corners, at most 12 per cell of a 4 x 4 grid (strongest first), as an N x 1 x 2 float32
    array: spread over the frame, so the scene outvotes a subject or an overlay that holds the best corners."""
    import cv2

    h, w = grey.shape
    found = cv2.goodFeaturesToTrack(grey, 0, _CORNER_QUALITY, _CORNER_DISTANCE, blockSize=5)
    if found is None:
        return np.zeros((0, 1, 2), np.float32)
    rows = (found[:, 0, 1] * _CORNER_GRID // h).astype(int)
    cols = (found[:, 0, 0] * _CORNER_GRID // w).astype(int)
    cells = rows * _CORNER_GRID + cols
    rank = np.zeros(len(cells), dtype=int)
    seen: dict[int, int] = {}
    for i, cell in enumerate(cells.tolist()):
        rank[i] = seen.get(cell, 0)
        seen[cell] = rank[i] + 1
    return np.ascontiguousarray(found[rank < _CELL_CORNERS])


def estimate_motion(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float] | None:
    """Global motion from grey image a to b: (dx, dy, log scale), the frame centre's shift as shares of
    the width and height and the zoom factor's log; None when too few tracks agree on one motion.

    When the agreeing tracks huddle in one place their scale is unreliable and extrapolating it to the
    frame centre turns noise into pan, so their median shift is taken with no zoom."""
    import cv2

    h, w = a.shape
    if b.shape != a.shape:
        b = cv2.resize(b, (w, h), interpolation=cv2.INTER_AREA)
    p0 = _corners(a)
    if len(p0) < _MIN_INLIERS:
        return None
    window = cv2.createHanningWindow((w, h), cv2.CV_32F)
    (sx, sy), _ = cv2.phaseCorrelate(a.astype(np.float32), b.astype(np.float32), window)
    seed, flags = None, 0
    if abs(sx) > _FAR_SHIFT * w or abs(sy) > _FAR_SHIFT * h:
        seed, flags = (p0 + np.array([sx, sy], np.float32)).astype(np.float32), cv2.OPTFLOW_USE_INITIAL_FLOW
    p1, ok1, _ = cv2.calcOpticalFlowPyrLK(
        a, b, p0, seed, winSize=_LK_WINDOW, maxLevel=_LK_LEVELS, flags=flags
    )
    back, ok2, _ = cv2.calcOpticalFlowPyrLK(b, a, p1, None, winSize=_LK_WINDOW, maxLevel=_LK_LEVELS)
    good = (ok1[:, 0] == 1) & (ok2[:, 0] == 1) & (np.linalg.norm((back - p0)[:, 0], axis=1) < _BACKTRACK_PX)
    if good.sum() < _MIN_INLIERS:
        return None
    m, inliers = cv2.estimateAffinePartial2D(
        p0[good], p1[good], method=cv2.RANSAC, ransacReprojThreshold=_RANSAC_PX
    )
    if m is None or inliers is None:
        return None
    count = int(inliers.sum())
    if count < _MIN_INLIERS or count < _MIN_INLIER_SHARE * good.sum():
        return None
    kept = inliers[:, 0] == 1
    start, end = p0[good][kept, 0], p1[good][kept, 0]
    spread = float(np.sqrt(((start - start.mean(axis=0)) ** 2).sum(axis=1).mean())) / float(np.hypot(w, h))
    if spread < _MIN_SPREAD:
        dx, dy = np.median(end - start, axis=0)
        return float(dx / w), float(dy / h), 0.0
    centre = np.array([w / 2.0, h / 2.0])
    shift = m[:, :2] @ centre + m[:, 2] - centre
    return float(shift[0] / w), float(shift[1] / h), float(np.log(np.hypot(m[0, 0], m[1, 0])))


@dataclass(frozen=True)
class _Step:
    """Camera motion between two consecutive sampled frames, as velocities in the camera's terms."""

    t0: float
    t1: float
    pan: float  # frame widths per second, positive: right
    tilt: float  # frame heights per second, positive: down
    zoom: float  # log scale per second, positive: in
    jerk: float | None  # change of translation velocity since the previous step, frames per second


@lru_cache(maxsize=2)
def _steps_of(frames: tuple[tuple[float, str], ...]) -> tuple[tuple[float, _Step | None], ...]:
    """(middle time, step) per consecutive frame pair, the step None where the motion is unknown; cached
    because `timeline_results` and `video_summary` both need it for the same video."""
    steps: list[tuple[float, _Step | None]] = []
    previous: _Step | None = None
    thumbs = [decode_thumb(text) for _, text in frames]
    for (t0, _), (t1, _), a, b in zip(frames, frames[1:], thumbs, thumbs[1:], strict=False):
        dt = t1 - t0
        motion = estimate_motion(a, b) if 0 < dt <= _MAX_GAP_S and a is not None and b is not None else None
        if motion is None:
            steps.append(((t0 + t1) / 2.0, None))
            previous = None
            continue
        dx, dy, log_scale = motion
        pan, tilt = -dx / dt, -dy / dt
        jerk = None if previous is None else float(np.hypot(pan - previous.pan, tilt - previous.tilt))
        previous = _Step(t0, t1, pan, tilt, log_scale / dt, jerk)
        steps.append(((t0 + t1) / 2.0, previous))
    return tuple(steps)


def _steps(results: list[ItemResult]) -> tuple[tuple[float, _Step | None], ...]:
    ordered = sorted((r for r in results if "thumb" in r.payload), key=lambda r: r.start_s)
    return _steps_of(tuple((r.start_s, r.payload["thumb"]) for r in ordered))


def classify(steps: list[_Step]) -> dict[str, Any]:
    """The label of a stretch of steps: the strongest net motion over its threshold, else shake or static.

    Net motion is total displacement over total time, so jitter, whose steps cancel, never reads as a pan;
    a directional move must also outrun the jitter (the median jerk), else the stretch is shake.
    """
    if not steps:
        return {
            "label": "unknown",
            "kind": "unknown",
            "direction": None,
            "magnitude": None,
            "shaky": None,
            **dict.fromkeys(("pan", "tilt", "zoom", "shake")),
        }
    span = sum(s.t1 - s.t0 for s in steps)
    pan = sum(s.pan * (s.t1 - s.t0) for s in steps) / span
    tilt = sum(s.tilt * (s.t1 - s.t0) for s in steps) / span
    zoom = sum(s.zoom * (s.t1 - s.t0) for s in steps) / span
    jerks = [s.jerk for s in steps if s.jerk is not None]
    shake = float(np.median(jerks)) if jerks else 0.0
    shaky = shake >= _SHAKE_MIN
    # speed of the frame's edge for a zoom, so it compares with the jitter like a pan does
    moves = [
        ("pan", "right" if pan > 0 else "left", abs(pan), abs(pan) / _PAN_MIN),
        ("tilt", "down" if tilt > 0 else "up", abs(tilt), abs(tilt) / _PAN_MIN),
        ("zoom", "in" if zoom > 0 else "out", abs(zoom), abs(zoom) / _ZOOM_MIN),
    ]
    kind, direction, magnitude, strength = max(moves, key=lambda m: m[3])
    edge_speed = magnitude / 2.0 if kind == "zoom" else magnitude
    if strength < 1.0 or (shaky and edge_speed < shake):
        kind, direction = ("shake", None) if shaky else ("static", None)
        magnitude = shake if shaky else float(np.hypot(pan, tilt))
    return {
        "label": kind if direction is None else f"{kind}_{direction}",
        "kind": kind,
        "direction": direction,
        "magnitude": round(magnitude, 4),
        "shaky": shaky,
        "pan": round(pan, 4),
        "tilt": round(tilt, 4),
        "zoom": round(zoom, 4),
        "shake": round(shake, 4),
    }


def segment_labels(results: list[ItemResult], segment_s: float) -> list[tuple[int, dict[str, Any]]]:
    """(segment index, classify() of its steps) for every segment holding the middle of a step; a segment
    whose steps are all unknown is labelled `unknown`."""
    buckets: dict[int, list[_Step | None]] = {}
    for mid, step in _steps(results):
        buckets.setdefault(int(np.floor(mid / segment_s + 1e-9)), []).append(step)
    return [(k, classify([s for s in steps if s is not None])) for k, steps in sorted(buckets.items())]


def _spans(labels: list[tuple[int, dict[str, Any]]], segment_s: float) -> list[dict[str, Any]]:
    """Runs of consecutive segments with one label (unknown ones break runs and are left out)."""
    spans: list[dict[str, Any]] = []
    run: list[tuple[int, dict[str, Any]]] = []
    for k, fields in [*labels, (-1, {"label": "unknown"})]:
        if run and (fields["label"] != run[-1][1]["label"] or k != run[-1][0] + 1):
            first = run[0][1]
            spans.append(
                {
                    "kind": first["kind"],
                    "direction": first["direction"],
                    "start_s": round(run[0][0] * segment_s, 3),
                    "end_s": round((run[-1][0] + 1) * segment_s, 3),
                    "magnitude": round(float(np.mean([f["magnitude"] for _, f in run])), 4),
                }
            )
            run = []
        if fields["label"] != "unknown":
            run.append((k, fields))
    return spans


class CameraAnalyzer(FrameAnalyzer):
    """Camera motion; per-frame thumbnails here, the motion in `timeline_results` and `video_summary`.

    5 fps: five steps per one-second segment, enough for a median jitter and a net motion, while a pan of
    1.5 frame widths per second still moves under a third of the frame per step (the trackers' reach
    unseeded; a phase-correlation seed takes them to about 40 %). Higher rates would shrink each step
    towards the tracking noise and double the aggregator's work.
    max_side 160 is the size scene already asks for on every frame, so camera adds no decode or encode,
    and the 128-px thumbnail is taken from it.
    """

    name = "camera"
    group = "light"
    sampling = Sampling(fps=5.0, max_side=160)
    summary_promoted = True
    requires = ("cv2",)

    def analyze(self, items: Sequence[FrameItem]) -> list[dict[str, Any]]:
        return [{"thumb": encode_thumb(item.image)} for item in items]

    @classmethod
    def timeline_results(cls, results: list[ItemResult], segment_s: float) -> list[ItemResult]:
        """One result per segment, carrying that segment's motion label (thumbnails stay off the timeline)."""
        return [
            ItemResult(f"camera{k:06d}", k * segment_s, (k + 1) * segment_s, fields)
            for k, fields in segment_labels(results, segment_s)
        ]

    @classmethod
    def segment_fields(cls, payloads: list[dict[str, Any]]) -> dict[str, Any]:
        """The segment's motion label from `timeline_results` (raw thumbnails carry none)."""
        return next((p for p in payloads if "label" in p), {})

    @classmethod
    def video_summary(cls, results: list[ItemResult]) -> dict[str, Any] | None:
        """Motion spans over one-second segments, seconds per label, and the dominant motion."""
        steps = _steps(results)
        if not steps:
            return None
        labels = segment_labels(results, _SEGMENT_S)
        seconds: dict[str, float] = {}
        for _, fields in labels:
            seconds[fields["label"]] = seconds.get(fields["label"], 0.0) + _SEGMENT_S
        known = {k: v for k, v in seconds.items() if k != "unknown"}
        return {
            "steps": len(steps),
            "unknown_steps": sum(s is None for _, s in steps),
            "spans": _spans(labels, _SEGMENT_S),
            "seconds": seconds,
            "shaky_s": sum((_SEGMENT_S for _, f in labels if f["shaky"]), 0.0),
            "dominant": max(known, key=lambda k: known[k]) if known else None,
        }

    @classmethod
    def document_fields(cls, summary: dict[str, Any]) -> dict[str, Any]:
        return {"camera": summary}

    @classmethod
    def shot_context(cls, fields: list[dict[str, Any]]) -> dict[str, Any]:
        """`camera`: the motion label seen in most of the shot's segments."""
        cameras = [f["label"] for f in fields if f.get("label")]
        return {"camera": max(set(cameras), key=cameras.count) if cameras else ""}
