"""The objects analyzer's detection cadence (`detect_every`) against the SSD on every sampled frame, in one
process on the same sampled frames, runs alternating, so a shared machine's load weighs on all alike.

Clips (3 fps, 640 px: the analyzer's own sampling): `pan` (gating.zidane_pan: two people, a slow pan),
`walk` (a person of ultralytics' bus.jpg walking to and fro across a still textured street, 3 s a crossing), `bench` (pipeline.make_clip: no objects). For each
cadence: CPU seconds of the `analyze` calls per round, SSD passes, and against every-frame detection the
counted boxes found again (same label, IoU ≥ 0.5), the extra ones, frames with the same counts, and the
object tracks of the video summary (ByteTrack over the payloads). Run with
`flock /tmp/measure.lock env OMP_NUM_THREADS=2 python -m reelscope.infra.bench.objects_ab --out OUT.json`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from reelscope.analyzers.base import FrameItem, ItemResult
from reelscope.analyzers.common.boxes import box_iou
from reelscope.analyzers.objects import ObjectsAnalyzer, ObjectsOptions
from reelscope.infra.bench.ab import alternating, emit, warm_up
from reelscope.infra.bench.gating import zidane_pan
from reelscope.infra.bench.peers import sampled_frames
from reelscope.infra.bench.pipeline import make_clip
from reelscope.infra.sample_media import textured, write_video

MATCH_IOU = 0.5


def walking_person(path: Path, seconds: float, fps: int = 30) -> Path:
    """bus.jpg's left man (cut out with the street behind him) walking right and back over a textured
    street, 640x360, crossing the frame in 3 s (60 px, 0.09 of its width, between samples at 3 fps)."""
    spec = importlib.util.find_spec("ultralytics")
    assert spec is not None and spec.submodule_search_locations
    bus = np.asarray(
        Image.open(Path(spec.submodule_search_locations[0]) / "assets" / "bus.jpg").convert("RGB")
    )
    person = np.asarray(Image.fromarray(bus[380:910, 40:240]).resize((100, 264)))
    background = textured(640, 360, 11)
    frames = int(seconds * fps)
    crossing = 3 * fps

    def frame_at(k: int) -> np.ndarray:
        phase = (k % (2 * crossing)) / crossing
        x = round(540 * (phase if phase <= 1.0 else 2.0 - phase))
        frame = background.copy()
        frame[48:312, x : x + 100] = person
        return frame

    return write_video(path, frames, fps, frame_at)


def clips(names: list[str], folder: Path, seconds: float) -> dict[str, list[FrameItem]]:
    """Each clip's frames at the analyzer's sampling, as one video (first and final marked)."""
    sampling = ObjectsAnalyzer.sampling
    makers = {
        "pan": lambda: zidane_pan(folder / "pan.mp4", seconds),
        "walk": lambda: walking_person(folder / "walk.mp4", seconds),
        "bench": lambda: make_clip(folder / "clip.mp4", seconds, (720, 1280)),
    }
    out = {}
    for name in names:
        items = sampled_frames(makers[name](), sampling.fps or 3.0, sampling.max_side)
        out[name] = [
            FrameItem(name, i, it.pts_s, it.image, first=i == 0, final=i == len(items) - 1)
            for i, it in enumerate(items)
        ]
    return out


def counted(payload: dict[str, Any], conf: float) -> list[dict[str, Any]]:
    return [d for d in payload["detections"] if d["conf"] >= conf]


def agreement(mine: list[dict[str, Any]], every: list[dict[str, Any]], conf: float) -> dict[str, Any]:
    """Counted boxes of every-frame detection found again by `mine` (same label, IoU ≥ 0.5, each of mine
    used once), the boxes of `mine` that match none, and frames with the same counts per label."""
    found = extra = truth = 0
    ious: list[float] = []
    for a, b in zip(mine, every, strict=True):
        left = counted(a, conf)
        for thing in counted(b, conf):
            truth += 1
            same = [d for d in left if d["label"] == thing["label"]]
            best = max(same, key=lambda d: box_iou(d["box"], thing["box"]), default=None)
            if best is not None and box_iou(best["box"], thing["box"]) >= MATCH_IOU:
                found += 1
                ious.append(box_iou(best["box"], thing["box"]))
                left.remove(best)
        extra += len(left)
    return {
        "boxes_every_frame": truth,
        "found_again": found,
        "recall": round(found / truth, 3) if truth else None,
        "extra": extra,
        "median_iou": round(float(np.median(ious)), 3) if ious else None,
        "frames_same_counts": sum(a["counts"] == b["counts"] for a, b in zip(mine, every, strict=True)),
    }


def tracks(payloads: list[dict[str, Any]], items: list[FrameItem]) -> dict[str, int]:
    """Object tracks per label in the video summary of these payloads."""
    results = [
        ItemResult(f"f{i:07d}", it.pts_s, it.pts_s, p)
        for i, (it, p) in enumerate(zip(items, payloads, strict=True))
    ]
    summary = ObjectsAnalyzer.video_summary(results) or {}
    return dict(summary.get("tracks_by_label") or {})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--clips", nargs="*", choices=["pan", "walk", "bench"], default=["pan", "walk", "bench"]
    )
    parser.add_argument("--every", nargs="*", type=int, default=[1, 2, 3])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    sets = clips(args.clips, Path(tempfile.mkdtemp(prefix="reelscope-objects-ab-")), args.seconds)
    analyzers = {k: ObjectsAnalyzer(ObjectsOptions(detect_every=k)) for k in args.every}
    loads = warm_up(list(analyzers.values()), next(iter(sets.values()))[0])
    cpu, out, counts = alternating(
        analyzers, sets, args.rounds, lambda a: {"detected": a.detections, "carried": a.carried}
    )
    results: dict[str, Any] = {
        "command": "python -m reelscope.infra.bench.objects_ab "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "threads": os.environ.get("OMP_NUM_THREADS", "library default"),
        "load_average_before": loads,
    }
    conf = ObjectsOptions().conf
    reference = min(analyzers)
    for name, items in sets.items():
        every = out[reference, name]
        n = len(items)
        results[name] = {
            "frames": n,
            "reference": f"detect_every={reference}",
            "cpu_s": {k: cpu[k][name] for k in analyzers},
            "ms_per_frame_min": {k: round(1000 * min(cpu[k][name]) / n, 1) for k in analyzers},
            "ratio_of_min": {k: round(min(cpu[k][name]) / min(cpu[reference][name]), 3) for k in analyzers},
            "detected_carried": {k: counts[k, name] for k in analyzers},
            "against_reference": {k: agreement(out[k, name], every, conf) for k in analyzers},
            "tracks_by_label": {k: tracks(out[k, name], items) for k in analyzers},
        }
    return emit(results, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
