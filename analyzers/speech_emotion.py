"""Speech emotion per 1 s audio chunk: a transformers audio-classification model (common/audio_classifier.py).

The model is named by a local directory or a model id already in the local Hugging Face cache (never
downloaded); none is configured by default, so `auto` leaves it out. Examples of real models:
`superb/wav2vec2-base-superb-er` or `ehcalabres/wav2vec2-lg-xlsr-en-speech-emotion-recognition`.

Windows: emotion models are trained on 2-5 s utterances, chunks are 1 s. Each chunk is classified alone
(restart-safe, no per-video state), and `video_summary` smooths the scores over neighbouring voiced chunks
before cutting emotion spans, so one odd second does not make a span. A chunk below the loudness gate is
not classified (`silent: true`): an emotion read from silence would be invented. Only a loudness gate
stands between the model and music or noise; speech emotion on a music bed is the model's guess.
"""

from __future__ import annotations

from typing import Any

from reelscope.analyzers.base import ItemResult
from reelscope.analyzers.common.audio_classifier import (
    MAX_SPANS,
    AudioClassifier,
    AudioClassifierOptions,
    adjacent,
    mean_scores,
    seconds_by,
)

SMOOTH_RADIUS = 1
"""Emotion spans: each voiced chunk's scores are averaged with this many adjacent voiced chunks per side."""


class SpeechEmotionOptions(AudioClassifierOptions):
    """Speech emotion (REELSCOPE_SPEECH_EMOTION__*)."""


def emotion_spans(results: list[ItemResult], radius: int = SMOOTH_RADIUS) -> list[dict[str, Any]]:
    """Emotion spans: each classified chunk's scores averaged with up to `radius` adjacent classified chunks
    on each side (never across a silent or missing chunk), its best label taken, and runs of one label
    merged; a span's score is the mean smoothed score of its label."""
    runs: list[list[ItemResult]] = []
    for r in results:
        if not r.payload.get("labels"):
            continue
        if runs and adjacent(runs[-1][-1], r):
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


class SpeechEmotionAnalyzer(AudioClassifier):
    """Speech emotion per voiced chunk; smoothed emotion spans per video."""

    name = "speech_emotion"
    options_model = SpeechEmotionOptions
    options: SpeechEmotionOptions

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
