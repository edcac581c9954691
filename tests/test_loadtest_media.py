"""The load test's speech clips (`reelscope loadtest --audio speech`): speech VAD hears, different per video."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from reelscope.analyzers.common.whisper_once import speech_spans
from reelscope.infra.bench.loadtest import speech_track


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_speech_tracks_are_speech_and_differ_per_video() -> None:
    pytest.importorskip("faster_whisper")
    first, second = speech_track(8.0, 0, rate=16_000), speech_track(8.0, 1, rate=16_000)
    assert first.size == second.size == 8 * 16_000
    assert not np.allclose(first, second)
    heard = sum(s["end"] - s["start"] for s in speech_spans(first)) / first.size
    assert heard > 0.6
