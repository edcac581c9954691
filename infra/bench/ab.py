"""What the A/B harnesses share (ocr_ab, pose_ab, objects_ab): analyzers warmed up the same way, runs
alternating in rounds so a shared machine's load weighs on every side alike, and the results written out."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from reelscope.analyzers.base import FrameAnalyzer, FrameItem

K = TypeVar("K")
Counters = Callable[[Any], dict[str, int]]
"""An analyzer's work counters (detections run, frames carried, ...), read before and after a run."""


def warm_up(analyzers: Sequence[FrameAnalyzer], item: FrameItem) -> list[float]:
    """Load each analyzer and run it once on `item` as a video of its own (first and final); the load
    average after, which a harness reports as the load its runs started under."""
    for analyzer in analyzers:
        analyzer.load()
        analyzer.analyze([FrameItem("warm-up", 0, 0.0, item.image, first=True, final=True)])
    return [round(x, 2) for x in os.getloadavg()]


def alternating(
    analyzers: Mapping[K, FrameAnalyzer], sets: Mapping[str, list[FrameItem]], rounds: int, counters: Counters
) -> tuple[
    dict[K, dict[str, list[float]]], dict[tuple[K, str], list[Any]], dict[tuple[K, str], dict[str, int]]
]:
    """Each analyzer on each frame set, `rounds` times, each analyzer going first in turn: the CPU seconds
    of every `analyze` call per analyzer and set, the last run's payloads, and its counters' increase."""
    cpu: dict[K, dict[str, list[float]]] = {k: {n: [] for n in sets} for k in analyzers}
    out: dict[tuple[K, str], list[Any]] = {}
    counts: dict[tuple[K, str], dict[str, int]] = {}
    for r in range(rounds):
        order = list(analyzers.items())
        order = order[r % len(order) :] + order[: r % len(order)]
        for key, analyzer in order:
            for name, items in sets.items():
                before = counters(analyzer)
                start = time.process_time()
                out[key, name] = analyzer.analyze(items)
                cpu[key][name].append(round(time.process_time() - start, 3))
                counts[key, name] = {c: n - before[c] for c, n in counters(analyzer).items()}
    return cpu, out, counts


def emit(results: dict[str, Any], out: Path | None) -> int:
    """An A/B run's results with the load average after it: printed, and written to `out` when given."""
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(results, indent=1))
    if out:
        out.write_text(json.dumps(results, indent=1) + "\n")
    return 0
