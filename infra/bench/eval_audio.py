"""Audio aspects of `reelscope eval`: loudness against pyloudnorm, and labels and music features on
generated and real sounds (Debian's asterisk prompts and music on hold, sound-theme-freedesktop)."""

from __future__ import annotations

import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
from reelscope.infra.bench import eval_media
from reelscope.infra.bench.scorecard import SHARED_MEDIA, Score, document

ASTERISK_SPEECH = Path("/usr/share/asterisk/sounds/es/demo-instruct.wav")
ASTERISK_MUSIC = Path("/usr/share/asterisk/moh/macroform-cold_day.wav")
FREEDESKTOP_SPEECH = Path("/usr/share/sounds/freedesktop/stereo/audio-channel-front-left.oga")
LOUDNESS_TOLERANCE_LU = 0.5
TRUE_PEAK_TOLERANCE_DB = 0.5
MUSIC_FIELDS = ("tempo_bpm", "key")


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """16-bit PCM WAV of float samples (mono, or channels x samples)."""
    planar = samples.reshape(1, -1) if samples.ndim == 1 else samples
    with wave.open(str(path), "wb") as out:
        out.setnchannels(planar.shape[0])
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(planar.T, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def read_audio(path: Path, seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Every channel of a file's first audio stream as float (channels x samples) at its own rate."""
    parts = []
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="fltp")
        for frame in container.decode(stream):
            parts += [f.to_ndarray() for f in resampler.resample(frame)]
    audio = np.concatenate(parts, axis=1).astype(np.float64)
    return (audio if seconds is None else audio[:, : int(seconds * rate)]), rate


def reference(audio: np.ndarray, rate: int) -> tuple[float, float]:
    """(integrated LUFS by pyloudnorm, true peak in dBTP from 4x polyphase oversampling of every channel)."""
    import pyloudnorm
    from scipy.signal import resample_poly

    lufs = float(pyloudnorm.Meter(rate).integrated_loudness(audio.T))
    peak = float(np.max(np.abs(resample_poly(audio, 4, 1, axis=1))))
    return lufs, 20 * np.log10(max(peak, 1e-12))


def ffmpeg_true_peak(path: Path) -> float:
    """True peak in dBTP by FFmpeg's own meter (the ebur128 filter with peak=true, through PyAV's filter
    graph): an implementation independent of ours, which oversamples to 192 kHz (12x at 16 kHz)."""
    peak = 0.0
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        graph = av.filter.Graph()
        source = graph.add_abuffer(template=stream)
        meter = graph.add("ebur128", "peak=true:metadata=1")
        sink = graph.add("abuffersink")
        source.link_to(meter)
        meter.link_to(sink)
        graph.configure()
        frames = container.decode(stream)
        for frame in [*frames, None]:
            source.push(frame)
            while True:
                try:
                    out = sink.pull()
                except (av.BlockingIOError, av.EOFError):
                    break
                for key, value in out.metadata.items():  # running maxima per channel, linear
                    if key.startswith("lavfi.r128.true_peaks_ch"):
                        peak = max(peak, float(value))
    return 20 * float(np.log10(max(peak, 1e-12)))


def loudness_cases(folder: Path) -> list[tuple[str, Path]]:
    """Mono and stereo (different content per channel) at 16, 44.1 and 48 kHz; the shared clips when
    present."""
    cases = []
    for rate in (16_000, 44_100, 48_000):
        left = eval_media.programme(6.0, rate, 1)
        right = 0.4 * eval_media.programme(6.0, rate, 2)
        cases.append((f"mono {rate} Hz", write_wav(folder / f"mono{rate}.wav", left, rate)))
        stereo = np.stack([left, right])
        cases.append((f"stereo {rate} Hz", write_wav(folder / f"stereo{rate}.wav", stereo, rate)))
    for name in ("hotwords.mp3", "stereo_diarization.wav"):
        if (SHARED_MEDIA / name).is_file():
            cases.append((name, SHARED_MEDIA / name))
    return cases


def score_loudness(folder: Path) -> list[Score]:
    worst_lu = worst_tp = worst_ffmpeg = 0.0
    detail: dict[str, Any] = {}
    for name, path in loudness_cases(folder):
        audio, rate = read_audio(path)
        want_lufs, want_tp = reference(audio, rate)
        got = document(path, ["audio_features"])["summaries"]["audio_features"]
        d_lu = abs(got["integrated_lufs"] - want_lufs)
        d_tp = abs(got["true_peak_dbfs"] - want_tp)
        ffmpeg_tp = ffmpeg_true_peak(path)
        worst_lu, worst_tp = max(worst_lu, d_lu), max(worst_tp, d_tp)
        worst_ffmpeg = max(worst_ffmpeg, abs(got["true_peak_dbfs"] - ffmpeg_tp))
        detail[name] = {
            "lufs": got["integrated_lufs"],
            "pyloudnorm": round(want_lufs, 2),
            "true_peak": got["true_peak_dbfs"],
            "reference_true_peak": round(want_tp, 2),
            "ffmpeg_true_peak": round(ffmpeg_tp, 2),
        }
    return [
        Score(
            "loudness: integrated LUFS vs pyloudnorm (mono, stereo; 16/44.1/48 kHz)",
            f"worst {worst_lu:.2f} LU",
            f"≤ {LOUDNESS_TOLERANCE_LU} LU",
            worst_lu <= LOUDNESS_TOLERANCE_LU,
            detail,
        ),
        Score(
            "loudness: true peak vs 4x oversampled reference (same method)",
            f"worst {worst_tp:.2f} dB",
            f"≤ {TRUE_PEAK_TOLERANCE_DB} dB",
            worst_tp <= TRUE_PEAK_TOLERANCE_DB,
            {},
        ),
        Score(
            "loudness: true peak vs FFmpeg ebur128 (independent)",
            f"worst {worst_ffmpeg:.2f} dB",
            f"≤ {TRUE_PEAK_TOLERANCE_DB} dB",
            worst_ffmpeg <= TRUE_PEAK_TOLERANCE_DB,
            {},
        ),
    ]


def _beats(seconds: float, rate: int) -> np.ndarray:
    """A chord with a kick every 0.5 s (120 BPM): music with a beat."""
    t = np.arange(int(seconds * rate)) / rate
    kick = np.sin(2 * np.pi * 60 * t) * np.exp(-((t % 0.5) * 25))
    return (0.5 * eval_media.programme(seconds, rate, 3) + 0.4 * kick).astype(np.float32)


def label_cases(folder: Path) -> list[tuple[str, Path, str, bool]]:
    """(name, file, the label it must get, whether music features belong to it)."""
    rate = 16_000
    noise = 0.2 * np.random.default_rng(5).standard_normal(6 * rate)
    cases = [
        (
            "generated 1 kHz tone",
            write_wav(folder / "tone.wav", eval_media.tone(6.0, rate), rate),
            "tone",
            False,
        ),
        ("generated white noise", write_wav(folder / "noise.wav", noise, rate), "noise", False),
        ("generated silence", write_wav(folder / "silence.wav", np.zeros(6 * rate), rate), "silence", False),
        ("generated chord with beat", write_wav(folder / "beat.wav", _beats(8.0, rate), rate), "music", True),
    ]
    if ASTERISK_SPEECH.is_file():
        cases.append(("asterisk Spanish prompt", ASTERISK_SPEECH, "speech", False))
    if FREEDESKTOP_SPEECH.is_file():
        cases.append(("freedesktop 'front left'", FREEDESKTOP_SPEECH, "speech", False))
    if ASTERISK_MUSIC.is_file():
        music, music_rate = read_audio(ASTERISK_MUSIC, 12.0)
        cases.append(
            ("asterisk music on hold", write_wav(folder / "moh.wav", music, music_rate), "music", True)
        )
        if ASTERISK_SPEECH.is_file():
            speech, speech_rate = read_audio(ASTERISK_SPEECH, 12.0)
            bed = read_audio(ASTERISK_MUSIC, speech.shape[1] / speech_rate)[0].mean(axis=0)
            from scipy.signal import resample_poly

            bed = resample_poly(bed, speech_rate, music_rate)[: speech.shape[1]]
            mixed = speech[0, : bed.size] + 0.25 * bed
            path = write_wav(folder / "speech_music.wav", mixed, speech_rate)
            cases.append(("asterisk prompt over music on hold", path, "speech_over_music", True))
    return cases


def score_labels(folder: Path) -> list[Score]:
    """The dominant label of each sound, and music features (tempo, key) only where music is."""
    right = gated = 0
    detail: dict[str, Any] = {}
    cases = label_cases(folder)
    for name, path, want, musical in cases:
        summary = document(path, ["audio_features"])["summaries"]["audio_features"]
        shares = summary.get("label_shares") or {}
        top = max(shares, key=shares.get) if shares else None
        has_music = any(summary.get(k) for k in MUSIC_FIELDS)
        right += top == want
        gated += has_music == musical
        detail[name] = {"want": want, "shares": shares, **{k: summary.get(k) for k in MUSIC_FIELDS}}
    n = len(cases)
    return [
        Score(
            "audio labels: tone, noise, silence, speech, music, speech over music",
            f"{right}/{n} sounds right",
            f"{n}/{n}",
            right == n,
            detail,
        ),
        Score(
            "music features (tempo, beats, key) only where music is",
            f"{gated}/{n} sounds right",
            f"{n}/{n}",
            gated == n,
            {},
        ),
    ]


AUDIO_ASPECTS: dict[str, Callable[[Path], list[Score]]] = {"loudness": score_loudness, "labels": score_labels}
