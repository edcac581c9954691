"""Audio features: loudness (ITU-R BS.1770-4), peaks and clipping, tempo and beats, musical key, onset
density, and a per-second label speech / music / speech_over_music / silence / noise.

Stateless by design: every 1 s chunk is reduced on its own to a small payload (about 2.2 KB), and
everything that needs more than one chunk is rebuilt by the aggregator from those payloads, so a
processor killed mid-video loses nothing:

- Loudness: the K-weighted mean square of each 100 ms sub-block, summed over the source's channels with
  BS.1770-4's weights at the source's sample rate (the producer's `source` stream), true peak from 4x
  oversampling of every channel; the other features read a 16 kHz mono mix made here. BS.1770 gating blocks are 400 ms with
  75 % overlap, i.e. exactly the mean of 4 consecutive 100 ms sub-blocks, and the 3 s short-term window
  is 30 of them, so `video_summary` rebuilds momentary, short-term, integrated loudness and loudness
  range on the video's 100 ms grid without approximation beyond the filter state (below).
- K-weighting filter state does not carry across chunks. Each chunk is filtered after a 100 ms warm-up
  on its own mirror image, so the filters start near the state a similar past would have left; the
  RLB high-pass forgets within ~5 ms, so the error sits in each chunk's first milliseconds. Measured
  against filtering the whole signal at once: under 0.01 LU on speech and music, 0.03 LU on a pure
  40 Hz tone (a cold start per chunk: up to 0.03 LU either way).
- Onsets: a spectral-flux envelope at 100 Hz (rise of 15 log band levels, 20 ms frames, 10 ms hop),
  from the frames that lie wholly inside the chunk. The frame straddling a seam is rebuilt by the
  aggregator from the 10 ms of int16 samples the payload carries at each edge (base64), so the
  envelope equals an unchunked one; tempo (autocorrelation with a log-normal prior around 120 BPM,
  refined on the period's multiples) and beats (Ellis 2007 dynamic programming) run on the whole
  concatenated envelope.
- Key: a 12-bin chroma from interpolated spectral peaks per chunk, summed over the music chunks and
  matched against the Krumhansl-Kessler profiles.
- Label: a transparent rule per chunk (see `classify`), smoothed with its neighbours by the aggregator
  (`smooth_labels`), which both the timeline and the summary use.

numpy and scipy only (scipy only in `analyze`; the aggregator's reductions are numpy). A chunk's
measurement lives in analyzers/common/audio_signal.py, the whole-video reductions here.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from reelscope.analyzers.base import AudioAnalyzer, AudioItem, ItemResult, Sampling
from reelscope.analyzers.common.audio_signal import (
    FPS,
    ONSET_WIN,
    band_flux,
    band_levels,
    chunk_features,
    classify,
    lufs,
    mean_square_of,
    unpack_edge,
)

ABS_GATE_LUFS = -70.0
ONSET_MIN_FLUX = 1.5
"""dB of mean band rise an onset needs at least: above the jitter of held tones (under 1) and of steady
noise's periodogram (its peaks reach 3-5: white noise still makes about 2 onsets a second)."""
ONSET_DELTA = 0.1
MIN_ONSETS_FOR_TEMPO = 4
MUSICAL = ("music", "speech_over_music")
MIN_MUSIC_SHARE = 0.25
"""Share of the audible time that must be music (or speech over music) for a key, and for tempo and beats
unless the track is rhythmic on its own (RHYTHM_CONFIDENCE): speech, noise and tones have onsets and pitch
too, but no tempo or key."""
RHYTHM_CONFIDENCE = 0.5
"""Tempo confidence that makes unpitched audio that is not mostly speech a rhythm (a drum loop, a click
track: 0.95-1.0) rather than noise (white noise 0.05-0.06; speech 0.04-0.19 on clips over 4 s)."""

