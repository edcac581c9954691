"""Language with the packaged multilingual Whisper base on real speech: Asterisk's Spanish prompts
(asterisk-core-sounds-es-wav) come out as `es` with Spanish words; English (a real speaker from
stereo_diarization.wav) then Spanish in one clip reports both languages with their times; the English-only
tiny.en flags the Spanish instead of writing English over it."""

from __future__ import annotations

import glob
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from reelscope.analyzers.common.speech_language import other_tail, runs, segment_languages, stretches
from reelscope.analyzers.transcription import TranscriptionAnalyzer, language_spans
from reelscope.infra.bench.eval_text import wer

from tests.test_transcription import LEFT, RATE, chunks, decode, make, results, tokens

__all__ = ["make"]

SPANISH_WORDS = {"agente", "por", "favor", "número", "clave", "ingrese"}


def spanish(count: int) -> np.ndarray:
    paths = sorted(glob.glob("/usr/share/asterisk/sounds/es/*.wav"))[:count]
    if not paths:
        pytest.skip("asterisk-core-sounds-es-wav is not installed (.ci/run installs it)")
    return np.concatenate([decode(Path(p))[0] for p in paths])


def summary_of(analyzer: TranscriptionAnalyzer, video: str, audio: np.ndarray) -> dict:
    items = chunks(video, audio)
    summary = TranscriptionAnalyzer.video_summary(results(items, analyzer.analyze(items)))
    assert summary is not None
    return summary


def test_spanish_is_es_with_spanish_words(make: Callable[..., TranscriptionAnalyzer]) -> None:
    analyzer = make()
    assert analyzer.describe_model() == ("faster-whisper/base", "packaged")
    summary = summary_of(analyzer, "es", spanish(4))
    assert (summary["language"], summary["language_detected"]) == ("es", True)
    assert summary["language_probability"] > 0.5
    assert len(SPANISH_WORDS & set(tokens(summary["text"]))) >= 4, summary["text"]
    assert [s["language"] for s in summary["languages"]] == ["es"]
    assert {s["language"] for s in summary["segments"]} == {"es"}


