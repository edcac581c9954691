"""Transcription's economy mode (issue 18): under a backlog the speech group cannot skip chunks (its windows
need every one), so the items it takes while behind are transcribed more cheaply (one language per window;
from stride 4 greedy decoding too), and that is stated in the result, the transcript and the document's
notes."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from aiokafka.structs import ConsumerRecord
from reelscope.analyzers.base import AudioAnalyzer, AudioItem
from reelscope.analyzers.registry import all_analyzers
from reelscope.analyzers.transcription import TranscriptionAnalyzer
from reelscope.infra.bench.eval_text import wer
from reelscope.infra.core.settings import BatchSettings, Settings
from reelscope.schemas.events import ECONOMY_KEY, AudioChunk, economy_stride, encode
from reelscope.sinks import reconstruction
from reelscope.stream_processors.runtime import GroupProcessor

from tests.test_active_speaker import rows
from tests.test_transcription import LEFT, RATE, chunks, decode, make, results
from tests.test_transcription_language import SPANISH_WORDS, spanish, tokens

__all__ = ["make"]


def transcribe(analyzer: TranscriptionAnalyzer, audio: np.ndarray, economy: int) -> list[dict[str, Any]]:
    """Every chunk's payload, the chunks taken at `economy` (1: in full)."""
    items = [replace(item, economy=economy) for item in chunks(f"v{economy}", audio)]
    return [p for k in range(0, len(items), 8) for p in analyzer.analyze(items[k : k + 8])]


