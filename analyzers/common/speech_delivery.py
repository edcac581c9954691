"""Speech delivery from a timed transcript: speaking rate, pauses, filler words, hot-word mentions.

Plain functions over words rather than an analyzer: delivery needs the words that `transcription`
produces, and an analyzer's `video_summary` only sees its own results, so `transcription` calls
`delivery_stats` from its own summary. A separate per-chunk "voiced energy" analyzer would only repeat
`loudness`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

FILLERS = frozenset({"um", "umm", "uh", "uhh", "uhm", "er", "erm", "ah", "eh", "hmm", "hm", "mm", "mhm"})
"""Single-token hesitations only: "like", "so", "you know" are too often real words to count blindly."""

MIN_PAUSE_S = 0.5
"""Gaps shorter than this are articulation, not pauses (Whisper word timings are about ±0.1 s)."""

_NON_WORD = re.compile(r"[^\w']+")


def normalize_word(word: str) -> str:
    """Lower case without punctuation, so "Um," and "um" count as one word."""
    return _NON_WORD.sub("", word.lower()).strip("'")


def _rate_curve(
    words: Sequence[dict[str, Any]], first: float, last: float, window_s: float, hop_s: float
) -> list[dict[str, float]]:
    """Words per minute in sliding windows, each divided by the part of it that lies within the speech."""
    mids = [(w["start_s"] + w["end_s"]) / 2 for w in words]
    curve: list[dict[str, float]] = []
    t = (first // hop_s) * hop_s
    while t < last:
        covered = min(t + window_s, last) - max(t, first)
        if covered >= 1.0:
            count = sum(1 for m in mids if t <= m < t + window_s)
            curve.append({"start_s": round(t, 2), "wpm": round(count * 60.0 / covered, 1)})
        t += hop_s
    return curve


def _pauses(words: Sequence[dict[str, Any]], span: float, min_pause_s: float) -> dict[str, Any]:
    """Gaps when nobody speaks: words are taken in time order, speakers merged."""
    gaps: list[float] = []
    spoken_until = words[0]["end_s"]
    for w in words[1:]:
        gap = w["start_s"] - spoken_until
        if gap >= min_pause_s:
            gaps.append(gap)
        spoken_until = max(spoken_until, w["end_s"])
    return {
        "count": len(gaps),
        "longest_s": round(max(gaps), 2) if gaps else 0.0,
        "share": round(sum(gaps) / span, 3) if span > 0 else 0.0,
    }


def _hot_word_times(words: Sequence[dict[str, Any]], hotwords: Iterable[str]) -> dict[str, list[float]]:
    """Start times of each hot word, also when the transcript splits it ("Comfy UI" for "ComfyUI")."""
    tokens = [normalize_word(w["word"]) for w in words]
    found: dict[str, list[float]] = {}
    for hot in hotwords:
        key = normalize_word(hot.replace(" ", ""))
        times: list[float] = []
        for i in range(len(tokens)):
            joined = ""
            for j in range(i, min(len(tokens), i + 4)):
                joined += tokens[j]
                if joined == key:
                    times.append(round(words[i]["start_s"], 2))
                    break
                if len(joined) >= len(key) or not key.startswith(joined):
                    break
        found[hot] = times
    return found


def delivery_stats(
    words: Sequence[dict[str, Any]],
    hotwords: Iterable[str] = (),
    min_pause_s: float = MIN_PAUSE_S,
    curve_window_s: float = 10.0,
    curve_hop_s: float = 5.0,
) -> dict[str, Any]:
    """Delivery of a transcript given as [{word, start_s, end_s}] on the video clock.

    The rate is words per minute over the span from the first word's start to the last word's end
    (pauses included, as a listener hears it).
    """
    ordered = sorted(words, key=lambda w: (w["start_s"], w["end_s"]))
    fillers: dict[str, int] = {}
    for w in ordered:
        token = normalize_word(w["word"])
        if token in FILLERS:
            fillers[token] = fillers.get(token, 0) + 1
    filler_stats = {"count": sum(fillers.values()), "by_word": dict(sorted(fillers.items()))}
    hot = _hot_word_times(ordered, hotwords)
    if not ordered:
        return {
            "wpm_overall": 0.0,
            "wpm_curve": [],
            "pauses": {"count": 0, "longest_s": 0.0, "share": 0.0},
            "fillers": filler_stats,
            "hot_words": hot,
        }
    first = ordered[0]["start_s"]
    last = max(w["end_s"] for w in ordered)
    span = last - first
    return {
        "wpm_overall": round(len(ordered) * 60.0 / span, 1) if span > 0 else 0.0,
        "wpm_curve": _rate_curve(ordered, first, last, curve_window_s, curve_hop_s),
        "pauses": _pauses(ordered, span, min_pause_s),
        "fillers": filler_stats,
        "hot_words": hot,
    }
