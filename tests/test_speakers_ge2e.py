"""The packaged GE2E speaker encoder (Resemblyzer's weights, run with torch alone) on real voices: the two
speakers of stereo_diarization.wav (one per channel), the hotwords.mp3 speaker and Asterisk's Allison in
English and Spanish (asterisk-core-sounds-en-wav / -es-wav), diarized at the calibrated default threshold."""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
import pytest
from reelscope.analyzers.base import AudioItem, ItemResult, Runtime
from reelscope.analyzers.common import ge2e
from reelscope.analyzers.speakers import SpeakersAnalyzer, SpeakersOptions

from tests.test_transcription import RATE, chunks, decode


@pytest.fixture(scope="module")
def analyzer() -> SpeakersAnalyzer:
    pytest.importorskip("torch")
    if not SpeakersAnalyzer.available():
        pytest.skip("the Resemblyzer wheel is not installed")
    a = SpeakersAnalyzer(SpeakersOptions(), Runtime(threads=1))
    a.load()
    return a


def prompts(language: str, seconds: int) -> np.ndarray:
    paths = sorted(glob.glob(f"/usr/share/asterisk/sounds/{language}/*.wav"))
    if not paths:
        pytest.skip(f"asterisk-core-sounds-{language}-wav is not installed (.ci/run installs it)")
    out: list[np.ndarray] = []
    for path in paths:
        out.append(decode(Path(path))[0])
        if sum(map(len, out)) >= seconds * RATE:
            break
    return np.concatenate(out)[: seconds * RATE]


def test_batched_embeddings_equal_each_chunk_alone(analyzer: SpeakersAnalyzer, shared_media: Path) -> None:
    left, _ = decode(shared_media / "stereo_diarization.wav", split=True)
    items = chunks("v", left)[:4]
    together = analyzer.analyze(items)
    for item, payload in zip(items, together, strict=True):
        assert analyzer.analyze([item]) == [payload]
    voiced = [p for p in together if not p["silent"]]
    assert voiced and all(len(p["embedding"]) == 256 and p["threshold"] == 0.32 for p in voiced)


def test_four_real_voices_in_one_video_are_four_speakers(
    analyzer: SpeakersAnalyzer, shared_media: Path
) -> None:
    left, right = decode(shared_media / "stereo_diarization.wav", split=True)
    (hot,) = decode(shared_media / "hotwords.mp3")
    parts = [("left", left), ("right", right), ("hot", hot), ("allison", prompts("en", 10))]
    parts.append(("allison", prompts("es", 10)))
    items: list[AudioItem] = []
    truth: list[str] = []
    t0 = 0.0
    for who, audio in parts:
        part = chunks("mix", audio, t0=t0)
        items.extend(part)
        truth.extend([who] * len(part))
        t0 = part[-1].end_s + 2.0  # two silent seconds between voices: no chunk mixes two people
    payloads = analyzer.analyze(items)
    results = [
        ItemResult(str(k), i.start_s, i.end_s, p)
        for k, (i, p) in enumerate(zip(items, payloads, strict=True))
    ]
    summary = SpeakersAnalyzer.video_summary(results)
    assert summary is not None
    assert summary["speaker_count"] == 4, summary["turns"]
    labels = SpeakersAnalyzer.timeline_results(results, 1.0)
    by_time = {r.start_s: r.payload["speaker"] for r in labels}
    found: dict[str, set[str]] = {}
    for item, who in zip(items, truth, strict=True):
        if item.start_s in by_time:
            found.setdefault(who, set()).add(by_time[item.start_s])
    assert all(len(s) == 1 for s in found.values()), found  # Allison stays one speaker across languages
    assert len(set().union(*found.values())) == 4


def test_a_tone_and_music_make_no_speaker_and_real_speech_still_does(
    analyzer: SpeakersAnalyzer, shared_media: Path
) -> None:
    """Loud chunks without speech (a 440 Hz tone, a chord with a beat) are not embedded: before the
    speech gate they made a speaker of their own."""
    t = np.arange(6 * RATE) / RATE
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    chord = sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)) * (0.5 + 0.5 * (t % 0.5 < 0.1))
    music = (0.2 * chord).astype(np.float32)
    (hot,) = decode(shared_media / "hotwords.mp3")
    items = [*chunks("tone", tone), *chunks("music", music), *chunks("speech", hot)]
    payloads = analyzer.analyze(items)
    by_video: dict[str, list[dict]] = {}
    for item, payload in zip(items, payloads, strict=True):
        by_video.setdefault(item.video_id, []).append(payload)
    for video in ("tone", "music"):
        assert all(p["speech"] is False and not p["silent"] for p in by_video[video]), by_video[video]
        assert not any("embedding" in p for p in by_video[video])
    assert sum("embedding" in p for p in by_video["speech"]) >= len(by_video["speech"]) - 1
    ungated = SpeakersAnalyzer(SpeakersOptions(speech_gate=False), Runtime(threads=1))
    ungated.load()
    assert all("embedding" in p for p in ungated.analyze(chunks("tone", tone)))  # what the gate saves


def test_mel_frames_match_a_direct_stft() -> None:
    """One frame of Resemblyzer's mel input computed the slow way: centred zero padding, periodic Hann,
    |rfft 400|^2, Slaney triangles with area norm; and the Slaney scale is linear below 1 kHz."""
    wave = np.random.default_rng(0).normal(0, 0.1, RATE).astype(np.float32)
    mel = ge2e.mel_frames(wave)
    assert mel.shape == (101, 40)
    padded = np.pad(wave.astype(np.float64), 200)
    k = 37
    power = np.abs(np.fft.rfft(padded[k * 160 : k * 160 + 400] * np.hanning(401)[:-1])) ** 2
    assert mel[k] == pytest.approx(ge2e.mel_filters() @ power, rel=1e-4)
    assert ge2e._hz_to_slaney(np.array([500.0]))[0] == pytest.approx(7.5)
    assert ge2e._slaney_to_hz(ge2e._hz_to_slaney(np.array([3000.0]))) == pytest.approx([3000.0])
