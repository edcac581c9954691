"""`reelscope eval`: the quality scorecard. Runs the product on media with known truth and prints, per
aspect, the figure and its target (docs/quality.md keeps the table and the command that produced it).

Each video goes the product's way: the producer's events (decode, sampling, resampling) straight into the
analyzers, then the reconstruction, with no broker and no database (they move results, they do not change
them). Cuts are measured next to PySceneDetect's AdaptiveDetector on the same files when it is installed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reelscope.analyzers.registry import enabled_analyzers
from reelscope.infra.bench import eval_media
from reelscope.infra.core.settings import Settings
from reelscope.producers.events import VideoEventSource
from reelscope.schemas.events import AudioChunk, Frame, VideoFinished, VideoStarted
from reelscope.sinks import reconstruction
from reelscope.stream_processors.runtime import item_key, item_span, to_item

SHARED_MEDIA = Path(__file__).resolve().parents[3] / "shared" / "media"
SHARED_CUTS: dict[str, tuple[int, ...]] = {"counter.mp4": (), "fades.mp4": (), "delayed_start.mp4": ()}
"""Hard cuts in ../shared/media (its README): none in any of them."""


@dataclass(frozen=True)
class Score:
    """One row of the scorecard."""

    aspect: str
    figure: str
    target: str
    met: bool | None
    """None: pending (not measured here)."""
    detail: dict[str, Any]

    def row(self) -> str:
        state = {True: "met", False: "BELOW", None: "pending"}[self.met]
        return f"| {self.aspect} | {self.figure} | {self.target} | {state} |"


def document(path: Path, names: list[str], settings: Settings | None = None) -> dict[str, Any]:
    """The reconstruction of one file with the named frame and audio analyzers, built in this process."""
    settings = settings or Settings(analyzers=names)
    classes = enabled_analyzers(names, settings)
    analyzers = {n: c(settings.options_for(c), settings.analyzer_runtime()) for n, c in classes.items()}
    for a in analyzers.values():
        a.load()
    source = VideoEventSource(
        "eval", str(path), path.as_uri(), classes, settings.producer, settings.kafka.max_event_bytes
    )
    rows: list[dict[str, Any]] = []
    video: dict[str, Any] = {"video_id": "eval", "warnings": []}
    for event in source.events():
        if isinstance(event, VideoStarted):
            video.update(event.media.model_dump(), uri=event.uri)
        elif isinstance(event, VideoFinished):
            video.update(expected=json.dumps(event.expected), warnings=list(event.warnings))
        elif isinstance(event, Frame | AudioChunk):
            for name in event.targets:
                (payload,) = analyzers[name].analyze([to_item(event)])  # type: ignore[list-item]
                start, end = item_span(event)
                rows.append(
                    {
                        "analyzer": name,
                        "item_key": item_key(event),
                        "model": analyzers[name].model_name,
                        "provenance": analyzers[name].provenance,
                        "start_s": start,
                        "end_s": end,
                        "payload": json.dumps(payload),
                        "error": "",
                    }
                )
    return reconstruction.build(video, rows, classes, settings.aggregator.segment_s, None, False)


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


ASPECTS: dict[str, Callable[[Path], list[Score]]] = {"cuts": score_cuts, "shots": score_shots}
PENDING = [
    Score("objects, pose, hands, faces on real photos", "-", "issue 14's packaged models", None, {}),
    Score("language identification per window", "-", "not on main yet", None, {}),
]
"""Aspects not measured yet, and what they wait for."""


def scorecard(aspects: list[str], folder: Path) -> list[Score]:
    """The scores of the named aspects (every aspect, and the pending rows, when empty)."""
    from reelscope.infra.bench.eval_audio import AUDIO_ASPECTS

    every = {**ASPECTS, **AUDIO_ASPECTS}
    scores: list[Score] = []
    for name in aspects or list(every):
        scores += every[name](folder)
    return scores + ([] if aspects else PENDING)


def table(scores: list[Score]) -> str:
    lines = ["| aspect | figure | target | state |", "| --- | --- | --- | --- |"]
    return "\n".join(lines + [s.row() for s in scores])


def run_eval(args: argparse.Namespace) -> int:
    """Print the scorecard (and write its details as JSON); exit 1 when an aspect is below its target."""
    with tempfile.TemporaryDirectory() as tmp:
        scores = scorecard(args.aspect or [], Path(tmp))
    print(table(scores))
    if args.out:
        details = {s.aspect: {"figure": s.figure, "met": s.met, "detail": s.detail} for s in scores}
        Path(args.out).write_text(json.dumps(details, indent=1, default=str))
    return 0 if all(s.met is not False for s in scores) else 1
