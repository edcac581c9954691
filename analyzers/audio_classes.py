"""Speech emotion and sound events per 1 s audio chunk: transformers audio-classification models.

Both run a model named by a local directory or a model id already in the local Hugging Face cache (never
downloaded), loaded with `AutoFeatureExtractor` + `AutoModelForAudioClassification`, on batches of chunks
from several videos padded to a common length. Nothing is configured by default: then `configured()` is
False and `auto` leaves them out. Examples of real models: speech emotion `superb/wav2vec2-base-superb-er`
or `ehcalabres/wav2vec2-lg-xlsr-en-speech-emotion-recognition`; sound events
`MIT/ast-finetuned-audioset-10-10-0.4593` (AudioSet's 527 classes: applause, laughter, music, ...).

Windows: emotion models are trained on 2-5 s utterances, chunks are 1 s. Each chunk is classified alone
(restart-safe, no per-video state), and `video_summary` smooths the scores over neighbouring voiced chunks
before cutting emotion spans, so one odd second does not make a span. A chunk below the loudness gate is
not classified (`silent: true`): an emotion read from silence would be invented. Only a loudness gate
stands between the model and music or noise; speech emotion on a music bed is the model's guess.

Sound events: AudioSet taggers are multi-label (speech over music), so scores are sigmoids by default and
each label above `min_score` is `active`; `video_summary` merges consecutive chunks where a label is
active into events. The AST feature extractor pads every input to its fixed 10.24 s frame, so a 1 s
chunk costs as much as a 10 s one.

A model whose config.json carries `"reelscope_provenance": "random-test"` (what the tests write next to
their tiny random models) reports provenance random-test; otherwise configured.

`AudioModel` (loading, device and dtype, padded batches) is shared with analyzers/speakers.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel
from reelscope.analyzers.base import RANDOM_TEST_MARKER, Analyzer, AudioItem, Item, ItemResult, Sampling
from reelscope.analyzers.loudness import to_dbfs
from reelscope.infra.core.settings import AudioClassifierSettings, AudioModelSettings, SoundEventSettings
from reelscope.schemas.events import Provenance

MIN_SAMPLES = 1_600
"""Chunks shorter than 0.1 s are zero-padded to it: wav2vec2-style encoders need 400 samples at least."""
SMOOTH_RADIUS = 1
"""Emotion spans: each voiced chunk's scores are averaged with this many adjacent voiced chunks per side."""
MAX_SPANS = 200


def settings_section(settings: Any, section: str, default: BaseModel) -> Any:
    """The analyzer's Settings section, or its defaults when Settings (or the section) is absent."""
    return getattr(settings, section, None) or default


def read_provenance(config: Any) -> Provenance:
    """random-test when the model's config carries the marker; the marker can only lower trust."""
    return "random-test" if getattr(config, RANDOM_TEST_MARKER, None) == "random-test" else "configured"


def chunk_rms_dbfs(samples: np.ndarray) -> float:
    if samples.size == 0:
        return to_dbfs(0.0)
    return to_dbfs(float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))))


