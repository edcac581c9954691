"""Safety: nudity detection per frame with NudeNet's detector, flagged spans per video.

NudeNet's 320n ONNX model ships in the nudenet wheel ("packaged"). Frames are handed over as RGB arrays:
NudeNet's reader swaps the channels once (cvtColor RGBA2BGR on three channels) and blobFromImage swaps
them back, so an RGB array reaches the network as RGB, the order it was trained on, while a BGR file read
through `detect(path)` reaches it as BGR (NudeNet issue #203).

The session runs here on the batch NudeNet's own reader prepares, and its output is read by `detections`:
NudeNet's `_postprocess` in numpy, whole arrays at a time (its python loop over the 2,100 anchors of each
frame cost ~6 ms a frame, a fifth of the network's time; now ~0.1 ms); the same floats, the same NMS
call, the same detections (tests/test_safety.py compares with NudeNet's `detect_batch` on real photos).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
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
    packaged_model,
)
from reelscope.analyzers.common.onnx_session import session_options

EXPLICIT_LABELS = frozenset(
    {
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "FEMALE_BREAST_EXPOSED",
        "BUTTOCKS_EXPOSED",
        "ANUS_EXPOSED",
    }
)
"""NudeNet's exposed classes that make a frame explicit; exposed feet, belly, armpits or a male chest do not."""
REPORT_FLOOR = 0.2
"""NudeNet's own floor: anchors whose best class scores less are not candidates."""
NMS_SCORE, NMS_IOU = 0.25, 0.45
"""NudeNet's cv2.dnn.NMSBoxes thresholds."""


def detections(
    output: np.ndarray,
    width: int,
    height: int,
    x_pad: int,
    y_pad: int,
    labels: Sequence[str],
    side: int = 320,
) -> list[dict[str, Any]]:
    """NudeNet's `_postprocess` of one frame's output (4 + classes rows x anchors), vectorised: each anchor
    whose best class reaches the floor becomes a box (centre form to corner, scaled back to the padded
    frame, clipped to the frame), then NMS. Every step is NudeNet's float32 operation in its order, so the
    boxes and scores are its own."""
    import cv2

    rows = np.asarray(output, dtype=np.float32).reshape(output.shape[-2], output.shape[-1]).T
    classes = rows[:, 4:]
    best = classes.max(axis=1)
    keep = np.flatnonzero(best >= REPORT_FLOOR)
    if not len(keep):
        return []
    class_ids = classes[keep].argmax(axis=1)
    scores = best[keep]
    x, y, w, h = (rows[keep, i] for i in range(4))
    x = x - w / 2
    y = y - h / 2
    x = x * (width + x_pad) / side
    y = y * (height + y_pad) / side
    w = w * (width + x_pad) / side
    h = h * (height + y_pad) / side
    x = np.maximum(np.minimum(x, np.float32(width)), np.float32(0))
    y = np.maximum(np.minimum(y, np.float32(height)), np.float32(0))
    w = np.minimum(w, width - x)
    h = np.minimum(h, height - y)
    boxes = np.stack([x, y, w, h], axis=1)
    picked = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), NMS_SCORE, NMS_IOU)
    return [
        {
            "class": labels[class_ids[i]],
            "score": float(scores[i]),
            "box": [int(v) for v in boxes[i].tolist()],
        }
        for i in np.asarray(picked, dtype=np.int64).reshape(-1)
    ]


