"""Pose's tracking before and after (issue 18, sixth step), in one process on the same sampled frames, runs
alternating, so a shared machine's load weighs on all alike: `before` follows each video's people with a
MediaPipe graph in video mode per pass and looks for nobody-yet on every frame (`REELSCOPE_POSE__FOLLOW=graph`,
`__LOOK_EVERY=1`: the code before), `follow` with the landmark model alone on the previous frame's region,
`after` also looks for people not yet found on every 2nd frame only (the defaults). The static-image graph
(the detector on every frame) is run once on the same frames as the reference they are measured against.

Clips: `pan` (gating.zidane_pan: two people, a slow pan), `bench` (pipeline.make_clip: no people), at the
analyzer's own sampling (3 fps, 480 px). Reports CPU seconds of the `analyze` calls per round, ms per frame,
detector and follower passes, equal counts and cues, and how far the COCO keypoints move (frame units and
pixels of the 480 px frame; joints seen in both). Run with
`flock /tmp/measure.lock env OMP_NUM_THREADS=2 python -m reelscope.infra.bench.pose_ab --out OUT.json`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from reelscope.analyzers.base import FrameItem
from reelscope.analyzers.pose import VISIBLE, PoseAnalyzer, PoseOptions
from reelscope.infra.bench.ab import alternating, emit, warm_up
from reelscope.infra.bench.gating import agreement, zidane_pan
from reelscope.infra.bench.peers import sampled_frames
from reelscope.infra.bench.pipeline import make_clip

CUES = ("hands_raised", "arms_crossed", "pointing", "facing")
FLAGS = ("count", "hands_raised", "arms_crossed", "pointing", "facing_camera")
"""A frame payload's readings."""


def clips(names: list[str], folder: Path, seconds: float) -> dict[str, list[FrameItem]]:
    """Each clip's frames at pose's sampling, as one video (first and final marked)."""
    sampling = PoseAnalyzer.sampling
    out = {}
    for name in names:
        path = (
            zidane_pan(folder / "pan.mp4", seconds)
            if name == "pan"
            else make_clip(folder / "clip.mp4", seconds, (720, 1280))
        )
        items = sampled_frames(path, sampling.fps or 3.0, sampling.max_side)
        out[name] = [
            FrameItem(name, i, it.pts_s, it.image, first=i == 0, final=i == len(items) - 1)
            for i, it in enumerate(items)
        ]
    return out


def keypoint_gap(x: np.ndarray, y: np.ndarray) -> float:
    """Mean distance (frame units) of the keypoints (n x 3: x, y, confidence, normalised) both see inside
    the frame (joints beyond its edge are the model's guesses); NaN when none."""
    both = np.concatenate([x, y], axis=1)
    seen = (x[:, 2] >= VISIBLE) & (y[:, 2] >= VISIBLE) & (both[:, [0, 1, 3, 4]] >= 0).all(axis=1)
    seen &= (both[:, [0, 1, 3, 4]] <= 1).all(axis=1)
    return float(np.abs(x[seen, :2] - y[seen, :2]).mean()) if seen.any() else float("nan")


def keypoint_moves(mine: list[dict[str, Any]], truth: list[dict[str, Any]]) -> dict[str, Any]:
    """Per person of `truth`, the nearest person of `mine` (mean keypoint distance) and the mean distance of
    the COCO keypoints both see inside the frame, in frame units; and how many such persons read the same cues."""
    gaps, same_cues, persons = [], 0, 0
    same_cue = dict.fromkeys(CUES, 0)
    for a, b in zip(mine, truth, strict=True):
        for person in b["persons"]:
            persons += 1
            if not a["persons"]:
                continue
            y = np.array(person["keypoints"])
            match = min(
                a["persons"], key=lambda p: float(np.abs(np.array(p["keypoints"])[:, :2] - y[:, :2]).mean())
            )
            gap = keypoint_gap(np.array(match["keypoints"]), y)
            if gap == gap:  # not NaN: some joint seen in both
                gaps.append(gap)
            same_cues += all(match[c] == person[c] for c in CUES)
            for c in CUES:
                same_cue[c] += match[c] == person[c]
    if not gaps:
        return {"persons": persons}
    g = np.array(gaps)
    side = PoseAnalyzer.sampling.max_side or 480
    return {
        "persons": persons,
        "persons_same_cues": same_cues,
        "persons_same_cue": same_cue,
        "keypoint_gap_mean": round(float(g.mean()), 4),
        "keypoint_gap_p95": round(float(np.percentile(g, 95)), 4),
        "keypoint_gap_max": round(float(g.max()), 4),
        "keypoint_gap_mean_px_at_480": round(float(g.mean()) * side, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="*", choices=["pan", "bench"], default=["pan", "bench"])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    sets = clips(args.clips, Path(tempfile.mkdtemp(prefix="reelscope-pose-ab-")), args.seconds)
    analyzers = {
        "before": PoseAnalyzer(PoseOptions(follow="graph", look_every=1)),
        "follow": PoseAnalyzer(PoseOptions(follow="landmarks", look_every=1)),
        "after": PoseAnalyzer(PoseOptions()),
    }
    loads = warm_up(list(analyzers.values()), next(iter(sets.values()))[0])

    def passes(analyzer: PoseAnalyzer) -> dict[str, int]:
        videos = analyzer._videos
        assert videos is not None
        return {"detected": videos.detected, "followed": videos.followed, "skipped": videos.skipped}

    cpu, out, counts = alternating(analyzers, sets, args.rounds, passes)
    static = PoseAnalyzer(PoseOptions(track=False))
    static.load()
    results: dict[str, Any] = {
        "command": "python -m reelscope.infra.bench.pose_ab "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "threads": os.environ.get("OMP_NUM_THREADS", "library default"),
        "load_average_before": loads,
    }
    for name, items in sets.items():
        reference = static.analyze(items)
        before, after = out["before", name], out["after", name]
        n = len(items)
        results[name] = {
            "frames": n,
            "cpu_s": {k: cpu[k][name] for k in analyzers},
            "ms_per_frame_min": {k: round(1000 * min(cpu[k][name]) / n, 1) for k in analyzers},
            "ratio_of_min": {k: round(min(cpu[k][name]) / min(cpu["before"][name]), 3) for k in analyzers},
            "ratio_of_sum": {k: round(sum(cpu[k][name]) / sum(cpu["before"][name]), 3) for k in analyzers},
            "passes": {k: counts[k, name] for k in analyzers},
            "frames_same_count_as_before": {
                k: sum(a["count"] == b["count"] for a, b in zip(out[k, name], before, strict=True))
                for k in analyzers
            },
            "frames_same_readings_as_before": {
                k: sum(all(a[f] == b[f] for f in FLAGS) for a, b in zip(out[k, name], before, strict=True))
                for k in analyzers
            },
            "after_vs_before": keypoint_moves(after, before),
            **{
                f"{k}_vs_static": keypoint_moves(out[k, name], reference)
                | agreement(out[k, name], reference, "persons")
                for k in analyzers
            },
        }
    return emit(results, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