def test_english_then_spanish_reports_both_with_their_times(
    make: Callable[..., TranscriptionAnalyzer], shared_media: Path
) -> None:
    left, _ = decode(shared_media / "stereo_diarization.wav", split=True)
    english_s = len(left) / RATE
    clip = np.concatenate([left, np.zeros(RATE // 2, np.float32), spanish(4)])
    summary = summary_of(make(), "switch", clip)
    spans = summary["languages"]
    assert [s["language"] for s in spans] == ["en", "es"], spans
    assert spans[0]["start_s"] < 1.0 and spans[0]["end_s"] <= english_s + 0.3
    assert english_s - 0.3 <= spans[1]["start_s"] < english_s + 2.0
    assert spans[1]["end_s"] > len(clip) / RATE - 2.0
    english = " ".join(s["text"] for s in summary["segments"] if s["language"] == "en")
    # Whisper's int8 kernels differ by CPU: one word error was seen on an AVX-512 machine ("who advanced
    # behind" for "who had vanished behind"), none on others
    assert wer(LEFT, english) <= 0.2, english
    rest = " ".join(s["text"] for s in summary["segments"] if s["language"] == "es")
    assert len(SPANISH_WORDS & set(tokens(rest))) >= 4, rest


def test_english_only_model_flags_spanish(make: Callable[..., TranscriptionAnalyzer]) -> None:
    analyzer = make(model="tiny.en")
    ctranslate2 = pytest.importorskip("ctranslate2")
    ctranslate2.set_random_seed(
        7
    )  # Whisper's temperature fallback samples: one fixed draw, whatever ran before
    summary = summary_of(analyzer, "es-tiny", spanish(4))
    assert summary["words"] == [] and summary["language"] is None, summary["text"]
    flagged = summary["flagged"]
    # what tiny.en decodes over the 17 s of Spanish is flagged from its start: all of it on some CPUs; on an
    # AVX-512 machine it stopped decoding after 6.2 s, and what it does not decode is neither text nor flag
    assert flagged and flagged[0]["start_s"] < 1.0 and flagged[-1]["end_s"] > 5.0, flagged


def test_english_only_without_a_detector_uses_its_confidence(
    make: Callable[..., TranscriptionAnalyzer], shared_media: Path
) -> None:
    analyzer = make(model="tiny.en")
    analyzer._detector = None  # as where the multilingual wheels are not installed
    ctranslate2 = pytest.importorskip("ctranslate2")
    ctranslate2.set_random_seed(7)  # Whisper's temperature fallback samples: one fixed draw
    summary = summary_of(analyzer, "es-logprob", spanish(4))
    # a heuristic: what is decoded of the Spanish is mostly flagged (seen: all of it, all but the last
    # prompt's 9 words, or, on an AVX-512 machine where tiny.en decoded only its first 6.2 s, all of that)
    flagged_s = sum(f["end_s"] - f["start_s"] for f in summary.get("flagged", []))
    assert len(summary["words"]) <= 12 and flagged_s >= 5.0, (summary["text"], summary.get("flagged"))
    left, _ = decode(shared_media / "stereo_diarization.wav", split=True)
    english = summary_of(analyzer, "en-logprob", left)
    assert wer(LEFT, english["text"]) <= 0.2 and "flagged" not in english, english["text"]


def test_stretches_runs_and_spans() -> None:
    spans = [(0.0, 1.0), (1.2, 2.0), (2.1, 4.0), (4.5, 9.0), (9.1, 9.5)]
    assert stretches(spans) == [[0, 1, 2], [3, 4]]
    assert stretches([(0.0, 1.0)]) == [[0]]
    assert runs(["en", "en", "es", "en"]) == [(0, 1, "en"), (2, 2, "es"), (3, 3, "en")]
    segments = [
        {"start_s": 3.0, "end_s": 4.0, "language": "es"},
        {"start_s": 0.0, "end_s": 1.0, "language": "en"},
        {"start_s": 1.5, "end_s": 2.5, "language": "en"},
    ]
    assert language_spans(segments) == [
        {"language": "en", "start_s": 0.0, "end_s": 2.5},
        {"language": "es", "start_s": 3.0, "end_s": 4.0},
    ]


def test_a_tail_in_another_language_is_found_after_the_last_segment() -> None:
    """Whisper decoding a window in English stops where Spanish begins: the rest is detected on its own."""
    audio = np.zeros(20 * RATE, np.float32)
    asked: list[int] = []

    def detect(samples: np.ndarray) -> tuple[str, float]:
        asked.append(samples.size)
        return ("es", 0.9)

    spans = [(0.0, 4.9), (5.3, 9.5)]
    assert other_tail(audio, RATE, spans, "en", detect) == (int(9.5 * RATE), "es", 0.9)
    assert asked == [audio.size - int(9.5 * RATE)]
    assert other_tail(audio, RATE, [(0.0, 18.0)], "en", detect) is None  # under 3 s left: not asked
    assert other_tail(audio, RATE, [], "en", detect) is None and len(asked) == 1  # no speech at all
    assert other_tail(audio, RATE, spans, "es", detect) is None  # the window's own language
    assert other_tail(audio, RATE, spans, "en", lambda _: ("es", 0.3)) is None  # not sure enough


def test_stretches_are_detected_one_by_one_only_when_an_end_is_in_another_language() -> None:
    """Every detection is an encoder pass: a window that starts and ends in its language costs two."""
    audio = np.arange(20 * RATE, dtype=np.float32) / RATE  # each sample holds its own time
    spans = [(0.0, 3.5), (4.0, 7.5), (8.0, 11.5), (12.0, 15.5), (16.0, 19.5)]  # five stretches
    asked: list[float] = []

    def detector(languages: dict[float, tuple[str, float]]) -> Callable[[np.ndarray], tuple[str, float]]:
        def detect(samples: np.ndarray) -> tuple[str, float]:
            asked.append(round(float(samples[0]), 1))
            return languages[asked[-1]]

        return detect

    english = {a: ("en", 0.9) for a, _ in spans}
    found = segment_languages(audio, RATE, spans, ("en", 0.95), detector(english))
    assert asked == [0.0, 16.0]
    assert found == [("en", 0.9), ("en", 0.95), ("en", 0.95), ("en", 0.95), ("en", 0.9)]

    asked.clear()
    switch = english | {12.0: ("es", 0.8), 16.0: ("es", 0.85)}
    found = segment_languages(audio, RATE, spans, ("en", 0.95), detector(switch))
    assert sorted(asked) == [0.0, 4.0, 8.0, 12.0, 16.0]  # each stretch once, the ends not again
    assert [lang for lang, _ in found] == ["en", "en", "en", "es", "es"]

    asked.clear()
    starts_other = english | {0.0: ("es", 0.8)}
    found = segment_languages(audio, RATE, spans, ("en", 0.6), detector(starts_other))
    assert sorted(asked) == [0.0, 4.0, 8.0, 12.0, 16.0]
    assert [lang for lang, _ in found] == ["es", "en", "en", "en", "en"]
