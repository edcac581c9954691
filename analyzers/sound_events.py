"""Sound events per 1 s audio chunk: a transformers audio-classification model (common/audio_classifier.py).

The model is named by a local directory or a model id already in the local Hugging Face cache (never
downloaded); none is configured by default, so `auto` leaves it out. A real one:
`MIT/ast-finetuned-audioset-10-10-0.4593` (AudioSet's 527 classes: applause, laughter, music, ...).

AudioSet taggers are multi-label (speech over music), so scores are sigmoids by default and each label
above `min_score` is `active`; `video_summary` merges consecutive chunks where a label is active into
events. The AST feature extractor pads every input to its fixed 10.24 s frame, so a 1 s chunk costs as
much as a 10 s one.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from reelscope.analyzers.base import ItemResult
from reelscope.analyzers.common.audio_classifier import (
    MAX_SPANS,
    AudioClassifier,
    AudioClassifierOptions,
    adjacent,
    seconds_by,
)


class SoundEventsOptions(AudioClassifierOptions):
    """Sound events (REELSCOPE_SOUND_EVENTS__*): multi-label AudioSet taggers, so sigmoid scores."""

    activation: Literal["auto", "softmax", "sigmoid"] = "sigmoid"
    min_rms_dbfs: float = -70.0


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


class SoundEventsAnalyzer(AudioClassifier):
    """Sound-event labels per chunk; events (applause, laughter, music, ...) per video."""

    name = "sound_events"
    options_model = SoundEventsOptions
    options: SoundEventsOptions

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
