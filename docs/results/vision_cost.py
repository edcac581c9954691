"""CPU milliseconds a frame of the objects and faces analyzers (and MTCNN alone), and CPU seconds of the
speakers analyzer on 30 one-second chunks, on real media; run once per code base to compare branches:
`OMP_NUM_THREADS=2 python docs/results/vision_cost.py OUT.json` (issue 14; docs/benchmarks.md).

Frames: 12 of a pan over ultralytics' zidane.jpg (two people) at each analyzer's sampling size, one batch,
a warm-up batch first. Audio: hotwords.mp3 (real speech) looped to 30 s, 16 kHz mono chunks of 1 s."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import ultralytics
from PIL import Image
from reelscope.analyzers.base import AudioItem, FrameItem
from reelscope.analyzers.faces import FacesAnalyzer, _Mtcnn
from reelscope.analyzers.objects import ObjectsAnalyzer
from reelscope.analyzers.speakers import SpeakersAnalyzer
from reelscope.infra.bench.scorecard import SHARED_MEDIA

PHOTO = Path(ultralytics.__file__).parent / "assets" / "zidane.jpg"
SPEECH = SHARED_MEDIA / "hotwords.mp3"


def pan(max_side: int, n: int = 12) -> list[np.ndarray]:
    image = Image.open(PHOTO).convert("RGB")
    image.thumbnail((max_side, max_side))
    base = np.asarray(image)
    frames = []
    for i in range(n):
        out = np.zeros_like(base)
        out[:, 4 * i :] = base[:, : base.shape[1] - 4 * i]
        frames.append(out)
    return frames


def cpu_ms_per_frame(analyzer: object, video: str, images: list[np.ndarray]) -> float:
    def items(vid: str) -> list[FrameItem]:
        return [
            FrameItem(vid, i, i / 2, im, first=i == 0, final=i == len(images) - 1)
            for i, im in enumerate(images)
        ]

    analyzer.analyze(items(video + "-warm"))  # type: ignore[attr-defined]
    cpu = time.process_time()
    analyzer.analyze(items(video))  # type: ignore[attr-defined]
    return round((time.process_time() - cpu) / len(images) * 1000, 1)


def speech_chunks() -> list[AudioItem]:
    from faster_whisper import decode_audio

    audio = decode_audio(str(SPEECH), sampling_rate=16_000)
    audio = np.tile(audio, int(np.ceil(30 * 16_000 / len(audio))))[: 30 * 16_000]
    return [
        AudioItem(
            "s",
            i,
            float(i),
            float(i + 1),
            audio[i * 16_000 : (i + 1) * 16_000],
            16_000,
            first=i == 0,
            final=i == 29,
        )
        for i in range(30)
    ]


def main() -> int:
    out: dict[str, object] = {
        "command": "OMP_NUM_THREADS=2 python docs/results/vision_cost.py " + " ".join(sys.argv[1:]),
        "code": str(Path(sys.modules[FacesAnalyzer.__module__].__file__ or "").parents[1]),
        "threads": os.environ.get("OMP_NUM_THREADS", "library default"),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    objects = ObjectsAnalyzer()
    objects.load()
    out["objects_cpu_ms_per_frame"] = cpu_ms_per_frame(objects, "o", pan(ObjectsAnalyzer.sampling.max_side))
    out["objects_fps"] = ObjectsAnalyzer.sampling.fps
    faces = FacesAnalyzer()
    faces.load()
    out["faces_cpu_ms_per_frame"] = cpu_ms_per_frame(faces, "f", pan(FacesAnalyzer.sampling.max_side))
    out["faces_detections_tracked"] = [faces.detections, faces.tracked]
    detector = _Mtcnn()
    frame = pan(640, 1)[0]
    detector.detect(frame)
    cpu = time.process_time()
    found = [len(detector.detect(frame)) for _ in range(6)]
    out["mtcnn_cpu_ms_per_frame"] = round((time.process_time() - cpu) / 6 * 1000, 1)
    out["mtcnn_faces"] = found[0]
    speakers = SpeakersAnalyzer()
    speakers.load()
    chunks = speech_chunks()
    speakers.analyze(chunks[:4])
    cpu = time.process_time()
    payloads = speakers.analyze(chunks)
    out["speakers_cpu_s_for_30_s"] = round(time.process_time() - cpu, 3)
    out["speakers_voiced"] = sum(1 for p in payloads if p.get("embedding"))
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out))
    Path(sys.argv[1]).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
