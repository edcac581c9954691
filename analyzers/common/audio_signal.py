"""One audio chunk's features for audio_features (analyzers/audio_features.py explains them): BS.1770
K-weighted sub-block loudness, peaks and clipping, the onset flux with its seam edges, speech and music
cues, chroma, and the per-chunk label rule. scipy is imported only where a chunk is measured.
"""

from __future__ import annotations

import base64
import functools
import math
from typing import Any

import numpy as np
from reelscope.analyzers.loudness import SILENCE_DBFS

SAMPLE_RATE = 16_000
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
MUSIC_LINES = 3
"""Spectral lines (exact 15.6 Hz bins, 6 dB above the 15 bins around them) held through at least half
of the quietest 40 % of frames: a music bed stays between syllables, a voice's harmonics glide.
Speech 0-2 (also on 250 s of Debian's asterisk prompts), noise 0, a pure tone 1-2, music 3-24 (median
11), speech over music 1-14 (median 9; asterisk prompts over its music on hold at -12 dB: 1-6)."""
TONE_LINES = 2
TONE_MODULATION_DB = 1.0
"""A tone: at most TONE_LINES lines and a level that holds (speech-band level std under 1 dB; music
with a beat 1.7-5)."""

LABELS = ("speech", "music", "speech_over_music", "silence", "noise", "tone")


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


@functools.cache
def _k_sos(rate: int) -> np.ndarray:
    return _k_weighting_sos(rate)