# Krumhansl-Kessler key profiles (C major / C minor; rotated for the other tonics).
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
LOUDNESS_FIELDS = ("integrated_lufs", "loudness_range_lu", "max_momentary_lufs", "max_short_term_lufs")
KEY_FIELDS = ("key", "key_confidence", "key_runner_up", "key_margin")
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def smooth_labels(results: list[ItemResult]) -> list[str | None]:
    """Per-chunk labels re-decided on features median-filtered over the chunk and its audible neighbours
    (so one odd second inside a stretch does not flip), silence kept as measured."""
    keys = ("syllabic", "modulation_db", "voiced", "glide", "lines")
    feats = [r.payload.get("features") or {} for r in results]
    labels: list[str | None] = []
    for i, r in enumerate(results):
        own = r.payload.get("label")
        if own == "silence" or not all(k in feats[i] for k in keys):
            labels.append(own)
            continue
        around = [
            feats[j]
            for j in range(max(0, i - 1), min(len(results), i + 2))
            if results[j].payload.get("label") not in ("silence", None) and all(k in feats[j] for k in keys)
        ]
        merged = {k: float(np.median([f[k] for f in around])) for k in keys}
        labels.append(classify(float(r.payload.get("rms_dbfs", 0.0)), merged))
    # a chunk too short to tell takes the label before it (else after it)
    for i in range(len(labels)):
        if labels[i] is None:
            labels[i] = next((labels[j] for j in range(i - 1, -1, -1) if labels[j]), None)
    for i in range(len(labels) - 1, -1, -1):
        if labels[i] is None and i + 1 < len(labels):
            labels[i] = labels[i + 1]
    return labels


def _grid(results: list[ItemResult], key: str, step_s: float) -> dict[int, Any]:
    """Per-item lists laid on the video's grid of `step_s` (index -> value)."""
    cells: dict[int, Any] = {}
    for r in results:
        values = r.payload.get(key)
        if not values:
            continue
        first = round(r.start_s / step_s)
        for i, v in enumerate(values):
            cells[first + i] = v
    return cells


def _gated(block_ms: np.ndarray, relative_lu: float) -> np.ndarray:
    """BS.1770 gating: blocks above the absolute gate, then above (their mean - relative_lu)."""
    above = block_ms[lufs(block_ms) > ABS_GATE_LUFS]
    if above.size == 0:
        return above
    return above[lufs(above) > lufs(above.mean()) - relative_lu]


def loudness_summary(results: list[ItemResult]) -> dict[str, Any]:
    """Integrated loudness, loudness range, momentary and short-term maxima, a 1 s short-term curve."""
    cells = _grid(results, "lufs", 0.1)
    if not cells:
        return {**dict.fromkeys(LOUDNESS_FIELDS), "short_term": []}
    first, last = min(cells), max(cells)
    present = np.zeros(last - first + 1, dtype=bool)
    ms = np.zeros(last - first + 1)
    for k, v in cells.items():
        present[k - first] = True
        ms[k - first] = mean_square_of(np.array(float(v)))

    def windows(size: int) -> np.ndarray:
        """Mean square of every window of `size` sub-blocks (100 ms step) with none missing."""
        if len(ms) < size:
            return np.zeros(0)
        sums = np.convolve(ms, np.ones(size), "valid") / size
        return sums[np.convolve(present.astype(float), np.ones(size), "valid") >= size - 0.5]

    momentary = windows(4)
    short = windows(30)
    integrated = _gated(momentary, 10.0)
    lra_blocks = _gated(short, 20.0)
    lra = None
    if lra_blocks.size >= 2:
        lo, hi = np.percentile(lufs(lra_blocks), [10, 95])
        lra = round(float(hi - lo), 2)
    curve = []
    # short-term loudness of the 3 s ending at each whole second of audio (fewer sub-blocks at the start)
    for end in range(first + 10, last + 2, 10):
        lo_k = max(first, end - 30)
        seg = present[lo_k - first : end - first]
        if seg.sum() >= 10:
            value = float(lufs(ms[lo_k - first : end - first][seg].mean()))
            curve.append({"end_s": round(end * 0.1, 2), "lufs": round(value, 2)})
    return {
        "integrated_lufs": round(float(lufs(integrated.mean())), 2) if integrated.size else None,
        "loudness_range_lu": lra,
        "max_momentary_lufs": round(float(lufs(momentary.max())), 2) if momentary.size else None,
        "max_short_term_lufs": round(float(lufs(short.max())), 2) if short.size else None,
        "short_term": curve,
    }


