"""A transcription window with VAD once and the encoder once (analyzers/common/whisper_once.py), checked
against faster-whisper's own `transcribe(vad_filter=True)` on real speech with the packaged Whisper base."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reelscope.analyzers.common.whisper_once import detect_language, remember_last_encoding, speech_spans
from reelscope.analyzers.transcription import TranscriptionAnalyzer

from tests.media import tone
from tests.test_transcription import RATE, decode, make

__all__ = ["make"]

OPTIONS: dict[str, Any] = {"beam_size": 5, "word_timestamps": True, "condition_on_previous_text": False}


def counted(model: Any) -> list[int]:
    """Count the encoder passes `model` really runs (below any memo put on it later)."""
    calls = [0]
    encode = model.encode

    def counting(features: np.ndarray) -> Any:
        calls[0] += 1
        return encode(features)

    model.encode = counting
    return calls


def words(segments: Any) -> list[tuple[str, float, float]]:
    return [(w.word.strip(), round(w.start, 2), round(w.end, 2)) for s in segments for w in s.words or []]


@pytest.fixture(scope="module")
def analyzer(make: Callable[..., TranscriptionAnalyzer]) -> TranscriptionAnalyzer:
    return make()


@pytest.fixture
def window(shared_media: Path) -> np.ndarray:
    """20 s of a real two-speaker recording, as the producer's mono chunks make it."""
    return decode(shared_media / "stereo_diarization.wav")[0][: 20 * RATE]


def test_same_words_times_and_language_as_faster_whisper(
    analyzer: TranscriptionAnalyzer, window: np.ndarray
) -> None:
    model = analyzer._whisper(analyzer._model_path(analyzer.runtime.state_dir / "weights"))
    reference, info = model.transcribe(window, vad_filter=True, **OPTIONS)
    expected = words(reference)
    assert len(expected) >= 15

    segments, detected = analyzer._decode(window, None, ())

    assert [(w[0], round(w[1], 2), round(w[2], 2)) for s in segments for w in s.words] == expected
    assert detected is not None and detected[0] == info.language == "en"
    assert abs(detected[1] - info.language_probability) < 0.02


def test_a_window_with_speech_is_encoded_once_where_faster_whisper_encodes_twice(
    analyzer: TranscriptionAnalyzer, window: np.ndarray
) -> None:
    model = analyzer._whisper(analyzer._model_path(analyzer.runtime.state_dir / "weights"))
    calls = counted(model)
    model.transcribe(window, vad_filter=True, **OPTIONS)[0].__iter__().__next__()
    assert calls[0] == 2  # faster-whisper's own path: detection, then the same 30 s again

    calls[0] = 0
    forget = remember_last_encoding(model)
    speech = np.concatenate([window[s["start"] : s["end"]] for s in speech_spans(window)])
    language, _ = detect_language(model, speech)
    list(model.transcribe(speech, language=language, vad_filter=False, **OPTIONS)[0])
    assert calls[0] == 1

    forget()  # the window is done: the same audio again is encoded again, nothing outlives a window
    detect_language(model, speech)
    assert calls[0] == 2


def test_no_speech_never_reaches_whisper(analyzer: TranscriptionAnalyzer) -> None:
    calls = counted(analyzer._model)
    silence = np.zeros(20 * RATE, np.float32)
    beep = tone(20.0, rate=RATE, level=0.3).astype(np.float32)
    hum = tone(20.0, freq=220.0, rate=RATE, level=0.5).astype(np.float32)  # the load test's clips' tone
    assert speech_spans(silence) == [] and speech_spans(beep) == [] and speech_spans(hum) == []

    assert analyzer._decode(silence, None, ()) == ([], None)
    assert analyzer._decode(beep, None, ()) == ([], None)
    assert analyzer._decode(hum, None, ()) == ([], None)  # its onset is under MIN_SPEECH_MS
    assert calls[0] == 0
