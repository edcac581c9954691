"""Audio features: loudness (ITU-R BS.1770-4), peaks and clipping, tempo and beats, musical key, onset
density, and a per-second label speech / music / speech_over_music / silence / noise.

Stateless by design: every 1 s chunk is reduced on its own to a small payload (about 2.2 KB), and
everything that needs more than one chunk is rebuilt by the aggregator from those payloads, so a
processor killed mid-video loses nothing:

- Loudness: the K-weighted mean square of each 100 ms sub-block. BS.1770 gating blocks are 400 ms with
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

numpy and scipy only (scipy only in `analyze`; the aggregator's reductions are numpy).
"""

from __future__ import annotations

import base64
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from reelscope.analyzers.base import Analyzer, AudioItem, Item, ItemResult, Sampling
from reelscope.analyzers.loudness import SILENCE_DBFS

SAMPLE_RATE = 16_000
SUB_BLOCK = 1_600
"""100 ms loudness sub-block."""
HOP = 160
"""10 ms: onset and modulation frame hop (100 frames per 1 s chunk)."""
FPS = SAMPLE_RATE / HOP
ONSET_WIN = 320
SPEC_N, SPEC_HOP = 1024, 320
CHROMA_N, CHROMA_HOP = 4096, 2048
WARM_UP = 1_600
CLIP_LEVEL = 0.999
"""A sample at or above this magnitude (-0.009 dBFS) counts as clipped: int16 full scale is 32767/32768."""
FLOOR_DB = -120.0
BAND_FLOOR_DB = -80.0
"""Band levels are floored here, so dither and near-silence make no flux."""
ABS_GATE_LUFS = -70.0

# Label rule thresholds. The ranges quoted are per-chunk values measured on generated material: espeak-ng
# speech (3 voices, also over pink noise at 15-20 dB SNR), the two real recordings in ../shared/media,
# synthetic music (chords, arpeggios, drums, saw leads with and without vibrato), their mixtures at 6-15 dB
# speech-to-music, and white, pink and brown noise and clicks. Real-world material will overlap more.
SPEECH_SYLLABIC = 2.0
"""Relative 2.5-7 Hz modulation energy of the 300-3400 Hz envelope: speech 2.5-18 (median 9.8), music
0-1.9, steady noise under 0.1 (clicks are far above, but unvoiced)."""
SPEECH_MODULATION_DB = 4.5
"""Std of the 10 ms speech-band level in dB: speech 6.1-16 (median 11), music 1.0-5.7, noise 0.7-1.2."""
SPEECH_VOICED = 0.25
"""Share of 64 ms frames with a pitch (normalised autocorrelation peak above 0.5 at 75-400 Hz): speech
0.26-0.92 (median 0.70), noise and clicks 0-0.17."""
STEADY_GLIDE = 0.03
"""Median pitch step (semitones per 20 ms) between consecutive voiced frames: a voice glides (speech
0.10-0.65), notes hold (synthetic music median 0.004; a vibrato lead up to 0.07). Below it a voiced
chunk is not speech, and if mostly voiced it is music (a melody, a held chord)."""
NOTES_VOICED = 0.5
"""Voiced share above which steady pitch alone makes a chunk music."""
MUSIC_LINES = 4
"""Spectral lines (exact 15.6 Hz bins, 6 dB above the 15 bins around them) held through at least half
of the quietest 40 % of frames: a music bed stays between syllables, a voice's harmonics glide.
Speech 0-2, noise 0, music 3-15 (median 11), speech over music 1-14 (median 9)."""

ONSET_MIN_FLUX = 1.5
"""dB of mean band rise an onset needs at least: above the jitter of held tones (under 1) and of steady
noise's periodogram (its peaks reach 3-5: white noise still makes about 2 onsets a second)."""
ONSET_DELTA = 0.1
MIN_ONSETS_FOR_TEMPO = 4

LABELS = ("speech", "music", "speech_over_music", "silence", "noise")