class AudioModel:
    """One transformers audio model and its feature extractor, loaded once, never downloaded, run on
    batches of waveforms padded to a common length."""

    def __init__(self, owner: str, options: AudioModelSettings, head: Literal["classification", "xvector"]):
        self.owner = owner
        self.options = options
        self.head = head
        self.config: Any = None
        self.provenance: Provenance = "configured"
        self._extractor: Any = None
        self._model: Any = None
        self._device: Any = None
        self._dtype: Any = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        ref = self.options.model
        if not ref:
            raise RuntimeError(
                f"{self.owner}: no model configured; set {self.owner}.model to a local directory or a "
                "model id in the local Hugging Face cache"
            )
        import transformers

        self._device = self._resolve_device()
        self._dtype = self._resolve_dtype()
        model_class = (
            transformers.AutoModelForAudioClassification
            if self.head == "classification"
            else transformers.AutoModelForAudioXVector
        )
        try:
            self.config = transformers.AutoConfig.from_pretrained(ref, local_files_only=True)
            self._extractor = transformers.AutoFeatureExtractor.from_pretrained(ref, local_files_only=True)
            model = model_class.from_pretrained(ref, local_files_only=True, dtype=self._dtype)
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"{self.owner}: cannot load {ref!r} (local files only): {exc}") from exc
        self._model = model.to(self._device).eval()
        self.provenance = read_provenance(self.config)

    def _resolve_device(self) -> Any:
        import torch

        name = self.options.device
        if name in ("", "auto"):
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"{self.owner}.device is {name!r} but no CUDA device is available")
        return device

    def _resolve_dtype(self) -> Any:
        import torch

        if self.options.dtype != "auto":
            return getattr(torch, self.options.dtype)
        return torch.float16 if self._device.type == "cuda" else torch.float32

    @property
    def sample_rate(self) -> int:
        return int(self._extractor.sampling_rate)

    def run_voiced(
        self, items: Sequence[Item], min_rms_dbfs: float
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], np.ndarray | None]:
        """A `{silent, rms_dbfs}` payload per item, the payloads of the voiced ones, and the model's output
        rows for those (None when every chunk was silent): quiet chunks never reach the model."""
        payloads: list[dict[str, Any]] = []
        voiced: list[tuple[dict[str, Any], AudioItem]] = []
        for item in map(self.check, items):
            level = chunk_rms_dbfs(item.samples)
            payload: dict[str, Any] = {"silent": level < min_rms_dbfs, "rms_dbfs": level}
            payloads.append(payload)
            if not payload["silent"]:
                voiced.append((payload, item))
        outputs = self.run([item.samples for _, item in voiced]) if voiced else None
        return payloads, [p for p, _ in voiced], outputs

    def run(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Logits (classification) or embeddings (x-vector), float32, one row per waveform; the waveforms
        are at the model's sample rate (see `check`)."""
        if self._model is None:
            raise RuntimeError(f"{self.owner}: load() was not called")
        import torch

        prepared = [_at_least(np.asarray(w, dtype=np.float32).reshape(-1), MIN_SAMPLES) for w in waves]
        rows = []
        size = self.options.batch_size
        for start in range(0, len(prepared), size):
            inputs = self._extractor(
                prepared[start : start + size],
                sampling_rate=self.sample_rate,
                padding="longest",
                return_tensors="pt",
            )
            tensors = {
                k: v.to(self._device, self._dtype) if v.is_floating_point() else v.to(self._device)
                for k, v in inputs.items()
            }
            with torch.inference_mode():
                out = self._model(**tensors)
            result = out.logits if self.head == "classification" else out.embeddings
            rows.append(result.float().cpu().numpy())
        return np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)

    def check(self, item: Item) -> AudioItem:
        """The item as an audio chunk at the model's rate (the producer sends 16 kHz; so do the models)."""
        if not isinstance(item, AudioItem):
            raise TypeError(f"{self.owner} takes audio chunks, got {type(item).__name__}")
        if self._extractor is not None and item.sample_rate != self.sample_rate:
            raise ValueError(
                f"{self.owner}: the model takes {self.sample_rate} Hz, got {item.sample_rate} Hz"
            )
        return item


def _at_least(samples: np.ndarray, n: int) -> np.ndarray:
    return samples if len(samples) >= n else np.pad(samples, (0, n - len(samples)))


def scores_from_logits(logits: np.ndarray, activation: Literal["softmax", "sigmoid"]) -> np.ndarray:
    logits = logits.astype(np.float64)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


class _AudioClassAnalyzer(Analyzer):
    """A transformers audio classifier on each mix chunk; subclasses name it and reduce it per video."""

    section: ClassVar[str]
    defaults: ClassVar[AudioClassifierSettings]
    input = "audio"
    group = "audio"
    sampling = Sampling(fps=None, audio_channels="mix")
    requires = ("transformers", "torch")
    model_name = "not configured"
    provenance: Provenance = "configured"

    def __init__(self, settings: Any = None, options: AudioClassifierSettings | None = None) -> None:
        super().__init__(settings)
        self.options = options or settings_section(settings, self.section, self.defaults)
        self._model = AudioModel(self.section, self.options, "classification")
        self._labels: list[str] = []
        self._activation: Literal["softmax", "sigmoid"] = "softmax"

    @classmethod
    def configured(cls, settings: Any) -> bool:
        return bool(settings_section(settings, cls.section, cls.defaults).model)

    def describe_model(self) -> tuple[str, Provenance]:
        if not self.options.model:
            return self.model_name, self.provenance
        return self.options.model, self._model.provenance

    def load(self) -> None:
        self._model.load()
        config = self._model.config
        self._labels = [str(config.id2label[i]) for i in range(config.num_labels)]
        activation = self.options.activation
        if activation == "auto":
            multi = getattr(config, "problem_type", None) == "multi_label_classification"
            activation = "sigmoid" if multi else "softmax"
        self._activation = activation

    def analyze(self, items: Sequence[Item]) -> list[dict[str, Any]]:
        if not self._model.loaded:
            raise RuntimeError(f"{self.name}: load() was not called")
        payloads, voiced, logits = self._model.run_voiced(items, self.options.min_rms_dbfs)
        if logits is not None:
            for payload, row in zip(voiced, scores_from_logits(logits, self._activation), strict=True):
                payload.update(self._labelled(row))
        return payloads

    def _labelled(self, row: np.ndarray) -> dict[str, Any]:
        order = np.argsort(-row, kind="stable")[: self.options.top_k]
        labels = [{"label": self._labels[i], "score": round(float(row[i]), 4)} for i in order]
        return {
            "labels": labels,
            "top": labels[0]["label"],
            "score": labels[0]["score"],
            "active": [x["label"] for x in labels if x["score"] >= self.options.min_score],
        }

    @classmethod
    def segment_fields(cls, payloads: list[dict[str, Any]]) -> dict[str, Any]:
        """The label with the highest mean score over the segment's classified chunks."""
        classified = [p for p in payloads if p.get("labels")]
        if not classified:
            return {"silent": True}
        mean = mean_scores(classified)
        label = max(mean, key=lambda k: mean[k])
        return {"label": label, "score": round(mean[label], 4)}


