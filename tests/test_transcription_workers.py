"""Transcription's workers (issue 18): windows of different streams are transcribed at once, each stream's
items still in order, with the same words as one after another; a buffered chunk's payload is ready while
another stream's window is still being transcribed; one stream's failure stops no other stream."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reelscope.analyzers.transcription import TranscriptionAnalyzer

from tests.test_transcription import LEFT, RIGHT, chunks, decode, make, tokens

__all__ = ["make"]


def spied(analyzer: TranscriptionAnalyzer) -> list[tuple[int, float, float]]:
    """(thread, start, end) of every window the analyzer transcribes."""
    spans: list[tuple[int, float, float]] = []
    transcribe = analyzer._transcribe

    def spy(*args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        try:
            return transcribe(*args, **kwargs)
        finally:
            spans.append((threading.get_ident(), start, time.monotonic()))

    analyzer._transcribe = spy  # type: ignore[method-assign]
    return spans


def test_two_streams_are_transcribed_at_once_with_the_same_words(
    make: Callable[..., TranscriptionAnalyzer], shared_media: Path
) -> None:
    left, right = decode(shared_media / "stereo_diarization.wav", split=True)
    one, two = make(workers=1, cpu_threads=1), make(workers=2, cpu_threads=1)
    assert one._pool is None and two._pool is not None
    payloads: dict[int, list[dict[str, Any]]] = {}
    spans: dict[int, list[tuple[int, float, float]]] = {}
    for workers, analyzer in ((1, one), (2, two)):
        spans[workers] = spied(analyzer)
        items = [*chunks(f"w{workers}", left, 0), *chunks(f"w{workers}", right, 1)]  # one batch, two streams
        payloads[workers] = analyzer.analyze(items)
    words = [" ".join(w["word"] for w in p.get("words", [])) for p in payloads[2]]
    assert words == [" ".join(w["word"] for w in p.get("words", [])) for p in payloads[1]]
    split = -(-len(left) // 16_000)  # the left channel's chunks come first
    assert tokens(" ".join(words[:split])) == tokens(LEFT)
    assert tokens(" ".join(words[split:])) == tokens(RIGHT)

    (a, a0, a1), (b, b0, b1) = spans[2]
    assert a != b and a0 < b1 and b0 < a1, spans[2]  # two threads, overlapping in time
    (_, c0, c1), (_, d0, d1) = spans[1]
    assert c1 <= d0 or d1 <= c0  # one worker: one after the other


def test_a_buffered_chunk_is_ready_while_another_streams_window_is_transcribed(
    make: Callable[..., TranscriptionAnalyzer], shared_media: Path
) -> None:
    left, _ = decode(shared_media / "stereo_diarization.wav", split=True)
    analyzer = make(workers=2, cpu_threads=1)
    closing = chunks("closing", left)
    analyzer.analyze(closing[:-1])  # everything but the final chunk: buffered
    waiting = chunks("waiting", left)
    batch = [closing[-1], waiting[0]]  # the window's chunk first, as the scheduler may hand it over
    order = [i for i, _ in analyzer.analyze_ready(batch)]
    assert order == [1, 0]  # the buffered chunk did not wait for the window


def test_one_failing_stream_stops_no_other(make: Callable[..., TranscriptionAnalyzer]) -> None:
    analyzer = make(workers=2, cpu_threads=1)
    speechless = np.zeros(16_000 * 3, np.float32)
    good, bad = chunks("good", speechless), chunks("bad", speechless)
    bad[1] = replace(bad[1], sample_rate=8_000)
    made: list[int] = []
    with pytest.raises(ValueError, match="16000 Hz"):
        for i, _ in analyzer.analyze_ready([*good, *bad]):
            made.append(i)
    assert sorted(made) == [0, 1, 2, 3]  # every good chunk, and the bad stream's chunk before its failure


def test_a_caller_that_stops_early_gets_control_back_only_when_every_stream_stopped(
    make: Callable[..., TranscriptionAnalyzer], shared_media: Path
) -> None:
    """The runtime closes the generator when it stops taking payloads, then retries the rest item by item:
    no stream may still be running then."""
    left, _ = decode(shared_media / "stereo_diarization.wav", split=True)
    analyzer = make(workers=2, cpu_threads=1)
    spans = spied(analyzer)
    closing = chunks("early", left)
    analyzer.analyze(closing[:-1])
    made = analyzer.analyze_ready([closing[-1], chunks("other", left)[0]])
    assert next(made)[0] == 1  # the buffered chunk, while the window is transcribed
    assert spans == []
    made.close()
    assert len(spans) == 1  # the window was done before close() returned
