"""CPU ms per 300x300 forward of the packaged SSD: OpenCV DNN (one thread, its DetectionOutput included)
against onnxruntime (one intra-op thread, no spinning; forward alone, and with numpy's DetectionOutput),
alternating on ultralytics' bus.jpg and zidane.jpg in one process; and the detector's load cost.

    flock /tmp/measure.lock .venv/bin/python -m reelscope.infra.bench.ssd_onnx_ab docs/results/ssd-onnx-cost.json
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from reelscope.analyzers.common.ssd import SsdDetector, packaged_files
from reelscope.analyzers.common.ssd_onnx import detection_output

ROUNDS = 15


def main(out: Path) -> None:
    graph, text = packaged_files()  # type: ignore[misc]
    cpu = time.process_time()
    net = cv2.dnn.readNetFromTensorflow(str(graph), str(text))
    read_cpu = time.process_time() - cpu
    cpu, wall = time.process_time(), time.perf_counter()
    detector = SsdDetector(1)
    load_cpu, load_wall = time.process_time() - cpu, time.perf_counter() - wall
    spec = importlib.util.find_spec("ultralytics")
    assert spec is not None and spec.submodule_search_locations
    assets = Path(spec.submodule_search_locations[0]) / "assets"
    blobs = [
        cv2.dnn.blobFromImage(cv2.cvtColor(cv2.imread(str(assets / n)), cv2.COLOR_BGR2RGB), size=(300, 300))
        for n in ("bus.jpg", "zidane.jpg")
    ]
    cv2.setNumThreads(1)

    def opencv(blob: np.ndarray) -> Any:
        net.setInput(blob)
        return net.forward()

    def forward(blob: np.ndarray) -> Any:
        return detector.session.run(["boxes", "scores"], {"image": blob})

    def detections(blob: np.ndarray) -> Any:
        boxes, scores = forward(blob)
        return detection_output(boxes[0], scores[0], detector.converted, 0.1)

    runs: dict[str, Callable[[np.ndarray], Any]] = {
        "opencv_dnn": opencv,
        "onnxruntime_forward": forward,
        "onnxruntime_forward_and_detection_output": detections,
    }
    for run in runs.values():  # warm-up
        for blob in blobs:
            run(blob)
    ms: dict[str, list[float]] = {name: [] for name in runs}
    load_before = os.getloadavg()
    for _ in range(ROUNDS):
        for name, run in runs.items():
            cpu = time.process_time()
            for blob in blobs:
                run(blob)
            ms[name].append((time.process_time() - cpu) / len(blobs) * 1000)
    result = {
        "command": "flock /tmp/measure.lock .venv/bin/python -m reelscope.infra.bench.ssd_onnx_ab "
        + str(out),
        "ms_cpu_per_frame": {
            name: {"median": round(float(np.median(v)), 2), "min": round(float(np.min(v)), 2)}
            for name, v in ms.items()
        },
        "load_cpu_s": {
            "opencv_read": round(read_cpu, 3),
            "ssd_detector": round(load_cpu, 3),
            "ssd_detector_wall": round(load_wall, 3),
        },
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
