"""Work not repeated (issue 18), before and after, in one run: OCR against RapidOCR called on every sampled
frame (with and without onnxruntime's thread spinning), pose with and without MediaPipe's tracking, hands
with the palm detector on every frame and on every 2nd. Real media: the bench clip (`make_clip`, 30 s
720x1280, a caption changing every frame over a panning texture, no people) and a 30 s pan over ultralytics'
zidane.jpg (two people, one pointing hand, 30 s), each sampled as the producer samples it for the analyzer.

Figures are process CPU seconds (every thread), which a shared machine inflates far less than wall time;
the load average is recorded before and after each part. Run with
`OMP_NUM_THREADS=2 python -m reelscope.infra.bench.gating --out docs/results/gating-cpu.json`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from reelscope.analyzers.base import FrameAnalyzer, FrameItem
from reelscope.analyzers.common.boxes import box_iou
from reelscope.infra.bench.peers import sampled_frames, timed
from reelscope.infra.bench.pipeline import make_clip
from reelscope.infra.sample_media import write_video


def zidane_pan(path: Path, seconds: float = 30.0, fps: int = 30) -> Path:
    """A camera panning over zidane.jpg: a 1120x630 window sliding 160 px right and back every 10 s."""
    spec = importlib.util.find_spec("ultralytics")
    assert spec is not None and spec.submodule_search_locations
    photo = np.asarray(
        Image.open(Path(spec.submodule_search_locations[0]) / "assets" / "zidane.jpg").convert("RGB")
    )
    frames = int(seconds * fps)

    def frame_at(k: int) -> np.ndarray:
        phase = (k / fps) % 10.0 / 5.0
        x = round(160 * (phase if phase <= 1.0 else 2.0 - phase))
        return np.ascontiguousarray(photo[45:675, x : x + 1120])

    return write_video(path, frames, fps, frame_at)


def _loads() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _run(analyzer: FrameAnalyzer, items: list[FrameItem]) -> tuple[float, float, list[dict[str, Any]]]:
    analyzer.load()
    analyzer.analyze([FrameItem("warm-up", 0, 0.0, items[0].image, first=True, final=True)])
    return timed(lambda: [p for b in range(0, len(items), 32) for p in analyzer.analyze(items[b : b + 32])])


def agreement(gated: list[dict[str, Any]], every: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Per frame: equal counts; per thing the ungated run found, the gated one's best box overlap and the
    mean landmark gap (frame units) to it."""
    ious, gaps = [], []
    for a, b in zip(gated, every, strict=True):
        for thing in b.get(key, []):
            if not a.get(key):
                ious.append(0.0)
                continue
            match = max(a[key], key=lambda t: box_iou(t["box"], thing["box"]))
            ious.append(box_iou(match["box"], thing["box"]))
            x, y = np.array(match["landmarks"])[:, :2], np.array(thing["landmarks"])[:, :2]
            gaps.append(float(np.abs(x - y).mean()))
    return {
        "frames": len(every),
        "frames_same_count": sum(a["count"] == b["count"] for a, b in zip(gated, every, strict=True)),
        "found_ungated": len(ious),
        "found_gated": sum(len(a.get(key, [])) for a in gated),
        "median_box_iou": round(float(np.median(ious)), 3) if ious else None,
        "min_box_iou": round(min(ious), 3) if ious else None,
        "median_landmark_gap": round(float(np.median(gaps)), 4) if gaps else None,
    }


def before_after(
    name: str, before: FrameAnalyzer, after: FrameAnalyzer, items: list[FrameItem], key: str
) -> dict[str, Any]:
    old = _run(before, items)
    new = _run(after, items)
    n = len(items)
    out = {
        "frames": n,
        "before_cpu_s": round(old[0], 3),
        "after_cpu_s": round(new[0], 3),
        "before_ms_per_frame": round(1000 * old[0] / n, 1),
        "after_ms_per_frame": round(1000 * new[0] / n, 1),
        "after_over_before": round(new[0] / old[0], 3),
        "before_wall_s": round(old[1], 3),
        "after_wall_s": round(new[1], 3),
        "agreement": agreement(new[2], old[2], key),
    }
    for counter in ("detections", "tracked"):
        if hasattr(after, counter):
            out[f"after_{counter}"] = getattr(after, counter)
    videos = getattr(after, "_videos", None)
    if videos is not None:
        out["after_passes_detected"], out["after_passes_followed"] = videos.detected, videos.followed
    print(name, json.dumps(out), flush=True)
    return out