# Krumhansl-Kessler key profiles (C major / C minor; rotated for the other tonics).
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
LOUDNESS_FIELDS = ("integrated_lufs", "loudness_range_lu", "max_momentary_lufs", "max_short_term_lufs")
KEY_FIELDS = ("key", "key_confidence", "key_runner_up", "key_margin")
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def _k_weighting_sos(rate: int) -> np.ndarray:
    """BS.1770 K-weighting (shelving pre-filter, then RLB high-pass) as two biquads for any sample rate.

    The analogue parameters are the ones that reproduce BS.1770's 48 kHz coefficients exactly through
    the bilinear transform (as libebur128 derives them); at 16 kHz the 1 kHz gain differs from 48 kHz
    by +0.04 dB."""
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh = 10 ** (gain_db / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = [
        (vh + vb * k / q + k * k) / a0,
        2 * (k * k - vh) / a0,
        (vh - vb * k / q + k * k) / a0,
        1.0,
        2 * (k * k - 1) / a0,
        (1 - k / q + k * k) / a0,
    ]
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1 + k / q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    return np.array([shelf, highpass])


K_SOS = _k_weighting_sos(SAMPLE_RATE)


def k_weighted(x: np.ndarray) -> np.ndarray:
    """K-weighted signal of one chunk, the filter warmed up on the chunk's own mirror image."""
    from scipy.signal import sosfilt

    pad = min(WARM_UP, len(x) - 1)
    if pad <= 0:
        return sosfilt(K_SOS, x)
    head = x[pad:0:-1]
    return sosfilt(K_SOS, np.concatenate([head, x]))[pad:]


def _db(power: np.ndarray | float, floor: float = FLOOR_DB) -> np.ndarray:
    return np.maximum(floor, 10 * np.log10(np.maximum(power, 1e-30)))


def _lufs(mean_square: np.ndarray | float) -> np.ndarray:
    """BS.1770 loudness of a K-weighted mean square (one channel, weight 1)."""
    return np.maximum(FLOOR_DB, -0.691 + 10 * np.log10(np.maximum(mean_square, 1e-30)))


def _ms_of(lufs: np.ndarray) -> np.ndarray:
    return np.where(lufs <= FLOOR_DB, 0.0, 10 ** ((lufs + 0.691) / 10))


def _frames(x: np.ndarray, size: int, hop: int) -> np.ndarray:
    count = 1 + (len(x) - size) // hop
    return np.lib.stride_tricks.sliding_window_view(x, size)[::hop][:count]


_ONSET_BANDS = np.unique(np.round(np.geomspace(1, ONSET_WIN // 2 + 1, 18)).astype(int))
"""Edges (rfft bins, 50 Hz apart) of 15 log-spaced bands for the flux."""


def _band_levels(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(15 log-spaced band levels in dB, speech-band 300-3400 Hz power) of Hann-windowed frames."""
    window = np.hanning(ONSET_WIN)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2 * (2 / (ONSET_WIN * np.sum(window**2)))
    bands = np.add.reduceat(power, _ONSET_BANDS[:-1], axis=1)[:, : len(_ONSET_BANDS) - 1]
    freqs = np.fft.rfftfreq(ONSET_WIN, 1 / SAMPLE_RATE)
    return _db(bands, BAND_FLOOR_DB), power[:, (freqs >= 300) & (freqs <= 3400)].sum(axis=1)


def _flux(later: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """Mean rise in dB over the bands: the onset strength from one frame to the next."""
    return np.maximum(later - earlier, 0).mean(axis=-1)


def _onset_part(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Band levels (one row per frame), their flux, and the speech-band power per frame.

    Frame k spans samples [k*HOP, k*HOP + ONSET_WIN), centred on (k+1)*HOP: only whole frames inside the
    chunk (padding would make an onset at every chunk edge). The frame that straddles two chunks is
    rebuilt by `onset_envelope` from the edge samples each payload carries."""
    levels, speech_band = _band_levels(_frames(x, ONSET_WIN, HOP))
    flux = np.zeros(len(levels))
    flux[1:] = _flux(levels[1:], levels[:-1])
    return levels, flux, speech_band


def _pack(x: np.ndarray) -> str:
    """Samples as base64 little-endian int16: the producer's own resolution, 4 characters per 3 bytes."""
    return base64.b64encode(np.round(np.clip(x, -1, 32767 / 32768) * 32768).astype("<i2").tobytes()).decode()


def _unpack(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<i2").astype(np.float64) / 32768


def _modulation(speech_band: np.ndarray) -> tuple[float, float]:
    """(std of the speech-band level in dB, relative 2.5-7 Hz modulation energy of its envelope)."""
    if len(speech_band) < 20 or speech_band.max() <= 1e-12:
        return 0.0, 0.0
    level = 10 * np.log10(speech_band + 1e-12)
    spread = float(np.std(np.maximum(level, level.max() - 40)))
    env = np.sqrt(speech_band)
    spectrum = np.abs(np.fft.rfft((env - env.mean()) * np.hanning(len(env)))) ** 2
    mod_freqs = np.fft.rfftfreq(len(env), 1 / FPS)
    syllabic = spectrum[(mod_freqs >= 2.5) & (mod_freqs <= 7)].sum() / (env.mean() ** 2 * len(env))
    return spread, float(syllabic)


def _spectral_part(x: np.ndarray) -> dict[str, float]:
    """Voicing, pitch glide and held spectral lines from 64 ms frames (20 ms hop)."""
    frames = _frames(x, SPEC_N, SPEC_HOP)
    if len(frames) < 4:
        return {}
    frames = frames - frames.mean(axis=1, keepdims=True)
    window = np.hanning(SPEC_N)
    spectrum = np.fft.rfft(frames * window, 2 * SPEC_N, axis=1)
    power2 = np.abs(spectrum) ** 2
    power = power2[:, ::2] + 1e-14  # every other bin of the 2x zero-padded transform: the plain one
    freqs = np.fft.rfftfreq(SPEC_N, 1 / SAMPLE_RATE)
    energy = np.mean(frames**2, axis=1)
    active = energy > 1e-7
    if not active.any():
        return {}
    # voicing: Boersma's normalised autocorrelation (divided by the window's), peak inside 75-400 Hz
    freqs2 = np.fft.rfftfreq(2 * SPEC_N, 1 / SAMPLE_RATE)
    power2[:, freqs2 > 4000] = 0
    ac = np.fft.irfft(power2, axis=1)[:, :SPEC_N]
    wac = np.fft.irfft(np.abs(np.fft.rfft(window, 2 * SPEC_N)) ** 2)[:SPEC_N]
    r = ac / (ac[:, :1] + 1e-20) / (wac / wac[0])
    lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 75
    seg = r[:, lo - 1 : hi + 2]
    inner = (seg[:, 1:-1] > seg[:, :-2]) & (seg[:, 1:-1] >= seg[:, 2:])
    masked = np.where(inner, seg[:, 1:-1], -1.0)
    best = masked.argmax(axis=1)
    strength = masked[np.arange(len(best)), best]
    voiced_frames = active & (strength > 0.5)
    voiced = float(np.mean(voiced_frames[active]))
    # pitch glide: median semitone step between consecutive voiced frames (interpolated lag)
    rows = np.arange(len(best))
    a, b, c = seg[rows, best], seg[rows, best + 1], seg[rows, best + 2]
    den = a - 2 * b + c
    lag = lo + best + np.clip(np.where(den < 0, 0.5 * (a - c) / np.where(den < 0, den, -1), 0.0), -0.5, 0.5)
    pairs = voiced_frames[1:] & voiced_frames[:-1]
    steps = np.abs(12 * np.log2(lag[1:] / lag[:-1]))[pairs]
    glide = float(np.median(steps)) if steps.size >= 3 else -1.0

    # held lines: exact-bin peaks 6 dB above the median of the 15 bins around them, persisting through
    # the quietest frames (the median only where there is a local maximum: a tenth of the bins)
    level = 10 * np.log10(power)
    rows, cols = np.nonzero((level[:, 1:-1] > level[:, :-2]) & (level[:, 1:-1] >= level[:, 2:]))
    cols = cols + 1
    around = np.lib.stride_tricks.sliding_window_view(
        np.pad(level, ((0, 0), (7, 7)), mode="edge"), 15, axis=1
    )
    peaks = np.zeros_like(level, dtype=bool)
    peaks[rows, cols] = level[rows, cols] > np.median(around[rows, cols], axis=1) + 6
    band = (freqs >= 60) & (freqs <= 4000)
    loud = level.max(axis=1) > -70
    lines = 0
    if loud.sum() >= 4:
        frame_energy = power.sum(axis=1)
        quiet = loud & (frame_energy <= np.quantile(frame_energy[loud], 0.4) * (1 + 1e-9))
        occupancy = (peaks[quiet] & band).mean(axis=0)
        lines = int(np.sum(occupancy >= 0.5))
    return {"voiced": round(voiced, 3), "glide": round(glide, 3), "lines": lines}


def _chroma(x: np.ndarray) -> list[float]:
    """Pitch-class energy (sum of spectral-peak amplitudes, 55-2100 Hz), normalised to sum 1."""
    if len(x) < CHROMA_N:
        x = np.pad(x, (0, CHROMA_N - len(x)))
    frames = _frames(x, CHROMA_N, CHROMA_HOP) * np.hanning(CHROMA_N)
    mag = np.abs(np.fft.rfft(frames, axis=1)) + 1e-12
    log = np.log(mag)
    chroma = np.zeros(12)
    is_peak = (log[:, 1:-1] > log[:, :-2]) & (log[:, 1:-1] >= log[:, 2:])
    is_peak &= log[:, 1:-1] > log.max(axis=1, keepdims=True) - np.log(100)  # within 40 dB of the frame max
    rows, cols = np.nonzero(is_peak)
    cols = cols + 1
    a, b, c = log[rows, cols - 1], log[rows, cols], log[rows, cols + 1]
    shift = 0.5 * (a - c) / np.where(np.abs(a - 2 * b + c) < 1e-12, 1e-12, a - 2 * b + c)
    freq = (cols + np.clip(shift, -0.5, 0.5)) * SAMPLE_RATE / CHROMA_N
    keep = (freq >= 55) & (freq <= 2100)
    pitch = 69 + 12 * np.log2(freq[keep] / 440.0)
    near = np.abs(pitch - np.round(pitch)) < 0.4
    classes = np.round(pitch[near]).astype(int) % 12
    np.add.at(chroma, classes, mag[rows[keep][near], cols[keep][near]])
    total = chroma.sum()
    return [round(float(v), 4) for v in (chroma / total if total > 0 else chroma)]


def classify(rms_dbfs: float, f: dict[str, float]) -> str | None:
    """The label rule, in order:

    - silence: RMS below SILENCE_DBFS (-50 dBFS, as the loudness analyzer);
    - speech cue: syllable-rate modulation (SPEECH_SYLLABIC), a wide level swing (SPEECH_MODULATION_DB),
      some voicing (SPEECH_VOICED) and a gliding pitch (STEADY_GLIDE);
    - music cue: MUSIC_LINES spectral lines held between syllables, or steady pitch in a mostly voiced
      chunk (NOTES_VOICED);
    - both cues: speech_over_music; one: speech or music; neither: noise (anything else audible: noise,
      clicks, drums without pitched instruments). A held test tone has steady pitch, so it is music.

    None when the chunk is too short to tell (under 0.125 s; the aggregator lets neighbours decide)."""
    if rms_dbfs < SILENCE_DBFS:
        return "silence"
    if "lines" not in f:
        return None
    speech = (
        f["syllabic"] >= SPEECH_SYLLABIC
        and f["modulation_db"] >= SPEECH_MODULATION_DB
        and f["voiced"] >= SPEECH_VOICED
        and f["glide"] >= STEADY_GLIDE
    )
    steady_notes = f["voiced"] >= NOTES_VOICED and 0 <= f["glide"] < STEADY_GLIDE
    music = f["lines"] >= MUSIC_LINES or steady_notes
    if speech and music:
        return "speech_over_music"
    if speech:
        return "speech"
    if music:
        return "music"
    return "noise"


def chunk_features(samples: np.ndarray, rate: int = SAMPLE_RATE) -> dict[str, Any]:
    """The payload of one chunk: everything the aggregator needs, small and JSON-able."""
    from scipy.signal import resample_poly

    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    if rate != SAMPLE_RATE:
        g = math.gcd(SAMPLE_RATE, rate)
        x = resample_poly(x, SAMPLE_RATE // g, rate // g)
    n = len(x)
    if n == 0:
        return {"n": 0, "label": None}
    rms_dbfs = float(_db(np.mean(x**2)))
    peak = float(np.max(np.abs(x)))
    true_peak = max(peak, float(np.max(np.abs(resample_poly(x, 4, 1))))) if n > 16 else peak
    y = k_weighted(x)
    blocks = n // SUB_BLOCK
    sub_ms = np.mean(y[: blocks * SUB_BLOCK].reshape(blocks, SUB_BLOCK) ** 2, axis=1)
    payload: dict[str, Any] = {
        "n": n,
        "lufs": [round(float(v), 2) for v in _lufs(sub_ms)],
        "rms_dbfs": round(rms_dbfs, 2),
        "peak_dbfs": round(float(_db(peak**2)), 2),
        "true_peak_dbfs": round(float(_db(true_peak**2)), 2),
        "clipping": round(float(np.mean(np.abs(x) >= CLIP_LEVEL)), 5),
    }
    features: dict[str, float] = {}
    if n >= ONSET_WIN + HOP:
        levels, flux, speech_band = _onset_part(x)
        spread, syllabic = _modulation(speech_band)
        payload["onset"] = [round(float(v), 2) for v in flux]
        payload["bands_head"] = [round(float(v), 2) for v in levels[0]]
        payload["bands_tail"] = [round(float(v), 2) for v in levels[-1]]
        payload["edge_head"] = _pack(x[:HOP])
        payload["edge_tail"] = _pack(x[-HOP:])
        features = {"modulation_db": round(spread, 2), "syllabic": round(syllabic, 3)}
        features.update(_spectral_part(x))
    payload["chroma"] = _chroma(x)
    payload["features"] = features
    payload["label"] = classify(rms_dbfs, features)
    return payload


# ---------------------------------------------------------------- aggregator side (numpy only)


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
    above = block_ms[_lufs(block_ms) > ABS_GATE_LUFS]
    if above.size == 0:
        return above
    return above[_lufs(above) > _lufs(above.mean()) - relative_lu]


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
        ms[k - first] = _ms_of(np.array(float(v)))

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
        lo, hi = np.percentile(_lufs(lra_blocks), [10, 95])
        lra = round(float(hi - lo), 2)
    curve = []
    # short-term loudness of the 3 s ending at each whole second of audio (fewer sub-blocks at the start)
    for end in range(first + 10, last + 2, 10):
        lo_k = max(first, end - 30)
        seg = present[lo_k - first : end - first]
        if seg.sum() >= 10:
            value = float(_lufs(ms[lo_k - first : end - first][seg].mean()))
            curve.append({"end_s": round(end * 0.1, 2), "lufs": round(value, 2)})
    return {
        "integrated_lufs": round(float(_lufs(integrated.mean())), 2) if integrated.size else None,
        "loudness_range_lu": lra,
        "max_momentary_lufs": round(float(_lufs(momentary.max())), 2) if momentary.size else None,
        "max_short_term_lufs": round(float(_lufs(short.max())), 2) if short.size else None,
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
            seam = np.concatenate([_unpack(prev.payload["edge_tail"]), _unpack(r.payload["edge_head"])])
            if len(seam) == ONSET_WIN:
                levels = _band_levels(seam[None, :])[0][0]
                env[base] = _flux(levels, np.array(prev.payload["bands_tail"]))
                env[base + 1] = _flux(np.array(r.payload["bands_head"]), levels)
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


class AudioFeaturesAnalyzer(Analyzer):
    name = "audio_features"
    input = "audio"
    group = "audio"
    sampling = Sampling(fps=None, audio_channels="mix")
    requires = ("scipy",)

    def analyze(self, items: Sequence[Item]) -> list[dict[str, Any]]:
        out = []
        for item in items:
            if not isinstance(item, AudioItem):
                raise TypeError(f"audio_features takes audio chunks, got {type(item).__name__}")
            out.append(chunk_features(item.samples, item.sample_rate))
        return out

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
            float(_lufs(_ms_of(np.array(p["lufs"], dtype=float))[i : i + 4].mean()))
            for p in payloads
            for i in range(len(p.get("lufs", [])) - 3)
        ]
        fields: dict[str, Any] = {
            "label": votes.most_common(1)[0][0] if votes else None,
            "loudness_lufs": round(float(_lufs(_ms_of(sub).mean())), 2) if sub.size else None,
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
        beats and onset density, key (from the music chunks only; None without music), label shares
        and labelled spans."""
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
        bpm, confidence = estimate_tempo(env) if len(onsets) >= MIN_ONSETS_FOR_TEMPO else (0.0, 0.0)
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
        musical = [i for i, label in enumerate(labels) if label in ("music", "speech_over_music")]
        chroma = np.zeros(12)
        for i in musical:
            chroma += np.array(results[i].payload.get("chroma") or np.zeros(12)) * weights[i]
        summary.update(estimate_key(chroma) or dict.fromkeys(KEY_FIELDS))
        shares = Counter[str]()
        for label, w in zip(labels, weights, strict=True):
            if label:
                shares[label] += float(w)
        summary["label_shares"] = {k: round(v / total, 3) for k, v in shares.most_common()}
        summary["segments"] = label_spans(results, labels)
        return summary