def onset_envelope(results: list[ItemResult]) -> tuple[float, np.ndarray]:
    """(time of sample 0, the video's flux envelope at 100 Hz, sample i at time + i / FPS).

    A chunk's frame k sits at index base + 1 + k (its centre). Where a chunk follows the previous one
    without a gap, the frame straddling the seam is rebuilt from the 10 ms of samples on either side,
    so the envelope is the one an unchunked analysis gives; gaps and the first chunk's start stay zero."""
    with_onsets = [r for r in results if r.payload.get("onset")]
    if not with_onsets:
        return 0.0, np.zeros(0)
    t0 = with_onsets[0].start_s
    end = max(round((r.start_s - t0) * FPS) + 1 + len(r.payload["onset"]) for r in with_onsets)
    env = np.zeros(end)
    prev: ItemResult | None = None
    for r in with_onsets:
        base = round((r.start_s - t0) * FPS)
        env[base + 1 : base + 1 + len(r.payload["onset"])] = r.payload["onset"]
        if prev is not None and abs(prev.end_s - r.start_s) < 0.5 / FPS:
            seam = np.concatenate(
                [unpack_edge(prev.payload["edge_tail"]), unpack_edge(r.payload["edge_head"])]
            )
            if len(seam) == ONSET_WIN:
                levels = band_levels(seam[None, :])[0][0]
                env[base] = band_flux(levels, np.array(prev.payload["bands_tail"]))
                env[base + 1] = band_flux(np.array(r.payload["bands_head"]), levels)
        prev = r
    return t0, env


