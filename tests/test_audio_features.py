"""Audio features fed exactly as the producer feeds them (1 s chunks of 16 kHz PCM via int16, every chunk
analysed on its own, the whole-video reductions from the stored payloads), checked against what the
generated signals are known to be: click tracks at known tempi, sines at known levels, chords in known
keys, silence, noise, real and synthetic speech, music, and speech over music."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from reelscope.analyzers.audio_features import AudioFeaturesAnalyzer, estimate_key
from reelscope.analyzers.base import AudioItem, ItemResult
from reelscope.analyzers.common.audio_signal import LABELS, chunk_features

from tests.media import SHARED_MEDIA

RATE = 16_000
ANALYZER = AudioFeaturesAnalyzer()
rng = np.random.default_rng(7)


def pcm(x: np.ndarray) -> np.ndarray:
    """float -> int16 -> float32, as the producer publishes and the processor decodes it."""
    return (np.clip(np.round(np.asarray(x) * 32768), -32768, 32767).astype(np.int16) / 32768).astype(
        np.float32
    )


def chunks(video_id: str, x: np.ndarray, t0: float = 0.0) -> list[AudioItem]:
    samples = pcm(x)
    n = -(-len(samples) // RATE)
    return [
        AudioItem(
            video_id, i, t0 + i, t0 + min(i + 1, len(samples) / RATE), samples[i * RATE : (i + 1) * RATE], RATE,
            final=i == n - 1, first=i == 0,
        )
        for i in range(n)
    ]  # fmt: skip


def analyse(x: np.ndarray, t0: float = 0.0) -> tuple[list[ItemResult], dict[str, Any]]:
    items = chunks("v", x, t0)
    payloads = ANALYZER.analyze(items)
    results = [
        ItemResult(f"m{it.index:06d}", it.start_s, it.end_s, json.loads(json.dumps(p)))
        for it, p in zip(items, payloads, strict=True)
    ]
    summary = AudioFeaturesAnalyzer.video_summary(results)
    assert summary is not None
    assert {s["label"] for s in summary["segments"]} <= set(LABELS)
    return results, json.loads(json.dumps(summary))


def seconds(s: float) -> np.ndarray:
    return np.arange(int(s * RATE)) / RATE


def midi(m: int) -> float:
    return 440.0 * 2 ** ((m - 69) / 12)


def tone(freq: float, dur: float, amp: float = 0.15) -> np.ndarray:
    t = seconds(dur)
    return amp * np.sin(2 * np.pi * freq * t) * np.minimum(1, t / 0.01) * np.minimum(1, (dur - t) / 0.02)


def click_track(bpm: float, dur: float = 30.0, first: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Short decaying clicks (2 ms) every beat; the first on a chunk seam when `first` is 0."""
    x = np.zeros(int(dur * RATE))
    times = np.arange(first, dur - 0.05, 60 / bpm)
    click = 0.8 * np.hanning(64)[32:] * np.where(np.arange(32) % 2, 1, -1)
    for t in times:
        s = round(t * RATE)
        x[s : s + 32] += click
    return x, times


def music(dur: float, bpm: float = 110, seed: int = 1) -> np.ndarray:
    """Chords (C Am F G, four partials) with an eighth-note arpeggio, kick, snare and hi-hat."""
    r = np.random.default_rng(seed)
    beat = 60 / bpm
    y = np.zeros(int((dur + 3) * RATE))

    def add(at: float, sig: np.ndarray) -> None:
        s = int(at * RATE)
        y[s : s + len(sig)] += sig[: len(y) - s]

    def note(freq: float, d: float, amp: float, decay: float) -> np.ndarray:
        t = seconds(d)
        partials = sum(a * np.sin(2 * np.pi * freq * (i + 1) * t) for i, a in enumerate((1, 0.5, 0.3, 0.2)))
        return amp * partials * np.minimum(t / 0.01, 1) * np.exp(-t * decay / d)

    prog = [[48, 52, 55, 60, 64], [45, 52, 57, 60, 64], [41, 53, 57, 60, 65], [43, 50, 55, 59, 62]]
    for bar in range(int(dur / (4 * beat)) + 1):
        t, chord = bar * 4 * beat, prog[bar % 4]
        for m in chord:
            add(t, note(midi(m), 4 * beat, 0.12, 1.5))
        for k in range(8):
            add(t + k * beat / 2, note(midi(chord[(2 * k) % 5] + 12), beat / 2, 0.08, 2))
        for k in range(4):
            tk = seconds(0.25)
            add(t + k * beat, 0.5 * np.sin(2 * np.pi * (50 + 60 * np.exp(-tk * 30)) * tk) * np.exp(-tk * 12))
            if k % 2:
                add(t + k * beat, 0.15 * r.standard_normal(2400) * np.exp(-seconds(0.15) * 25))
            for h in (0, 0.5):
                add(t + (k + h) * beat, 0.04 * np.diff(r.standard_normal(801)) * np.exp(-seconds(0.05) * 80))
    y = y[: int(dur * RATE)]
    return 0.5 * y / np.abs(y).max()