def ocr(clip: Path, seconds: float) -> dict[str, Any]:
    """The OCR analyzer (gated, 640 px detection; spinning off, then on as before) and RapidOCR on every
    sampled frame as shipped, then RapidOCR with the analyzer's session settings (no spinning)."""
    from rapidocr_onnxruntime import RapidOCR
    from reelscope.analyzers.base import cpu_threads
    from reelscope.analyzers.ocr_text import (
        MIN_LINE_CONFIDENCE,
        OcrTextAnalyzer,
        OcrTextOptions,
        _without_spinning,
    )

    items = sampled_frames(clip, OcrTextAnalyzer.sampling.fps or 2.0, OcrTextAnalyzer.sampling.max_side)
    threads = {"intra_op_num_threads": cpu_threads()} if cpu_threads() else {}

    def direct(engine: Any) -> list[Any]:
        return [engine(np.ascontiguousarray(i.image[:, :, ::-1]))[0] for i in items]

    shipped = RapidOCR(det_limit_type="max", text_score=MIN_LINE_CONFIDENCE, **threads)
    quiet = RapidOCR(det_limit_type="max", text_score=MIN_LINE_CONFIDENCE, **threads)
    _without_spinning(quiet, cpu_threads())
    theirs = timed(lambda: direct(shipped))
    after = OcrTextAnalyzer(OcrTextOptions(spin=False))
    mine = _run(after, items)
    before = _run(OcrTextAnalyzer(OcrTextOptions(spin=True)), items)
    theirs_quiet = timed(lambda: direct(quiet))
    same = sum(
        sorted(str(line[1]).replace(" ", "") for line in d or [])
        == sorted(line["text"].replace(" ", "") for line in p["lines"])
        for d, p in zip(theirs[2], mine[2], strict=True)
    )
    out = {
        "frames": len(items),
        "rapidocr_cpu_s": round(theirs[0], 3),
        "ocr_after_cpu_s": round(mine[0], 3),
        "ocr_before_cpu_s": round(before[0], 3),
        "ratio_after": round(mine[0] / theirs[0], 3),
        "ratio_before": round(before[0] / theirs[0], 3),
        "rapidocr_without_spinning_cpu_s": round(theirs_quiet[0], 3),
        "ratio_after_to_rapidocr_without_spinning": round(mine[0] / theirs_quiet[0], 3),
        "wall_s": {
            "rapidocr": round(theirs[1], 3),
            "ocr_after": round(mine[1], 3),
            "ocr_before": round(before[1], 3),
            "rapidocr_without_spinning": round(theirs_quiet[1], 3),
        },
        "frames_read_the_same_as_rapidocr": same,
        "lines_recognised": after.recognised,
        "lines_reused": after.reused,
        "cpu_per_video_s_after": round(mine[0] / seconds, 4),
    }
    print("ocr", json.dumps(out), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    from reelscope.analyzers.hands import HandsAnalyzer, HandsOptions
    from reelscope.analyzers.pose import PoseAnalyzer, PoseOptions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument(
        "--only", nargs="*", choices=["ocr", "pose", "hands"], default=["ocr", "pose", "hands"]
    )
    parser.add_argument("--out", default="docs/results/gating-cpu.json")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="reelscope-gating-"))
    clip = make_clip(folder / "clip.mp4", args.duration, (720, 1280))
    pan = zidane_pan(folder / "zidane-pan.mp4")
    results: dict[str, Any] = {
        "command": "python -m reelscope.infra.bench.gating " + " ".join(argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "threads": os.environ.get("OMP_NUM_THREADS", "library default"),
        "media": {
            "clip": f"{args.duration:.0f} s 720x1280 30 fps (infra/bench/pipeline.make_clip): no people",
            "zidane_pan": "30 s 1120x630 30 fps pan (160 px and back every 10 s) over ultralytics' zidane.jpg: two people, one pointing hand",
        },
        "load_average_before": _loads(),
    }
    if "ocr" in args.only:
        results["ocr"] = ocr(clip, args.duration) | {"load_average_after": _loads()}
    sampling = PoseAnalyzer.sampling
    for media, path in (("zidane_pan", pan), ("clip", clip)):
        items = sampled_frames(path, sampling.fps or 3.0, sampling.max_side)
        if "pose" in args.only:
            results[f"pose_{media}"] = before_after(
                f"pose {media}",
                PoseAnalyzer(PoseOptions(track=False)),
                PoseAnalyzer(PoseOptions(track=True)),
                items,
                "persons",
            ) | {"load_average_after": _loads()}
        if "hands" in args.only:
            results[f"hands_{media}"] = before_after(
                f"hands {media}",
                HandsAnalyzer(HandsOptions(detect_every=1)),
                HandsAnalyzer(HandsOptions(detect_every=2)),
                items,
                "hands",
            ) | {"load_average_after": _loads()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
