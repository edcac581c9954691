"""One Whisper window with voice activity detection done once and the encoder run once.

faster-whisper 1.2's `transcribe(vad_filter=True)` without a language runs Silero VAD, encodes the first
30 s of the speech to detect its language, then encodes the same 30 s again to transcribe them (its
`transcribe` drops the detection's encoder output), and a window in which VAD finds no speech at all still
pays the detection's encoding (0.6-0.7 CPU-s with Whisper base on 2 cores, for no segment). Here VAD runs
once, a window without speech never reaches Whisper, the language is detected on exactly the features
transcription encodes first, and that encoding is reused (a one-entry memo on the model's `encode`). The
speech is cut out and its times restored as faster-whisper does it itself (the same `get_speech_timestamps`
and `restore_speech_timestamps`), so segments, words and times are faster-whisper's own
(tests/test_whisper_once.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

SAMPLE_RATE = 16_000


MIN_SPEECH_MS = 250
"""Silero VAD's own default (faster-whisper's is 0): a lone burst shorter than this is a click or a tone's
onset, not a word (a 220 Hz tone's first 0.46 s pass as speech at 0, nothing at 250), and Whisper given
half a second of it decodes with every temperature fallback and invents a sentence."""


def speech_spans(audio: np.ndarray) -> list[dict[str, int]]:
    """Silero VAD's speech spans (sample offsets): faster-whisper's options but `MIN_SPEECH_MS`."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(min_speech_duration_ms=MIN_SPEECH_MS)
    return list(get_speech_timestamps(audio, options, sampling_rate=SAMPLE_RATE))


def speech_only(audio: np.ndarray, spans: list[dict[str, int]]) -> np.ndarray:
    """The spans' samples back to back, as faster-whisper's `collect_chunks` joins them."""
    return np.concatenate([audio[s["start"] : s["end"]] for s in spans]).astype(np.float32, copy=False)


def restored(segments: Iterable[Any], spans: list[dict[str, int]]) -> Iterable[Any]:
    """Segments decoded from `speech_only` audio, their times and words' times back on the input's clock."""
    from faster_whisper.transcribe import restore_speech_timestamps

    return restore_speech_timestamps(segments, spans, SAMPLE_RATE)


def remember_last_encoding(model: Any) -> Callable[[], None]:
    """Make `model.encode` (a faster-whisper WhisperModel's) answer the same features with its last
    output instead of encoding them again; any other features are encoded as before. The memo is per
    thread, so windows transcribed at once in several threads never answer each other's features. Returns
    what forgets the calling thread's output (call it when its window is done, so nothing outlives it)."""
    encode = model.encode
    memo = threading.local()

    def encode_once(features: np.ndarray) -> Any:
        last: tuple[np.ndarray, Any] | None = getattr(memo, "last", None)
        if last is not None and last[0].shape == features.shape and np.array_equal(last[0], features):
            return last[1]
        output = encode(features)
        memo.last = (np.array(features, copy=True), output)
        return output

    def forget() -> None:
        memo.last = None

    model.encode = encode_once
    return forget


def detect_language(model: Any, audio: np.ndarray) -> tuple[str, float]:
    """Language and probability of `audio` from the features `model.transcribe(audio)` encodes first
    (the first 30 s of content frames, padded): with `remember_last_encoding` that encoding is then reused
    by the transcription."""
    from faster_whisper.audio import pad_or_trim

    features = model.feature_extractor(audio)
    frames = min(model.feature_extractor.nb_max_frames, features.shape[-1] - 1)
    encoded = model.encode(pad_or_trim(features[:, :frames]))
    token, probability = model.model.detect_language(encoded)[0][0]
    return str(token[2:-2]), float(probability)


SCREEN_FRAMES = 1000
"""10 s of features: the length a stretch's language is screened at (`screen_language`)."""


def screen_language(model: Any, audio: np.ndarray) -> tuple[str, float] | None:
    """Language and probability of `audio` of at most 10 s, encoded padded to 10 s instead of Whisper's 30:
    a quarter of an encoder pass (0.25 against 1.15 CPU-s with Whisper base on 2 cores). Whisper names a
    language a little less surely on it (Asterisk's prompts, 206 stretches of 2.5-8 s: right 186 against
    192 times), so it is a screen: a caller takes its answer only when it names the language already
    expected, and detects at full length otherwise (which made the same switch decisions as detection at
    full length on all 412 stretch and window-language pairs: docs/benchmarks.md). None for longer audio."""
    from faster_whisper.audio import pad_or_trim

    features = model.feature_extractor(audio)
    frames = features.shape[-1] - 1
    if frames > SCREEN_FRAMES:
        return None
    encoded = model.encode(pad_or_trim(features[:, :frames], SCREEN_FRAMES))
    token, probability = model.model.detect_language(encoded)[0][0]
    return str(token[2:-2]), float(probability)
