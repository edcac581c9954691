"""CPU seconds of MTCNN and of the safety analyzer's NudeNet, the code before against the code now,
alternating call by call in one process (so the machine's load falls on both alike):
`flock /tmp/measure.lock env OMP_NUM_THREADS=2 python -m reelscope.infra.bench.faces_safety_ab OUT.json`.

MTCNN: facenet-pytorch's own `MTCNN.detect` (with the swapped max pools, what analyzers/faces.py ran before)
against the analyzer's detector (resampling on an integral image, analyzers/common/mtcnn.py), on every
3rd 2 fps frame at 640 px (what the faces gate hands the detector) of the bench clip
(infra/bench/pipeline.make_clip) and of the pan over zidane.jpg (infra/bench/gating.zidane_pan).
Safety: NudeNet's `detect_batch` against the analyzer's `detect` (its session, numpy postprocessing) on
the bench clip's 1 fps frames at 320 px, batches of 8, three rounds; `equal`: same detections."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from reelscope.analyzers.base import fit_to_side
from reelscope.analyzers.faces import _Mtcnn
from reelscope.analyzers.safety import SafetyAnalyzer
from reelscope.infra.bench.gating import zidane_pan
from reelscope.infra.bench.pipeline import make_clip


def frames(path: Path, fps: float, side: int) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    due = 0.0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time + 1e-6 >= due:
                out.append(fit_to_side(frame.to_ndarray(format="rgb24"), side))
                due += 1 / fps
    return out


def alternate(calls: dict[str, Callable[[Any], Any]], inputs: list[Any], rounds: int = 1) -> dict[str, float]:
    spent = dict.fromkeys(calls, 0.0)
    for _ in range(rounds):
        for x in inputs:
            for name, call in calls.items():
                start = time.process_time()
                call(x)
                spent[name] += time.process_time() - start
    return {k: round(v, 3) for k, v in spent.items()}


def main(out: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="faces-safety-cost-"))
    clips = {
        "bench": make_clip(folder / "clip.mp4", 30.0, (720, 1280)),
        "pan": zidane_pan(folder / "zidane-pan.mp4", 30.0),
    }
    result: dict[str, Any] = {"command": " ".join(sys.argv), "load_before": os.getloadavg()}
    detector = _Mtcnn(1)
    torch.set_num_threads(1)

    def before(image: np.ndarray) -> Any:
        return detector._model.detect(image, landmarks=True)

    for name, clip in clips.items():
        shown = frames(clip, 2.0, 640)[::3]
        spent = alternate({"facenet_detect": before, "ours": detector.detect}, shown)
        same = sum(
            len(detector.detect(f)) == (0 if before(f)[0] is None else len(before(f)[0])) for f in shown
        )
        result[f"mtcnn_{name}"] = {
            "frames": len(shown),
            "cpu_s": spent,
            "ms_per_frame": {k: round(v / len(shown) * 1000, 1) for k, v in spent.items()},
            "same_face_count": same,
        }
    safety = SafetyAnalyzer()
    safety.load()
    sampled = frames(clips["bench"], 1.0, 320)
    batches = [sampled[i : i + 8] for i in range(0, len(sampled), 8)]
    theirs = safety._detector.detect_batch
    spent = alternate(
        {"nudenet_detect_batch": lambda b: theirs(b, batch_size=len(b)), "ours": safety.detect}, batches, 3
    )
    result["safety_bench_x3"] = {
        "frames": 3 * len(sampled),
        "cpu_s": spent,
        "equal": all(theirs(b, batch_size=len(b)) == safety.detect(b) for b in batches),
    }
    result["load_after"] = os.getloadavg()
    Path(out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/results/faces-safety-cost.json")
