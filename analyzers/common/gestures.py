"""Time-series helpers shared by the gesture analyzers (pose, hands): runs of a held cue, and waves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

SHOT_CUE_SHARE = 0.25
"""A cue or gesture is told of a shot (its captions) when seen in at least this share of its sampled frames,
so one odd frame does not become a claim."""


def shot_cues(fields: Sequence[dict[str, Any]], cues: Sequence[str]) -> list[str]:
    """The cues whose `<cue>_share`, averaged over a shot's segments, reaches SHOT_CUE_SHARE."""
    if not fields:
        return []
    return [
        c for c in cues if sum(float(f.get(f"{c}_share", 0)) for f in fields) / len(fields) >= SHOT_CUE_SHARE
    ]


def spans(
    times: Sequence[float], values: Sequence[Any], frame_s: float, min_frames: int
) -> list[tuple[float, float, Any]]:
    """(start, end, value) of the runs of equal, truthy values lasting `min_frames` or more; a run ends one
    frame after its last sample."""
    out = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        if values[i] and j - i + 1 >= min_frames:
            out.append((times[i], times[j] + frame_s, values[i]))
        i = j + 1
    return out


def oscillations(
    offsets: Sequence[float | None], step: float, reversals: int, amplitude: float
) -> list[tuple[int, int]]:
    """(first, last) indices of the unbroken runs of offsets (None breaks a run) that reverse direction
    `reversals` times or more, counting only moves of at least `step`, over a range of `amplitude` or more:
    a hand swinging sideways and back."""
    out = []
    i = 0
    while i < len(offsets):
        if offsets[i] is None:
            i += 1
            continue
        j = i
        while j + 1 < len(offsets) and offsets[j + 1] is not None:
            j += 1
        run = np.array(offsets[i : j + 1], dtype=np.float64)
        moves = np.diff(run)
        signs = np.sign(moves[np.abs(moves) >= step])
        turned = int((signs[1:] != signs[:-1]).sum()) if signs.size else 0
        if turned >= reversals and float(run.max() - run.min()) >= amplitude:
            out.append((i, j))
        i = j + 1
    return out