def frame_payload(detections: Sequence[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """Each detected label with its best score, the best explicit score, and whether it reaches threshold."""
    labels: dict[str, float] = {}
    for d in detections:
        labels[d["class"]] = max(labels.get(d["class"], 0.0), round(float(d["score"]), 4))
    explicit_score = max((s for label, s in labels.items() if label in EXPLICIT_LABELS), default=0.0)
    return {
        "labels": dict(sorted(labels.items(), key=lambda kv: -kv[1])),
        "explicit_score": explicit_score,
        "explicit": explicit_score >= threshold,
    }


class SafetyOptions(BaseModel):
    """Explicit-content detection (REELSCOPE_SAFETY__*)."""

    explicit_threshold: float = 0.5
    """Score from which an explicit class makes the frame explicit (NudeNet itself reports from 0.2)."""


class SafetyAnalyzer(FrameAnalyzer):
    """NudeNet per frame. Sampling: 1 fps is enough to flag a span of seconds (a reviewer looks at the span);
    320 px because NudeNet pads every frame to a square and shrinks it to 320 x 320, so more pixels are
    never seen."""

    name = "safety"
    group = "vision"
    sampling = Sampling(fps=1.0, max_side=320)
    requires = ("nudenet",)
    model_name = "nudenet 320n detector (onnx)"
    provenance = "packaged"
    options_model = SafetyOptions
    options: SafetyOptions

    _detector: Any = None

    @classmethod
    def models(cls, options: Any, runtime: Runtime | None = None) -> list[ModelInfo]:
        return [
            packaged_model(cls.model_name, cls.name, "nudenet", ("320n.onnx",), "MIT (wheel metadata)", True)
        ]

    def load(self) -> None:
        import nudenet
        import onnxruntime

        detector = nudenet.NudeDetector()
        on_gpu = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        threads = self.runtime.threads
        # NudeDetector ignores its providers argument, sizes its own thread pool and spins: rebuild its session
        # on the GPU when there is one, within this process's thread budget, its threads not spinning
        detector.onnx_session = onnxruntime.InferenceSession(
            str(Path(nudenet.__file__).parent / "320n.onnx"),
            sess_options=session_options(threads),
            providers=["CUDAExecutionProvider", "CPUExecutionProvider"]
            if on_gpu
            else ["CPUExecutionProvider"],
        )
        self._detector = detector
        self._labels: list[str] = list(vars(nudenet.nudenet)["__labels"])

    def analyze(self, items: Sequence[FrameItem]) -> list[dict[str, Any]]:
        if self._detector is None:
            raise RuntimeError("load() was not called")
        found = self.detect([item.image for item in items])
        return [frame_payload(d, self.options.explicit_threshold) for d in found]

    def detect(self, images: Sequence[np.ndarray]) -> list[list[dict[str, Any]]]:
        """NudeNet's detections of each RGB frame, as its `detect_batch` gives them, in one session run."""
        if not images:
            return []
        from nudenet.nudenet import _read_image

        detector = self._detector
        side = detector.input_width
        read = [_read_image(image, side) for image in images]
        batch = np.vstack([r[0] for r in read])
        output = detector.onnx_session.run(None, {detector.input_name: batch})[0]
        return [detections(output[j], r[5], r[6], r[3], r[4], self._labels, side) for j, r in enumerate(read)]

    @classmethod
    def segment_fields(cls, payloads: list[dict[str, Any]]) -> dict[str, Any]:
        if not payloads:
            return {}
        return {
            "explicit_score": max(float(p.get("explicit_score", 0.0)) for p in payloads),
            "explicit_share": round(sum(bool(p.get("explicit")) for p in payloads) / len(payloads), 3),
        }

    @classmethod
    def video_summary(cls, results: list[ItemResult]) -> dict[str, Any] | None:
        """Spans of consecutive explicit frames (a sample shows until the next one), their best score and
        the explicit labels seen in them."""
        if not results:
            return None
        frames = sorted(results, key=lambda r: r.start_s)
        steps = [b.start_s - a.start_s for a, b in pairwise(frames) if b.start_s - a.start_s > 1e-6]
        step = statistics.median(steps) if steps else 1.0 / (cls.sampling.fps or 1.0)
        runs: list[list[ItemResult]] = []
        for r in frames:
            if not r.payload.get("explicit"):
                continue
            if runs and r.start_s - runs[-1][-1].start_s <= 1.5 * step:
                runs[-1].append(r)
            else:
                runs.append([r])
        spans = [
            {
                "start_s": round(run[0].start_s, 4),
                "end_s": round(run[-1].start_s + step, 4),
                "frames": len(run),
                "max_score": max(float(r.payload["explicit_score"]) for r in run),
                "labels": sorted(
                    {k for r in run for k in r.payload.get("labels", {}) if k in EXPLICIT_LABELS}
                ),
            }
            for run in runs
        ]
        explicit = sum(bool(r.payload.get("explicit")) for r in frames)
        return {
            "frames": len(frames),
            "explicit": bool(spans),
            "explicit_share": round(explicit / len(frames), 4),
            "max_score": max(float(r.payload.get("explicit_score", 0.0)) for r in frames),
            "flagged_spans": spans,
        }
