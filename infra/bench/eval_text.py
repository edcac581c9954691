"""Text aspects of `reelscope eval`: transcript word error rate and hot words (../shared/media's truth),
on-screen text on the generated sample clip, and topics that abstain without evidence."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

from reelscope.analyzers.ocr_text import MIN_EVENT_CONFIDENCE
from reelscope.analyzers.registry import all_analyzers, is_configured
from reelscope.infra.bench.scorecard import SHARED_MEDIA, Score, document
from reelscope.infra.core.settings import Settings
from reelscope.infra.sample_media import sample_clip
from reelscope.sinks.about import about

MAX_WER = 0.10
CHANNEL_TRUTH = {
    "ch0": "He began a confused complaint against the wizard, who had vanished behind the curtain on the left.",
    "ch1": "The horizon seems extremely distant.",
}
"""stereo_diarization.wav, one speaker per channel (../shared/media/README)."""
HOT_WORD = "ComfyUI"
"""Said in hotwords.mp3; only recognised reliably when offered as a hot word."""
ECONOMY_STRIDE = 4
"""Transcription's deepest economy: one language per window and greedy decoding."""
SAMPLE_FPS = 30
COOKING = (
    "Today I'm making a creamy tomato soup. First, roast the tomatoes with garlic and onions in the oven, "
    "then blend them with vegetable stock and fresh basil, add a splash of cream and season with salt."
)
"""A one-topic text: the control that keeps abstention from passing by never answering."""


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level edit distance over the reference's length."""
    ref, hyp = _words(reference), _words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(1, len(ref))


def transcription_ready() -> bool:
    cls = all_analyzers()["transcription"]
    return cls.available() and is_configured(cls, Settings())


def channel_wer(economy: int) -> tuple[dict[str, float], int]:
    """WER per channel of stereo_diarization.wav, its chunks handed over as taken at stride `economy`, and
    how many of its windows the transcript says were transcribed in economy mode."""
    transcript = document(SHARED_MEDIA / "stereo_diarization.wav", ["transcription"], economy=economy)
    speakers = transcript["transcript"]["speakers"]
    rates = {ch: round(wer(truth, speakers.get(ch, "")), 3) for ch, truth in CHANNEL_TRUTH.items()}
    return rates, len(transcript["transcript"].get("economy_windows", []))


def score_transcript(folder: Path) -> list[Score]:
    """Per-channel WER on stereo_diarization.wav, and the hot word found in hotwords.mp3 when offered."""
    if not (SHARED_MEDIA / "stereo_diarization.wav").is_file() or not transcription_ready():
        return [Score("transcript WER, hot words", "pending", "needs ../shared/media and a model", None, {})]
    rates, _ = channel_wer(1)
    worst = max(rates.values())
    cheap, windows = channel_wer(ECONOMY_STRIDE)
    transcript = document(SHARED_MEDIA / "hotwords.mp3", ["transcription"], (HOT_WORD,))["transcript"]
    heard = transcript["delivery"]["hot_words"].get(HOT_WORD, [])
    return [
        Score(
            "transcript WER per channel", f"worst {worst:.0%}", f"≤ {MAX_WER:.0%}", worst <= MAX_WER, rates
        ),
        Score(
            f"transcript WER per channel in economy mode (a speech group behind, stride {ECONOMY_STRIDE})",
            f"worst {max(cheap.values()):.0%}",
            f"≤ {MAX_WER:.0%}",
            max(cheap.values()) <= MAX_WER and windows > 0,
            {"wer": cheap, "economy_windows": windows},
        ),
        Score(
            f"hot word {HOT_WORD!r} heard when offered",
            f"{len(heard)} times",
            "≥ 1",
            bool(heard),
            {"text": transcript["text"]},
        ),
    ]


def _ocr_ready() -> bool:
    return importlib.util.find_spec("rapidocr_onnxruntime") is not None


def sample_captions() -> list[tuple[float, str]]:
    """(time, caption) at each 0.5 s OCR sample of the generated sample clip: `frame N` on every frame."""
    return [(k / 2, f"frame {k * SAMPLE_FPS // 2}") for k in range(12)]


def score_screen_text(folder: Path) -> list[Score]:
    """Each caption of the sample clip found with its time, no distinct line lost, nothing faint kept."""
    if not _ocr_ready():
        return [Score("on-screen text", "pending", "needs the [vision] extra", None, {})]
    doc = document(sample_clip(folder / "sample.mp4"), ["ocr_text"])
    events = doc["summaries"]["ocr_text"]["events"]

    def found(t: float, caption: str) -> bool:
        squeezed = caption.replace(" ", "")
        return any(
            e["start_s"] <= t < e["end_s"] and e["text"].replace(" ", "").lower() == squeezed for e in events
        )

    truth = sample_captions()
    hits = sum(found(t, c) for t, c in truth)
    faint = [e["text"] for e in events if e["conf"] < MIN_EVENT_CONFIDENCE]
    distinct = len({e["text"].replace(" ", "").lower() for e in events})
    detail: dict[str, Any] = {"events": [(e["text"], e["start_s"], e["end_s"], e["conf"]) for e in events]}
    return [
        Score(
            "on-screen text: each caption with its time (sample clip)",
            f"{hits}/{len(truth)}",
            f"{len(truth)}/{len(truth)}",
            hits == len(truth),
            detail,
        ),
        Score(
            "on-screen text: distinct lines kept apart",
            f"{distinct} lines",
            f"{len(truth)} lines",
            distinct == len(truth),
            {},
        ),
        Score(
            f"on-screen text: events under confidence {MIN_EVENT_CONFIDENCE}",
            str(len(faint)),
            "0",
            not faint,
            {"faint": faint},
        ),
    ]


def _spoken(text: str) -> dict[str, Any]:
    words = [{"word": w, "start_s": i * 0.4, "end_s": i * 0.4 + 0.3} for i, w in enumerate(text.split())]
    return {"text": text, "language": "en", "words": words, "segments": []}


def score_topics(folder: Path) -> list[Score]:
    """No topic on a clip without evidence (counter.mp4's and the sample clip's on-screen text); the
    cooking text's topic is still found (the control)."""
    cases: dict[str, tuple[dict[str, Any] | None, list[dict[str, Any]], set[str]]] = {
        "cooking speech (control)": (_spoken(COOKING), [], {"cooking"})
    }
    if _ocr_ready():
        sample = document(sample_clip(folder / "sample.mp4"), ["ocr_text"])
        cases["sample clip's on-screen text"] = (None, sample["text_events"], set())
        if (SHARED_MEDIA / "counter.mp4").is_file():
            counter = document(SHARED_MEDIA / "counter.mp4", ["ocr_text"])
            cases["counter.mp4's on-screen text"] = (None, counter["text_events"], set())
    right, detail = 0, {}
    for name, (transcript, events, want) in cases.items():
        got = {t["label"] for t in about(transcript, events, {})["topics"]}
        right += got == want
        detail[name] = sorted(got)
    return [
        Score(
            "topics: none without evidence, the right one with it",
            f"{right}/{len(cases)} clips right",
            f"{len(cases)}/{len(cases)}",
            right == len(cases),
            detail,
        )
    ]
