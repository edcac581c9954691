"""Cut and shot aspects of `reelscope eval`: the generated layouts users post and ../shared/media, with
PySceneDetect's AdaptiveDetector measured on the same files (when installed) as the reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reelscope.infra.bench import eval_media
from reelscope.infra.bench.scorecard import SHARED_MEDIA, Score, document

SHARED_CUTS: dict[str, tuple[int, ...]] = {"counter.mp4": (), "fades.mp4": (), "delayed_start.mp4": ()}
"""Hard cuts in ../shared/media (its README): none in any of them."""


def _matched(found: list[int], truth: tuple[int, ...], slack: int = 1) -> tuple[int, int]:
    """(truth cuts found within `slack` frames, found cuts that match none)."""
    hits = sum(any(abs(f - t) <= slack for f in found) for t in truth)
    false = sum(all(abs(f - t) > slack for t in truth) for f in found)
    return hits, false


def scenedetect_cuts(path: Path) -> list[int] | None:
    """PySceneDetect's AdaptiveDetector cut frames with its defaults; None when it is not installed."""
    try:
        from scenedetect import AdaptiveDetector, detect
    except ImportError:
        return None
    return [start.get_frames() for start, _ in detect(str(path), AdaptiveDetector())[1:]]


def _cut_frames(doc: dict[str, Any]) -> list[int]:
    fps = float(doc["media"].get("fps") or eval_media.FPS)
    start = float(doc.get("start_s") or 0.0)
    return [round((c["time_s"] - start) * fps) for c in doc["cuts"]]


def cut_cases(folder: Path) -> list[tuple[str, Path, tuple[int, ...]]]:
    """(name, file, truth cut frames): the generated layouts, then ../shared/media when present."""
    cases = [(c.name, c.path(folder), c.cuts) for c in eval_media.layout_clips()]
    if SHARED_MEDIA.is_dir():
        cases += [(name, SHARED_MEDIA / name, cuts) for name, cuts in SHARED_CUTS.items()]
    return cases


def score_cuts(folder: Path) -> list[Score]:
    """Every cut within ±1 frame and no false cut, reelscope and PySceneDetect side by side."""
    per_clip: dict[str, Any] = {}
    totals = {"truth": 0, "ours": 0, "ours_false": 0, "psd": 0, "psd_false": 0, "psd_missed_by_us": 0}
    psd_ran = True
    for name, path, truth in cut_cases(folder):
        ours = _cut_frames(document(path, ["scene"]))
        theirs = scenedetect_cuts(path)
        hits, false = _matched(ours, truth)
        totals["truth"] += len(truth)
        totals["ours"] += hits
        totals["ours_false"] += false
        clip = {"truth": list(truth), "reelscope": ours, "pyscenedetect": theirs}
        if theirs is None:
            psd_ran = False
        else:
            p_hits, p_false = _matched(theirs, truth)
            totals["psd"] += p_hits
            totals["psd_false"] += p_false
            real = [t for t in theirs if any(abs(t - c) <= 1 for c in truth)]
            totals["psd_missed_by_us"] += sum(all(abs(t - o) > 1 for o in ours) for t in real)
        per_clip[name] = clip
    n = totals["truth"]
    ours = Score(
        "cuts: reelscope",
        f"{totals['ours']}/{n} within ±1 frame, {totals['ours_false']} false",
        f"{n}/{n}, 0 false",
        totals["ours"] == n and totals["ours_false"] == 0,
        per_clip,
    )
    if not psd_ran:
        return [ours, Score("cuts: PySceneDetect AdaptiveDetector", "not installed", "-", None, {})]
    theirs = Score(
        "cuts: PySceneDetect AdaptiveDetector (reference)",
        f"{totals['psd']}/{n} within ±1 frame, {totals['psd_false']} false",
        "-",
        None,
        {},
    )
    covers = Score(
        "cuts: PySceneDetect's true cuts that reelscope misses",
        str(totals["psd_missed_by_us"]),
        "0",
        totals["psd_missed_by_us"] == 0,
        {},
    )
    return [ours, theirs, covers]


def score_shots(folder: Path) -> list[Score]:
    """Shot counts, and each transition into another shot holding a shot boundary."""
    good, total, detail = 0, 0, {}
    for clip in eval_media.layout_clips():
        doc = document(clip.path(folder), ["scene"])
        starts = [s["start_s"] for s in doc["shots"][1:]]
        joined = all(
            any(a / eval_media.FPS <= t <= (b + 1) / eval_media.FPS for t in starts) for a, b in clip.joins
        )
        ok = len(doc["shots"]) == clip.shot_count and joined
        good += ok
        total += 1
        detail[clip.name] = {"shots": len(doc["shots"]), "expected": clip.shot_count, "starts": starts}
    return [
        Score(
            "shots: transitions into another shot delimit shots, same-shot fades do not",
            f"{good}/{total} clips right",
            f"{total}/{total}",
            good == total,
            detail,
        )
    ]