def test_economy_decodes_greedily_with_one_language_per_window_and_says_so(
    make: Callable[..., TranscriptionAnalyzer], shared_media: Path
) -> None:
    left, _ = decode(shared_media / "stereo_diarization.wav", split=True)
    clip = np.concatenate([left, np.zeros(RATE // 2, np.float32), spanish(4)])  # English, then Spanish
    analyzer = make()
    detections: list[str] = []
    beams: list[int] = []
    stretch_detector, model_transcribe = analyzer._stretch_detector, analyzer._model.transcribe

    def stretches(expected: str) -> Callable[[np.ndarray], tuple[str, float]]:
        detections.append(expected)
        return stretch_detector(expected)

    analyzer._stretch_detector = stretches  # type: ignore[method-assign]

    def spy(*args: Any, **kwargs: Any) -> Any:
        beams.append(kwargs["beam_size"])
        return model_transcribe(*args, **kwargs)

    analyzer._model.transcribe = spy
    full = transcribe(analyzer, clip, economy=1)
    assert detections and set(beams) == {5}  # stretches checked, beam search
    assert not any(ECONOMY_KEY in p for p in full)
    detections.clear(), beams.clear()

    behind = transcribe(analyzer, clip, economy=2)
    assert detections == [] and set(beams) == {5}  # stride 2: no stretch checked, still beam search
    assert {economy_stride(p) for p in behind if "window" in p} == {2}
    beams.clear()

    cheap = transcribe(analyzer, clip, economy=4)
    assert detections == [] and beams and set(beams) == {1}  # stride 4: no stretch checked, greedy
    windows = [p for p in cheap if "window" in p]
    assert windows and all(economy_stride(p) == 4 for p in windows)
    assert not any(ECONOMY_KEY in p for p in cheap if "window" not in p)  # buffered chunks: nothing made
    for p in windows:  # one language per window
        assert len({s["language"] for s in p["segments"]}) <= 1, p["segments"]

    items = chunks("cheap", clip)
    summary = TranscriptionAnalyzer.video_summary(results(items, cheap))
    assert summary is not None
    assert summary["economy_windows"] == [p["window"] for p in windows]
    english = " ".join(w["word"] for w in summary["words"] if w["end_s"] <= len(left) / RATE + 0.3)
    assert wer(LEFT, english) <= 0.2, english  # the English words, decoded greedily
    # the window that starts after the switch is Spanish; what the first window heard of the Spanish it wrote
    # in English or Spanish as it went (3 of the prompt words were Spanish here, 5 in full mode)
    assert windows[-1]["language"] == "es" and windows[-1]["words"], windows[-1]
    rest = " ".join(w["word"] for w in windows[-1]["words"])
    assert SPANISH_WORDS & set(tokens(rest)), rest
    full_summary = TranscriptionAnalyzer.video_summary(results(items, full))
    assert full_summary is not None and "economy_windows" not in full_summary


class Frugal(AudioAnalyzer):
    name = "frugal"
    group = "speech"
    economy = "fewer checks"

    def analyze(self, items: Sequence[AudioItem]) -> list[dict[str, Any]]:
        return [{"asked": item.economy} for item in items]


class Plain(Frugal):
    name = "plain"
    economy = ""


def test_the_processor_asks_only_economical_analyzers_in_the_shed_list_for_their_economy() -> None:
    def processor(shed: list[str]) -> GroupProcessor:
        settings = Settings(analyzers=["loudness"], batch=BatchSettings(shed_analyzers=shed))
        return GroupProcessor(settings, "speech", [Frugal(), Plain()])

    event = AudioChunk(
        video_id="v", index=3, start_s=3.0, end_s=4.0, pcm=bytes(3200), targets=["frugal", "plain"]
    )
    record = ConsumerRecord("t.audio", 0, 0, 0, 0, b"v", encode(event), None, 1, 1, ())
    asked = {
        tuple(shed): {
            r.analyzer: r.payload["asked"] for r in processor(shed).analyze_batch([(record, event, {}, 4)])[0]
        }
        for shed in (["frugal", "plain"], ["plain"])
    }
    assert asked == {("frugal", "plain"): {"frugal": 4, "plain": 1}, ("plain",): {"frugal": 1, "plain": 1}}
    full = processor(["frugal"]).analyze_batch([(record, event, {}, 1)])[0]
    assert {r.analyzer: r.payload["asked"] for r in full} == {"frugal": 1, "plain": 1}


def test_the_document_states_economy_and_keeps_the_video_complete() -> None:
    enabled = {"transcription": all_analyzers()["transcription"]}
    words = [{"word": "hello", "start_s": 1.0, "end_s": 1.4, "prob": 0.9, "speaker": "S0"}]
    window = {"channel": -1, "speaker": "S0", "words": words, "language": "en", "language_probability": 0.9}
    window["segments"] = [
        {"text": "hello", "start_s": 1.0, "end_s": 1.4, "no_speech_prob": 0.0, "language": "en"}
    ]
    payloads = [
        {"buffered": True, "channel": -1},
        {**window, "window": [0.0, 2.0]},
        {**window, "words": [], "segments": [], "window": [1.0, 3.0], ECONOMY_KEY: {"stride": 2}},
        {**window, "words": [], "segments": [], "window": [2.0, 3.0], ECONOMY_KEY: {"stride": 4}},
    ]
    video = {"video_id": "v", "duration_s": 3.0, "has_video": False, "has_audio": True}
    video["expected"] = json.dumps({"transcription": len(payloads)})
    stored = rows("transcription", [(float(i), i + 1.0, p) for i, p in enumerate(payloads)])
    doc = reconstruction.build(video, stored, enabled, 1.0, enrich=False)
    assert doc["status"] == "complete" and doc["warnings"] == []
    state = doc["analyzers"]["transcription"]
    assert state["economy"] == {"results": 2, "max_stride": 4, "mode": TranscriptionAnalyzer.economy}
    (note,) = [n for n in doc["notes"] if n.startswith("transcription: ")]
    assert "2 results made in economy mode" in note and "stride 4" in note
    assert doc["transcript"]["economy_windows"] == [[1.0, 3.0], [2.0, 3.0]]
    assert doc["transcript"]["text"] == "hello"  # economy results are findings, kept