def mean_scores(payloads: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean score per label over payloads; a label outside a payload's top-k counts as 0 there."""
    sums: Counter[str] = Counter()
    for p in payloads:
        for x in p["labels"]:
            sums[x["label"]] += x["score"]
    return {label: total / len(payloads) for label, total in sums.items()}


def _adjacent(a: ItemResult, b: ItemResult) -> bool:
    return b.start_s - a.end_s < 1e-3


def emotion_spans(results: list[ItemResult], radius: int = SMOOTH_RADIUS) -> list[dict[str, Any]]:
    """Emotion spans: each classified chunk's scores averaged with up to `radius` adjacent classified chunks
    on each side (never across a silent or missing chunk), its best label taken, and runs of one label
    merged; a span's score is the mean smoothed score of its label."""
    runs: list[list[ItemResult]] = []
    for r in results:
        if not r.payload.get("labels"):
            continue
        if runs and _adjacent(runs[-1][-1], r):
            runs[-1].append(r)
        else:
            runs.append([r])
    spans: list[dict[str, Any]] = []
    for run in runs:
        for i, r in enumerate(run):
            mean = mean_scores([w.payload for w in run[max(0, i - radius) : i + radius + 1]])
            label = max(mean, key=lambda k: mean[k])
            if i > 0 and spans[-1]["label"] == label:
                spans[-1]["end_s"] = r.end_s
                spans[-1]["_scores"].append(mean[label])
            else:
                spans.append(
                    {"label": label, "start_s": r.start_s, "end_s": r.end_s, "_scores": [mean[label]]}
                )
    for span in spans:
        scores = span.pop("_scores")
        span["score"] = round(sum(scores) / len(scores), 4)
        span["start_s"], span["end_s"] = round(span["start_s"], 3), round(span["end_s"], 3)
    return spans


def label_events(results: list[ItemResult]) -> list[dict[str, Any]]:
    """Per label, runs of adjacent chunks where it is active, as events sorted by start; an event's score
    is the label's mean score over its chunks."""
    open_events: dict[str, dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    last: ItemResult | None = None
    for r in results:
        if not r.payload.get("labels"):
            continue
        active = set(r.payload.get("active", []))
        scores = {x["label"]: x["score"] for x in r.payload["labels"]}
        if last is None or not _adjacent(last, r):
            open_events.clear()
        for label in list(open_events):
            if label not in active:
                del open_events[label]
        for label in active:
            event = open_events.get(label)
            if event is None:
                event = {"label": label, "start_s": r.start_s, "end_s": r.end_s, "_scores": []}
                open_events[label] = event
                events.append(event)
            event["end_s"] = r.end_s
            event["_scores"].append(scores[label])
        last = r
    for event in events:
        scores = event.pop("_scores")
        event["score"] = round(sum(scores) / len(scores), 4)
        event["start_s"], event["end_s"] = round(event["start_s"], 3), round(event["end_s"], 3)
    events.sort(key=lambda e: (e["start_s"], -e["score"], e["label"]))
    return events


def seconds_by(spans: Sequence[dict[str, Any]]) -> dict[str, float]:
    out: Counter[str] = Counter()
    for s in spans:
        out[s["label"]] += s["end_s"] - s["start_s"]
    return {label: round(seconds, 3) for label, seconds in out.most_common()}


class SpeechEmotionAnalyzer(_AudioClassAnalyzer):
    """Speech emotion per voiced chunk; smoothed emotion spans per video."""

    name = "speech_emotion"
    section = "speech_emotion"
    defaults = AudioClassifierSettings()

    @classmethod
    def video_summary(cls, results: list[ItemResult]) -> dict[str, Any] | None:
        classified = [r for r in results if r.payload.get("labels")]
        if not classified:
            return None
        spans = emotion_spans(results)
        seconds = seconds_by(spans)
        return {
            "dominant": next(iter(seconds)),
            "seconds": seconds,
            "spans": spans[:MAX_SPANS],
            "classified_chunks": len(classified),
            "smoothing_chunks": 2 * SMOOTH_RADIUS + 1,
        }


class SoundEventsAnalyzer(_AudioClassAnalyzer):
    """Sound-event labels per chunk; events (applause, laughter, music, ...) per video."""

    name = "sound_events"
    section = "sound_events"
    defaults = SoundEventSettings()

    @classmethod
    def video_summary(cls, results: list[ItemResult]) -> dict[str, Any] | None:
        classified = [r for r in results if r.payload.get("labels")]
        if not classified:
            return None
        events = label_events(results)
        return {
            "events": events[:MAX_SPANS],
            "seconds": seconds_by(events),
            "top_labels": dict(Counter(r.payload["top"] for r in classified).most_common(10)),
            "classified_chunks": len(classified),
        }
