"""Objects: ultralytics YOLO detections per frame, ByteTrack object tracks per video (analyzers/common/yolo.py
runs the model offline and replays the tracker over the stored detections).

Weights are never downloaded: `REELSCOPE_OBJECTS__MODEL` names a local checkpoint (a path, or a bare file
name looked up in the working directory and in `<state_dir>/weights`).
"""

from __future__ import annotations

from typing import Any

from reelscope.analyzers.base import Sampling
from reelscope.analyzers.common.yolo import YoloAnalyzer, YoloOptions


class ObjectsOptions(YoloOptions):
    """Object detection (REELSCOPE_OBJECTS__*): an ultralytics detect checkpoint."""


class ObjectsAnalyzer(YoloAnalyzer):
    """YOLO object detection; tracks in `video_summary`.

    Sampling: 5 fps keeps consecutive boxes of moving objects overlapping enough for IoU association
    (0.2 s steps) at a sixth of the cost of 30 fps; 640 px is the size YOLO models are trained and run at
    (imgsz), so larger frames would only be shrunk again.
    """

    name = "objects"
    sampling = Sampling(fps=5.0, max_side=640)
    model_name = "yolo11n.pt (ultralytics detect)"
    options_model = ObjectsOptions
    options: ObjectsOptions

    @classmethod
    def document_fields(cls, summary: dict[str, Any]) -> dict[str, Any]:
        """`tracks`: the object tracks (empty when the tracker was unavailable)."""
        return {"tracks": summary.get("tracks") or []}

    @classmethod
    def shot_context(cls, fields: list[dict[str, Any]]) -> dict[str, Any]:
        """`objects`: label -> most seen at once in the shot."""
        objects: dict[str, int] = {}
        for f in fields:
            for label, n in f.get("counts", {}).items():
                objects[label] = max(objects.get(label, 0), int(n))
        return {"objects": objects}