def k_weighted(x: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """K-weighted signal of one chunk, the filter warmed up on the chunk's own mirror image (100 ms)."""
    from scipy.signal import sosfilt

    sos = _k_sos(rate)
    pad = min(WARM_UP * rate // SAMPLE_RATE, len(x) - 1)
    if pad <= 0:
        return sosfilt(sos, x)
    head = x[pad:0:-1]
    return sosfilt(sos, np.concatenate([head, x]))[pad:]


def channel_weights(count: int) -> np.ndarray:
    """BS.1770-4 channel weights: 1 for each channel, except a 5.1 source's LFE (0) and surrounds (1.41)."""
    if count == 6:  # L R C LFE Ls Rs, FFmpeg's 5.1 order
        return np.array([1.0, 1.0, 1.0, 0.0, 1.41, 1.41])
    return np.ones(count)


def _loudness_part(channels: np.ndarray, rate: int) -> dict[str, Any]:
    """BS.1770-4 on every channel at the source rate: the weighted sum of the channels' K-weighted 100 ms
    mean squares (as LUFS), sample and 4x-oversampled true peak over all channels, clipping share."""
    from scipy.signal import resample_poly

    block = rate // 10
    blocks = channels.shape[1] // block
    sub_ms = np.zeros(blocks)
    for weight, x in zip(channel_weights(len(channels)), channels, strict=True):
        y = k_weighted(x, rate)[: blocks * block]
        sub_ms += weight * np.mean(y.reshape(blocks, block) ** 2, axis=1)
    peak = float(np.max(np.abs(channels)))
    true_peak = peak
    if channels.shape[1] > 16:
        true_peak = max(peak, float(np.max(np.abs(resample_poly(channels, 4, 1, axis=1)))))
    return {
        "lufs": [round(float(v), 2) for v in lufs(sub_ms)],
        "peak_dbfs": round(float(_db(peak**2)), 2),
        "true_peak_dbfs": round(float(_db(true_peak**2)), 2),
        "clipping": round(float(np.mean(np.abs(channels) >= CLIP_LEVEL)), 5),
    }


def _db(power: np.ndarray | float, floor: float = FLOOR_DB) -> np.ndarray:
    return np.maximum(floor, 10 * np.log10(np.maximum(power, 1e-30)))


def lufs(mean_square: np.ndarray | float) -> np.ndarray:
    """BS.1770 loudness of a K-weighted mean square (one channel, weight 1)."""
    return np.maximum(FLOOR_DB, -0.691 + 10 * np.log10(np.maximum(mean_square, 1e-30)))


def mean_square_of(lufs: np.ndarray) -> np.ndarray:
    return np.where(lufs <= FLOOR_DB, 0.0, 10 ** ((lufs + 0.691) / 10))


def _frames(x: np.ndarray, size: int, hop: int) -> np.ndarray:
    """Every whole frame of `size` samples, `hop` apart; none when x is shorter (a short last chunk)."""
    if len(x) < size:
        return np.zeros((0, size), dtype=x.dtype)
    count = 1 + (len(x) - size) // hop
    return np.lib.stride_tricks.sliding_window_view(x, size)[::hop][:count]


_ONSET_BANDS = np.unique(np.round(np.geomspace(1, ONSET_WIN // 2 + 1, 18)).astype(int))
"""Edges (rfft bins, 50 Hz apart) of 15 log-spaced bands for the flux."""


def band_levels(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(15 log-spaced band levels in dB, speech-band 300-3400 Hz power) of Hann-windowed frames."""
    window = np.hanning(ONSET_WIN)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2 * (2 / (ONSET_WIN * np.sum(window**2)))
    bands = np.add.reduceat(power, _ONSET_BANDS[:-1], axis=1)[:, : len(_ONSET_BANDS) - 1]
    freqs = np.fft.rfftfreq(ONSET_WIN, 1 / SAMPLE_RATE)
    return _db(bands, BAND_FLOOR_DB), power[:, (freqs >= 300) & (freqs <= 3400)].sum(axis=1)


def band_flux(later: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """Mean rise in dB over the bands: the onset strength from one frame to the next."""
    return np.maximum(later - earlier, 0).mean(axis=-1)


def _onset_part(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Band levels (one row per frame), their flux, and the speech-band power per frame.

    Frame k spans samples [k*HOP, k*HOP + ONSET_WIN), centred on (k+1)*HOP: only whole frames inside the
    chunk (padding would make an onset at every chunk edge). The frame that straddles two chunks is
    rebuilt by `onset_envelope` from the edge samples each payload carries."""
    levels, speech_band = band_levels(_frames(x, ONSET_WIN, HOP))
    flux = np.zeros(len(levels))
    flux[1:] = band_flux(levels[1:], levels[:-1])
    return levels, flux, speech_band


def _pack(x: np.ndarray) -> str:
    """Samples as base64 little-endian int16: the producer's own resolution, 4 characters per 3 bytes."""
    return base64.b64encode(np.round(np.clip(x, -1, 32767 / 32768) * 32768).astype("<i2").tobytes()).decode()


def unpack_edge(text: str) -> np.ndarray:
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
    - both cues: speech_over_music; one: speech or music, except that one or two steady lines at a steady
      level are a tone (a test tone, a beep), not music; neither: noise (anything else audible: noise,
      clicks, drums without pitched instruments).

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
    if 0 < f["lines"] <= TONE_LINES and f["modulation_db"] < TONE_MODULATION_DB:
        return "tone"
    if music:
        return "music"
    return "noise"


def chunk_features(samples: np.ndarray, rate: int = SAMPLE_RATE) -> dict[str, Any]:
    """The payload of one chunk: everything the aggregator needs, small and JSON-able. `samples` is mono
    or channels x samples: loudness and peaks are measured on every channel at `rate`, the rest on the
    16 kHz mono mix."""
    from scipy.signal import resample_poly

    channels = np.asarray(samples, dtype=np.float64)
    channels = channels.reshape(1, -1) if channels.ndim == 1 else channels
    x = channels.mean(axis=0)
    if rate != SAMPLE_RATE:
        g = math.gcd(SAMPLE_RATE, rate)
        x = resample_poly(x, SAMPLE_RATE // g, rate // g)
    n = len(x)
    if n == 0:
        return {"n": 0, "label": None}
    rms_dbfs = float(_db(np.mean(x**2)))
    payload: dict[str, Any] = {"n": n, **_loudness_part(channels, rate), "rms_dbfs": round(rms_dbfs, 2)}
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