def decode(path: Path) -> np.ndarray:
    """Any file to 16 kHz mono float via int16, as the producer does."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    parts: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            parts.extend(f.to_ndarray() for f in resampler.resample(frame))
        parts.extend(f.to_ndarray() for f in resampler.resample(None))
    return np.concatenate(parts, axis=1).reshape(-1).astype(np.float32) / 32768.0


def espeak(tmp_path: Path, text: str) -> np.ndarray:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    wav = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-s", "160", "-w", str(wav), text], check=True)  # no shell, list args
    return decode(wav)


def over(speech: np.ndarray, bed: np.ndarray, snr_db: float) -> np.ndarray:
    """Speech over a music bed `snr_db` below it (by power)."""
    bed = bed[: len(speech)]
    y = speech + bed * np.sqrt(np.mean(speech**2) / np.mean(bed**2) / 10 ** (snr_db / 10))
    return 0.7 * y / np.abs(y).max()


def shares(summary: dict[str, Any]) -> dict[str, float]:
    return summary["label_shares"]


SPEECH = (
    "Welcome back to the channel. Today we are cooking a simple tomato soup. First chop two onions and "
    "three cloves of garlic, then warm some olive oil in a large pot and stir them until they are golden."
)


# ---------------------------------------------------------------- tempo and beats


@pytest.mark.parametrize(("bpm", "first"), [(120, 0.0), (97, 0.25)])
def test_click_track_tempo_and_beats(bpm: float, first: float) -> None:
    x, clicks = click_track(bpm, 30.0, first)
    _, summary = analyse(x)
    assert summary["tempo_bpm"] == pytest.approx(bpm, abs=2)
    beats = np.array(summary["beats_s"])
    error = np.array([np.min(np.abs(beats - t)) for t in clicks])
    assert np.mean(error <= 0.030) >= 0.9, error
    assert len(beats) <= len(clicks) + 1  # no beats between the clicks
    assert summary["onset_density_per_s"] == pytest.approx(len(clicks) / 30.0, rel=0.05)


def test_steady_tone_has_no_onsets_at_chunk_seams() -> None:
    """The flux must not see the 1 s chunking: a held tone makes no onsets and no 60 BPM."""
    _, summary = analyse(0.3 * np.sin(2 * np.pi * 440 * seconds(10)))
    assert summary["onset_density_per_s"] == 0
    assert summary["tempo_bpm"] is None


# ---------------------------------------------------------------- loudness and peaks


def test_sine_loudness_peak_and_gating() -> None:
    """A 1 kHz sine at -20 dBFS is -23.01 LUFS by BS.1770 (full scale -3.01); this filter at 16 kHz gains
    0.04 dB more at 1 kHz than at 48 kHz, hence -22.96."""
    sine = 0.1 * np.sin(2 * np.pi * 1000 * seconds(10))
    _, summary = analyse(sine)
    assert summary["integrated_lufs"] == pytest.approx(-23.01, abs=0.5)
    assert summary["integrated_lufs"] == pytest.approx(-22.96, abs=0.03)
    assert summary["max_momentary_lufs"] == pytest.approx(-22.96, abs=0.03)
    assert all(p["lufs"] == pytest.approx(-22.96, abs=0.03) for p in summary["short_term"])
    assert len(summary["short_term"]) == 10
    assert summary["sample_peak_dbfs"] == pytest.approx(-20.0, abs=0.05)
    assert summary["true_peak_dbfs"] == pytest.approx(-20.0, abs=0.1)
    assert summary["clipping_share"] == 0
    assert summary["loudness_range_lu"] == pytest.approx(0, abs=0.1)

    # 5 s of silence between two 5 s sines: the silent 400 ms blocks fall below the absolute gate; the
    # 6 blocks that straddle an edge (3/4, 1/2, 1/4 of a sine) stay, so 94 + 3 sine blocks' worth of power
    # is spread over 100 blocks
    gapped = np.concatenate([sine[: 5 * RATE], np.zeros(5 * RATE), sine[: 5 * RATE]])
    _, summary = analyse(gapped)
    assert summary["integrated_lufs"] == pytest.approx(-22.96 + 10 * np.log10(97 / 100), abs=0.03)

    # 10 s at -20 dBFS then 10 s at -30 dBFS: the power mean, and a range of about 10 LU
    _, summary = analyse(np.concatenate([sine, sine / np.sqrt(10)]))
    expected = 10 * np.log10((10 ** (-2.296) + 10 ** (-3.296)) / 2)
    assert summary["integrated_lufs"] == pytest.approx(expected, abs=0.05)
    assert 9.0 <= summary["loudness_range_lu"] <= 10.5


def test_clipping_and_true_peak() -> None:
    t = seconds(3)
    _, clipped = analyse(np.clip(1.8 * np.sin(2 * np.pi * 440 * t), -1, 1))
    assert clipped["clipping_share"] > 0.3
    assert clipped["sample_peak_dbfs"] == pytest.approx(0.0, abs=0.01)
    # a 4 kHz sine sampled 45 degrees off its peaks: samples reach -9.03 dBFS, the waveform -6.02
    _, between = analyse(0.5 * np.sin(2 * np.pi * 4000 * t + np.pi / 4))
    assert between["sample_peak_dbfs"] == pytest.approx(-9.03, abs=0.05)
    assert between["true_peak_dbfs"] == pytest.approx(-6.02, abs=0.25)
    assert between["clipping_share"] == 0


# ---------------------------------------------------------------- key


def test_key_c_major_progression_and_scale() -> None:
    chords = [[48, 60, 64, 67], [53, 60, 65, 69], [55, 59, 62, 67], [48, 60, 64, 67]]
    progression = np.concatenate([sum(tone(midi(m), 2.0) for m in ch) for _ in range(3) for ch in chords])
    _, summary = analyse(progression)
    assert summary["key"] == "C major"
    assert summary["key_margin"] > 0.1
    scale = np.concatenate(
        [tone(midi(m), 0.5) for m in [60, 62, 64, 65, 67, 69, 71, 72, 71, 69, 67, 65, 64, 62]]
    )
    _, summary = analyse(scale)
    assert summary["key"] == "C major"


def test_key_a_minor_arpeggio() -> None:
    arpeggio = [57, 60, 64, 69, 64, 60] * 8 + [52, 56, 59, 64, 59, 56] * 2 + [57, 60, 64, 69, 64, 60] * 4
    _, summary = analyse(np.concatenate([tone(midi(m), 0.25) for m in arpeggio]))
    assert summary["key"] == "A minor"
    assert summary["key_confidence"] > 0.7


def test_key_profiles_pick_relative_keys_apart() -> None:
    c_major_triad = np.zeros(12)
    c_major_triad[[0, 4, 7]] = 1
    a_minor_triad = np.zeros(12)
    a_minor_triad[[9, 0, 4]] = 1
    assert (estimate_key(c_major_triad) or {})["key"] == "C major"
    assert (estimate_key(a_minor_triad) or {})["key"] == "A minor"
    assert estimate_key(np.ones(12)) is None


# ---------------------------------------------------------------- labels


def test_silence_is_silence_everywhere() -> None:
    results, summary = analyse(np.zeros(6 * RATE))
    assert summary["segments"] == [{"start_s": 0.0, "end_s": 6.0, "label": "silence"}]
    assert summary["integrated_lufs"] is None
    assert summary["tempo_bpm"] is None and summary["key"] is None and summary["beats_s"] == []
    timeline = AudioFeaturesAnalyzer.timeline_results(results, 1.0)
    assert all(AudioFeaturesAnalyzer.segment_fields([r.payload])["label"] == "silence" for r in timeline)


def test_white_noise_is_noise() -> None:
    _, summary = analyse(0.1 * rng.standard_normal(6 * RATE))
    assert shares(summary) == {"noise": 1.0}


def test_music_is_music() -> None:
    _, summary = analyse(music(12))
    assert shares(summary).get("music", 0) >= 0.9
    assert summary["tempo_bpm"] == pytest.approx(110, abs=2)
    assert summary["key"] in ("C major", "A minor")


def test_real_speech_is_speech() -> None:
    path = SHARED_MEDIA / "hotwords.mp3"
    if not path.is_file():
        pytest.skip(f"shared test media not found at {path}")
    _, summary = analyse(decode(path))
    assert shares(summary).get("speech", 0) >= 0.75
    assert summary["key"] is None  # no music, no key
    assert -30 < summary["integrated_lufs"] < -10


def test_speech_and_speech_over_music(tmp_path: Path) -> None:
    speech = espeak(tmp_path, SPEECH)
    _, alone = analyse(speech)
    assert shares(alone).get("speech", 0) >= 0.9
    _, mixed = analyse(over(speech, music(len(speech) / RATE + 1, 120, seed=3), snr_db=10))
    assert shares(mixed).get("speech_over_music", 0) >= 0.75


def test_timeline_matches_summary_and_segments_merge() -> None:
    """Speech, silence, noise in a row: the timeline's labels are the summary's, per second."""
    path = SHARED_MEDIA / "hotwords.mp3"
    if not path.is_file():
        pytest.skip(f"shared test media not found at {path}")
    x = np.concatenate([decode(path)[: 4 * RATE], np.zeros(2 * RATE), 0.05 * rng.standard_normal(3 * RATE)])
    results, summary = analyse(x)
    timeline = AudioFeaturesAnalyzer.timeline_results(results, 1.0)
    per_second = [AudioFeaturesAnalyzer.segment_fields([r.payload])["label"] for r in timeline]
    from_spans = [s["label"] for s in summary["segments"] for _ in range(round(s["end_s"] - s["start_s"]))]
    assert per_second == from_spans
    assert per_second[4:] == ["silence"] * 2 + ["noise"] * 3
    assert per_second[:4].count("speech") >= 3
    # a segment straddling two chunks: loudness is the power mean, peaks the max
    a, b = results[0].payload, results[5].payload
    merged = AudioFeaturesAnalyzer.segment_fields([a, b])
    assert merged["peak_dbfs"] == max(a["peak_dbfs"], b["peak_dbfs"])
    assert merged["loudness_lufs"] == pytest.approx(
        10 * np.log10(np.mean([10 ** (v / 10) for v in a["lufs"] + b["lufs"]])), abs=0.01
    )


# ---------------------------------------------------------------- stateless, small payloads


def test_payloads_do_not_depend_on_batching_and_are_small() -> None:
    one, two = chunks("a", music(4)), chunks("b", 0.1 * rng.standard_normal(4 * RATE), t0=0.5)
    alone = ANALYZER.analyze(one) + ANALYZER.analyze(two)
    mixed = ANALYZER.analyze([item for pair in zip(one, two, strict=True) for item in pair])
    assert mixed[0::2] + mixed[1::2] == alone
    assert max(len(json.dumps(p)) for p in alone) < 3000


def test_other_sample_rates_are_resampled() -> None:
    payload = chunk_features(0.1 * np.sin(2 * np.pi * 1000 * np.arange(48_000) / 48_000), 48_000)
    assert payload["n"] == RATE
    assert np.mean(payload["lufs"][1:]) == pytest.approx(-22.96, abs=0.05)


@pytest.mark.parametrize("rate", [8_000, 16_000, 22_050, 44_100, 48_000])
@pytest.mark.parametrize("tail_ms", [30, 45, 63])
def test_short_last_chunk_is_measured_at_any_source_rate(rate: int, tail_ms: int) -> None:
    """A video's last chunk can be a few ms long: too short for the 64 ms spectral frames, it still gets
    its loudness and peaks, its label comes from the chunk before it, and the summary covers it."""
    n = rate + rate * tail_ms // 1000
    x = pcm(0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / rate))
    items = [
        AudioItem("v", 0, 0.0, 1.0, x[:rate], rate, first=True),
        AudioItem("v", 1, 1.0, n / rate, x[rate:], rate, final=True),
    ]
    head, tail = ANALYZER.analyze(items)
    assert tail["n"] == pytest.approx(RATE * tail_ms / 1000, abs=2)
    assert tail["rms_dbfs"] == pytest.approx(20 * np.log10(0.2 / np.sqrt(2)), abs=1.0)
    assert "voiced" not in tail["features"] and tail["label"] is None  # too short to tell
    results = [
        ItemResult(f"m{i:06d}", it.start_s, it.end_s, p)
        for i, (it, p) in enumerate(zip(items, (head, tail), strict=True))
    ]
    summary = AudioFeaturesAnalyzer.video_summary(results)
    assert summary is not None
    assert summary["segments"] == [{"start_s": 0.0, "end_s": round(n / rate, 3), "label": head["label"]}]