def _acf(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Unbiased autocorrelation of x - mean(x) for lags 0..max_lag."""
    y = x - x.mean()
    size = 1 << int(np.ceil(np.log2(2 * len(y))))
    spec = np.fft.rfft(y, size)
    ac = np.fft.irfft(np.abs(spec) ** 2, size)[: max_lag + 1]
    return ac / (len(y) - np.arange(max_lag + 1))


def _peak_near(ac: np.ndarray, centre: float, radius: int) -> float | None:
    """Lag of the highest point of ac within centre +- radius, parabolically interpolated."""
    lo, hi = max(1, math.floor(centre - radius)), min(len(ac) - 2, math.ceil(centre + radius))
    if hi <= lo:
        return None
    k = lo + int(np.argmax(ac[lo : hi + 1]))
    a, b, c = ac[k - 1], ac[k], ac[k + 1]
    den = a - 2 * b + c
    return k + (0.5 * (a - c) / den if den < 0 else 0.0)


def estimate_tempo(env: np.ndarray, prior_bpm: float = 120.0, octave_sd: float = 1.0) -> tuple[float, float]:
    """(BPM, confidence) from the envelope's autocorrelation weighted by a log-normal prior on tempo
    (120 BPM, 1 octave): the prior settles octave errors (a period and its double both correlate), and
    the peaks at 2-4 periods refine the period below one frame."""
    min_lag, max_lag = int(FPS * 60 / 300), int(FPS * 60 / 30)
    if len(env) < 3 * min_lag or not np.any(env > 0):
        return 0.0, 0.0
    ac = _acf(env, min(max_lag * 4, len(env) - 1))
    if ac[0] <= 0:
        return 0.0, 0.0
    lags = np.arange(min_lag, min(max_lag, len(ac) - 2) + 1)
    bpm = 60 * FPS / lags
    prior = np.exp(-0.5 * (np.log2(bpm / prior_bpm) / octave_sd) ** 2)
    weighted = np.maximum(ac[lags], 0) * prior
    if weighted.max() <= 0:
        return 0.0, 0.0
    period = _peak_near(ac, float(lags[int(np.argmax(weighted))]), 1) or float(lags[int(np.argmax(weighted))])
    num = den = 0.0
    for m in (1, 2, 3, 4):
        if m * period + m + 2 >= len(ac):
            break
        at = _peak_near(ac, m * period, m)
        if at is not None:
            num += m * at
            den += m * m
    period = num / den if den else period
    confidence = float(np.clip(ac[round(period)] / ac[0], 0, 1))
    return 60 * FPS / period, confidence


def track_beats(env: np.ndarray, bpm: float, tightness: float = 100.0) -> np.ndarray:
    """Beat frames by dynamic programming (Ellis 2007): each beat maximises its onset strength plus the
    best previous beat's score, penalised by how far the gap strays from the period (log-squared)."""
    if bpm <= 0 or len(env) == 0 or env.std() <= 0:
        return np.zeros(0, dtype=int)
    period = 60 * FPS / bpm
    norm = env / env.std()
    half = max(1, round(period))
    t = np.arange(-half, half + 1)
    kernel = np.exp(-0.5 * (t * 32 / period) ** 2)
    local = np.convolve(norm, kernel, "same")
    window = np.arange(-round(2 * period), -round(period / 2) + 1)
    penalty = -tightness * np.log(-window / period) ** 2
    cumscore = np.zeros(len(local))
    backlink = np.full(len(local), -1)
    started = False
    threshold = 0.01 * local.max()
    for i in range(len(local)):
        idx = i + window
        valid = idx >= 0
        if not valid.any():
            cumscore[i] = local[i]
            continue
        cand = penalty[valid] + cumscore[idx[valid]]
        best = int(np.argmax(cand))
        cumscore[i] = local[i] + cand[best]
        if started or local[i] >= threshold:
            backlink[i] = int(idx[valid][best])
            started = True
    # last beat: the last local maximum of the cumulative score at least half the median maximum
    peaks = np.nonzero((cumscore[1:-1] > cumscore[:-2]) & (cumscore[1:-1] >= cumscore[2:]))[0] + 1
    if peaks.size == 0:
        return np.zeros(0, dtype=int)
    good = peaks[cumscore[peaks] >= 0.5 * np.median(cumscore[peaks])]
    beats = [int(good[-1])]
    while backlink[beats[-1]] >= 0:
        beats.append(int(backlink[beats[-1]]))
    out = np.array(beats[::-1])
    # trim weak beats at both ends (fade-ins and tails)
    strength = local[out]
    floor = 0.5 * np.sqrt(np.mean(strength**2))
    strong = np.nonzero(strength >= floor)[0]
    return out[strong[0] : strong[-1] + 1] if strong.size else out


def onset_times(env: np.ndarray) -> np.ndarray:
    """Onset frames: maxima within +-30 ms that rise above the +-100 ms mean by ONSET_DELTA of the
    envelope's robust maximum and by at least ONSET_MIN_FLUX, 30 ms apart at least."""
    if len(env) < 3:
        return np.zeros(0, dtype=int)
    delta = max(ONSET_MIN_FLUX, ONSET_DELTA * float(np.percentile(env, 99.5)))
    padded = np.pad(env, 10, mode="edge")
    mean = np.convolve(padded, np.ones(21) / 21, "valid")
    local_max = np.lib.stride_tricks.sliding_window_view(np.pad(env, 3, mode="edge"), 7).max(axis=1)
    picked: list[int] = []
    for i in np.nonzero((env >= local_max) & (env >= mean + delta))[0]:
        if not picked or i - picked[-1] > 3:
            picked.append(int(i))
    return np.array(picked, dtype=int)


def estimate_key(chroma: np.ndarray) -> dict[str, Any] | None:
    """Krumhansl-Schmuckler: the key whose rotated profile correlates best with the chroma."""
    if chroma.sum() <= 0 or np.allclose(chroma, chroma[0]):
        return None
    scores: list[tuple[float, str]] = []
    for tonic in range(12):
        for mode, profile in (("major", _MAJOR), ("minor", _MINOR)):
            r = float(np.corrcoef(chroma, np.roll(profile, tonic))[0, 1])
            scores.append((r, f"{PITCH_CLASSES[tonic]} {mode}"))
    scores.sort(reverse=True)
    return {
        "key": scores[0][1],
        "key_confidence": round(scores[0][0], 3),
        "key_runner_up": scores[1][1],
        "key_margin": round(scores[0][0] - scores[1][0], 3),
    }


def label_spans(results: list[ItemResult], labels: list[str | None]) -> list[dict[str, Any]]:
    spans: list[dict[str, Any]] = []
    for r, label in zip(results, labels, strict=True):
        if label is None:
            continue
        if spans and spans[-1]["label"] == label and abs(spans[-1]["end_s"] - r.start_s) < 1e-3:
            spans[-1]["end_s"] = round(r.end_s, 3)
        else:
            spans.append({"start_s": round(r.start_s, 3), "end_s": round(r.end_s, 3), "label": label})
    return spans


class AudioFeaturesAnalyzer(AudioAnalyzer):
    name = "audio_features"
    group = "audio"
    sampling = Sampling(fps=None, audio_channels="source")
    """Every channel at the source's rate: BS.1770-4 loudness and true peak are defined on those."""
    requires = ("scipy",)

    def analyze(self, items: Sequence[AudioItem]) -> list[dict[str, Any]]:
        return [chunk_features(item.samples, item.sample_rate) for item in items]

    @classmethod
    def segment_fields(cls, payloads: list[dict[str, Any]]) -> dict[str, Any]:
        """Label (the one covering most samples), 1 s loudness, max momentary loudness, peaks."""
        if not payloads:
            return {}
        votes: Counter[str] = Counter()
        for p in payloads:
            if p.get("label"):
                votes[p["label"]] += int(p.get("n", 1))
        sub = np.array([v for p in payloads for v in p.get("lufs", [])], dtype=float)
        momentary = [
            float(lufs(mean_square_of(np.array(p["lufs"], dtype=float))[i : i + 4].mean()))
            for p in payloads
            for i in range(len(p.get("lufs", [])) - 3)
        ]
        fields: dict[str, Any] = {
            "label": votes.most_common(1)[0][0] if votes else None,
            "loudness_lufs": round(float(lufs(mean_square_of(sub).mean())), 2) if sub.size else None,
            "momentary_max_lufs": round(max(momentary), 2) if momentary else None,
            "peak_dbfs": max((p["peak_dbfs"] for p in payloads if "peak_dbfs" in p), default=None),
            "true_peak_dbfs": max(
                (p["true_peak_dbfs"] for p in payloads if "true_peak_dbfs" in p), default=None
            ),
        }
        return fields

    @classmethod
    def timeline_results(cls, results: list[ItemResult], segment_s: float) -> list[ItemResult]:
        """The chunks with their label replaced by the smoothed one, so timeline and summary agree."""
        labels = smooth_labels(results)
        return [
            replace(r, payload={**r.payload, "label": label}) if label != r.payload.get("label") else r
            for r, label in zip(results, labels, strict=True)
        ]

    @classmethod
    def video_summary(cls, results: list[ItemResult]) -> dict[str, Any] | None:
        """Loudness (BS.1770 integrated, range, maxima, short-term curve), peaks and clipping, tempo,
        beats and onset density, key (tempo, beats and key only when music fills MIN_MUSIC_SHARE of the
        audible time; key from the music chunks), label shares and labelled spans."""
        results = [r for r in results if "n" in r.payload]
        if not results:
            return None
        labels = smooth_labels(results)
        weights = np.array([r.payload["n"] for r in results], dtype=float)
        total = float(weights.sum()) or 1.0
        summary: dict[str, Any] = loudness_summary(results)
        peaks = [r.payload["peak_dbfs"] for r in results if "peak_dbfs" in r.payload]
        true_peaks = [r.payload["true_peak_dbfs"] for r in results if "true_peak_dbfs" in r.payload]
        clipping = sum(r.payload.get("clipping", 0.0) * r.payload["n"] for r in results) / total
        summary.update(
            {
                "sample_peak_dbfs": max(peaks) if peaks else None,
                "true_peak_dbfs": max(true_peaks) if true_peaks else None,
                "clipping_share": round(clipping, 6),
            }
        )
        t0, env = onset_envelope(results)
        onsets = onset_times(env)
        musical = [i for i, label in enumerate(labels) if label in MUSICAL]
        audible = float(sum(w for w, label in zip(weights, labels, strict=True) if label != "silence"))
        has_music = bool(musical) and float(weights[musical].sum()) >= MIN_MUSIC_SHARE * audible
        bpm, confidence = estimate_tempo(env) if len(onsets) >= MIN_ONSETS_FOR_TEMPO else (0.0, 0.0)
        speech = float(sum(w for w, label in zip(weights, labels, strict=True) if label == "speech"))
        if not (has_music or (speech < 0.5 * audible and confidence >= RHYTHM_CONFIDENCE)):
            bpm, confidence = 0.0, 0.0  # speech, noise and tones have onsets, but no tempo
        beats = track_beats(env, bpm)
        duration = len(env) / FPS
        summary.update(
            {
                "tempo_bpm": round(float(bpm), 2) if bpm else None,
                "tempo_confidence": round(float(confidence), 3),
                "beats_s": [round(t0 + b / FPS, 3) for b in beats],
                "onset_density_per_s": round(len(onsets) / duration, 3) if duration else None,
            }
        )
        chroma = np.zeros(12)
        for i in musical if has_music else []:
            chroma += np.array(results[i].payload.get("chroma") or np.zeros(12)) * weights[i]
        summary.update(estimate_key(chroma) or dict.fromkeys(KEY_FIELDS))
        shares = Counter[str]()
        for label, w in zip(labels, weights, strict=True):
            if label:
                shares[label] += float(w)
        summary["label_shares"] = {k: round(v / total, 3) for k, v in shares.most_common()}
        summary["segments"] = label_spans(results, labels)
        return summary
