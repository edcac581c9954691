"""Who speaks on screen: per speech turn, the visible face whose mouth moves during it, or "off-screen".

A pure join (no models, no Kafka) of two series the analyzers already publish: speech turns (diarization
turns, transcript segments or sound-event speech spans) and, per face track, the face mesh's mouth opening
(inner-lip gap over mouth width) at each sampled frame.

The faces analyzer samples ~2 frames a second, below the 4-6 Hz at which syllables open and close a mouth,
so the lips' movement cannot be followed frame to frame. What the sparse samples do show is how much the
opening *varies*: a speaking mouth is caught at random phases (open in some samples, closed in others), a
silent one at about the same opening every time, whether closed or held open. So a track's evidence in a
turn is the spread (standard deviation) of its openings inside the turn less its spread in silence (its
samples outside every turn), the "vs. outside" baseline that discounts a face that chews or jitters.
Samples next to a turn are left out of that baseline (GUARD_S): there the mouth is still opening or
closing around the voice, and on real recordings those few samples made a talking face read as one that
moves as much in silence (tests/test_speaking_real.py).
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

MOVING = 0.04
"""Spread of the mouth opening (over silence's) from which a mouth moves. Measured with the faces
analyzer at 2 fps: a still photo's mesh (zidane.jpg shifted a pixel or two per frame, H.264) spreads
0.001-0.002; a real man silent before and after speaking, 0.001; the same man talking to the camera
(PsychoPy's two clips, tests/test_speaking_real.py), 0.064-0.121 per speech turn. 0.04 sits between."""
GUARD_S = 0.5
"""Mouth samples closer than this to a speech turn are no silence: the lips part before the voice starts
and close after it ends, and turn edges are no more exact than their source (the speakers analyzer's 1 s
chunks). One sampling interval at 2 fps. Measured: a mouth still open 5 ms after the turn's end
(0.30, against 0.003 in silence), a smile 0.47 s before the first word (0.17)."""
NO_FACE_CONFIDENCE = 0.9
"""An off-screen voice when no face is seen at all: as sure as the face detector's misses allow."""
MIN_SAMPLES = 2
"""A spread needs two openings: a track seen fewer times in a turn gives no evidence either way."""
FULL_SAMPLES = 6
"""Openings in a turn for full confidence (3 s at the faces analyzer's 2 fps)."""

Where = Literal["on_screen", "off_screen", "unknown"]


@dataclass(frozen=True)
class Turn:
    start_s: float
    end_s: float
    speaker: str | None = None
    """The diarization label (S0, S1, ...) or a channel; None when the source has none."""


@dataclass(frozen=True)
class Mouth:
    """One face track's mouth opening at one sampled frame."""

    t: float
    track_id: int
    opening: float


def _spread(values: Sequence[float]) -> float | None:
    """Population standard deviation (plain floats: numpy's per-call cost dominates on a few values)."""
    if len(values) < MIN_SAMPLES:
        return None
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


class _ByTime:
    """Items in time order, for the ones inside a turn in log time (an hour of 2 fps faces by a thousand
    turns stays fast)."""

    def __init__(self, items: Sequence[tuple[float, Any]]) -> None:
        ordered = sorted(items, key=lambda x: x[0])
        self.times = [t for t, _ in ordered]
        self.items = [x for _, x in ordered]

    def during(self, turn: Turn) -> list[Any]:
        lo = bisect.bisect_left(self.times, turn.start_s)
        return self.items[lo : bisect.bisect_left(self.times, turn.end_s)]


def assign(
    turns: Sequence[Turn], mouths: Sequence[Mouth], visible: Sequence[tuple[float, int]]
) -> list[dict[str, Any]]:
    """Per turn: where its speaker is (`on_screen` with the face track, `off_screen`, or `unknown` when no
    visible face's mouth was measured often enough), a confidence 0..1, and the evidence behind it.

    visible: (t, track_id) of every face seen, measured mouth or not (a face without a mesh is visible but
    says nothing about its mouth)."""
    by_time = _ByTime([(m.t, m) for m in mouths])
    seen = _ByTime(visible)
    spoken = {id(m) for turn in turns for m in by_time.during(turn)}
    edges = sorted(t for turn in turns for t in (turn.start_s, turn.end_s))
    silent: dict[int, list[float]] = defaultdict(list)
    for m in mouths:
        if id(m) not in spoken and _away(m.t, edges):
            silent[m.track_id].append(m.opening)
    baseline = {track: _spread(values) for track, values in silent.items()}
    return [_one(turn, by_time.during(turn), seen.during(turn), baseline) for turn in turns]


def _away(t: float, edges: Sequence[float]) -> bool:
    """Whether t lies GUARD_S or more from every turn edge (edges sorted: the two around t are nearest)."""
    i = bisect.bisect_left(edges, t)
    return all(abs(t - edges[j]) >= GUARD_S for j in (i - 1, i) if 0 <= j < len(edges))


def _one(
    turn: Turn, mouths: Sequence[Mouth], visible: Sequence[int], baseline: dict[int, float | None]
) -> dict[str, Any]:
    """One turn from the mouths measured and the face tracks seen during it."""
    seen = sorted(set(visible))
    inside: dict[int, list[float]] = defaultdict(list)
    for m in mouths:
        inside[m.track_id].append(m.opening)
    scores = []
    for track, values in inside.items():
        spread = _spread(values)
        if spread is not None:
            scores.append((spread - (baseline.get(track) or 0.0), track, spread, len(values)))
    scores.sort(reverse=True)
    out: dict[str, Any] = {
        "start_s": round(turn.start_s, 3),
        "end_s": round(turn.end_s, 3),
        "speaker": turn.speaker,
        "track_id": None,
        "visible_tracks": seen,
        "measured_tracks": len(scores),
    }
    if not seen:  # nobody in the picture: the voice comes from off-screen, as sure as the face detector
        return {**out, "where": "off_screen", "confidence": NO_FACE_CONFIDENCE, "reason": "no face visible"}
    if not scores:
        reason = "mouths not measured (no face mesh)" if not inside else "too few frames in the turn"
        return {**out, "where": "unknown", "confidence": 0.0, "reason": reason}
    score, track, spread, n = scores[0]
    sufficiency = min(1.0, n / FULL_SAMPLES)
    out["mouth_spread"] = round(spread, 4)
    out["mouth_motion"] = round(score, 4)
    if score < MOVING:
        # the faces are there but their mouths hold still: how still, and how often they were seen
        confidence = sufficiency * (1.0 - max(score, 0.0) / MOVING)
        unmeasured = len(seen) > len(scores)  # a visible face without a mouth measure might be the one
        confidence *= 0.5 if unmeasured else 1.0
        return {**out, "where": "off_screen", "confidence": round(confidence, 3), "reason": "no mouth moves"}
    second = scores[1][0] if len(scores) > 1 else 0.0
    separation = 1.0 - max(second, 0.0) / score
    confidence = sufficiency * min(1.0, score / (2 * MOVING)) * separation
    return {
        **out,
        "where": "on_screen",
        "track_id": track,
        "confidence": round(confidence, 3),
        "reason": "mouth moves during the turn",
    }


def by_speaker(turns: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per diarization label, the face track (or off_screen) holding most of its confident turn seconds."""
    votes: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for t in turns:
        if t["speaker"] is None or t["where"] == "unknown":
            continue
        key = f"track {t['track_id']}" if t["where"] == "on_screen" else "off_screen"
        votes[t["speaker"]][key] += (t["end_s"] - t["start_s"]) * t["confidence"]
    out = {}
    for speaker, weights in votes.items():
        best = max(weights, key=lambda k: weights[k])
        total = sum(weights.values())
        out[speaker] = {
            "where": "off_screen" if best == "off_screen" else "on_screen",
            "track_id": None if best == "off_screen" else int(best.split()[1]),
            "share": round(weights[best] / total, 3) if total else 0.0,
        }
    return out


def summary(turns: Sequence[Turn], mouths: Sequence[Mouth], visible: Sequence[tuple[float, int]]) -> dict:
    """The whole-video answer: every turn placed, seconds on and off screen, each speaker's face."""
    placed = assign(turns, mouths, visible)
    seconds: dict[str, float] = defaultdict(float)
    for t in placed:
        seconds[t["where"]] += t["end_s"] - t["start_s"]
    return {
        "turns": placed,
        "on_screen_s": round(seconds["on_screen"], 3),
        "off_screen_s": round(seconds["off_screen"], 3),
        "unknown_s": round(seconds["unknown"], 3),
        "speakers": by_speaker(placed),
    }


def on_screen_during(turns: Sequence[dict[str, Any]], start_s: float, end_s: float) -> bool | None:
    """Whether the speech in [start_s, end_s) comes from a visible face (True), from off-screen (False),
    or cannot be told (None): the placement holding most confidence-weighted overlap wins."""
    weight = {"on_screen": 0.0, "off_screen": 0.0}
    for t in turns:
        overlap = min(end_s, t["end_s"]) - max(start_s, t["start_s"])
        if overlap > 0 and t["where"] in weight:
            weight[t["where"]] += overlap * t["confidence"]
    if not any(weight.values()):
        return None
    return weight["on_screen"] > weight["off_screen"]
