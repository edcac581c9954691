"""What speech_emotion and sound_events share: a transformers audio-classification model on each 1 s mix
chunk (AutoFeatureExtractor + AutoModelForAudioClassification through common/audio_model.py), top-k labels
per chunk, and the reductions their video summaries use.

Nothing is configured by default: then `configured()` is False and `auto` leaves them out. A chunk below
the loudness gate is not classified (`silent: true`): a label read from silence would be invented.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, Field
from reelscope.analyzers.base import AudioItem, ItemResult, Runtime
from reelscope.analyzers.common.audio_model import AudioModelAnalyzer, AudioModelOptions

MAX_SPANS = 200


class AudioClassifierOptions(AudioModelOptions):
    """A transformers audio classifier's options."""

    top_k: int = Field(default=5, ge=1, le=20)
    """Labels with scores kept per chunk."""
    activation: Literal["auto", "softmax", "sigmoid"] = "auto"
    """`auto`: sigmoid when the model's config says multi_label_classification, else softmax."""
    min_score: float = 0.3
    """A label at or above this score is `active` in its chunk."""


def scores_from_logits(logits: np.ndarray, activation: Literal["softmax", "sigmoid"]) -> np.ndarray:
    logits = logits.astype(np.float64)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


class AudioClassifier(AudioModelAnalyzer):
    """A transformers audio classifier on each mix chunk; subclasses name it and reduce it per video."""

    head = "classification"
    options_model: ClassVar[type[BaseModel] | None] = AudioClassifierOptions
    options: AudioClassifierOptions

    def __init__(self, options: AudioClassifierOptions | None = None, runtime: Runtime | None = None) -> None:
        super().__init__(options, runtime)
        self._labels: list[str] = []
        self._activation: Literal["softmax", "sigmoid"] = "softmax"

    def load(self) -> None:
        super().load()
        config = self._model.config
        self._labels = [str(config.id2label[i]) for i in range(config.num_labels)]
        activation = self.options.activation
        if activation == "auto":
            multi = getattr(config, "problem_type", None) == "multi_label_classification"
            activation = "sigmoid" if multi else "softmax"
        self._activation = activation

    def analyze(self, items: Sequence[AudioItem]) -> list[dict[str, Any]]:
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


def adjacent(a: ItemResult, b: ItemResult) -> bool:
    return b.start_s - a.end_s < 1e-3


def seconds_by(spans: Sequence[dict[str, Any]]) -> dict[str, float]:
    out: Counter[str] = Counter()
    for s in spans:
        out[s["label"]] += s["end_s"] - s["start_s"]
    return {label: round(seconds, 3) for label, seconds in out.most_common()}
