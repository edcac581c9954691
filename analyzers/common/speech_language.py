"""Spoken language per stretch of a transcription window, so a video that switches language reports each
language with its times, and an English-only model's text over other languages is flagged, not kept.

Whisper detects one language per call from the start of its input. Here the window's segments are grouped
into consecutive stretches of at least `MIN_SPAN_S` (Whisper base names the language of 1-2 s of speech
poorly: 0.2-0.7 on Spanish prompts, sometimes `en`; of 3 s and more it named Spanish right every time on
the Asterisk prompts), and each stretch is detected on its own audio. A stretch takes the detected
language when Whisper is at least `MIN_PROBABILITY` sure of it, or when it continues the previous stretch's
language; otherwise it keeps the previous (the first: the window's) language. A window of one stretch
costs nothing extra: the window's own detection is its stretch's; a window whose first and last stretches
are in its language costs two detections, not one per stretch (`segment_languages`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

MIN_SPAN_S = 3.0
MIN_PROBABILITY = 0.5

Detect = Callable[[np.ndarray], tuple[str, float]]
"""Language and probability of a 16 kHz waveform."""


def stretches(spans: Sequence[tuple[float, float]], min_s: float = MIN_SPAN_S) -> list[list[int]]:
    """Consecutive segment indices grouped until a group spans `min_s`; a short tail joins the group
    before it."""
    groups: list[list[int]] = []
    for i in range(len(spans)):
        if groups and spans[groups[-1][-1]][1] - spans[groups[-1][0]][0] < min_s:
            groups[-1].append(i)
        else:
            groups.append([i])
    if len(groups) > 1 and spans[groups[-1][-1]][1] - spans[groups[-1][0]][0] < min_s:
        groups[-2].extend(groups.pop())
    return groups


def segment_languages(
    audio: np.ndarray,
    rate: int,
    spans: Sequence[tuple[float, float]],
    window: tuple[str, float | None],
    detect: Detect,
) -> list[tuple[str, float | None]]:
    """(language, probability) per segment; `spans` are segment times in seconds from the audio's start,
    `window` the language detected for the whole window.

    Each detection is a Whisper encoder pass (a quarter of one when screened: transcription.py), so the first and
    last stretches are detected first: when both are in the window's language the window is taken to be in
    it throughout (middle stretches take the window's detection), and only otherwise is every stretch
    detected. A switch away and back inside one window (language A, then B, then A again within ~20 s)
    is missed; a switch at any point of a window that does not come back is found as before."""
    groups = stretches(spans)
    if len(groups) <= 1:
        return [window] * len(spans)

    def heard(group: list[int]) -> tuple[str, float]:
        start, end = spans[group[0]][0], spans[group[-1]][1]
        return detect(audio[int(start * rate) : int(np.ceil(end * rate))])

    ends = {0: heard(groups[0]), len(groups) - 1: heard(groups[-1])}
    same = all(language == window[0] for language, _ in ends.values())
    out: list[tuple[str, float | None]] = [window] * len(spans)
    current = window
    for k, group in enumerate(groups):
        if same and k not in ends:
            current = window
        else:
            language, probability = ends[k] if k in ends else heard(group)
            if probability >= MIN_PROBABILITY or language == current[0]:
                current = (language, round(float(probability), 3))
        for i in group:
            out[i] = current
    return out


def runs(languages: Sequence[str]) -> list[tuple[int, int, str]]:
    """(first, last, language) of each run of equal consecutive languages."""
    out: list[tuple[int, int, str]] = []
    for i, language in enumerate(languages):
        if out and out[-1][2] == language:
            out[-1] = (out[-1][0], i, language)
        else:
            out.append((i, i, language))
    return out


def other_tail(
    audio: np.ndarray, rate: int, spans: Sequence[tuple[float, float]], window: str, detect: Detect
) -> tuple[int, str, float] | None:
    """(first sample, language, probability) of the audio after a window's last segment (`spans`: segment
    times) when it is at least `MIN_SPAN_S` long and surely in another language than the window's: Whisper,
    decoding a window in the language of its start, stops where speech in another language begins, so that
    speech has no segment to be detected by. None for a window without segments (no speech)."""
    lo = int(spans[-1][1] * rate) if spans else audio.size
    if audio.size - lo < MIN_SPAN_S * rate:
        return None
    language, probability = detect(audio[lo:])
    if language == window or probability < MIN_PROBABILITY:
        return None
    return lo, language, round(float(probability), 3)
