"""Speech through the whole pipeline: espeak-ng speech inside a video, transcribed as a stream."""

from __future__ import annotations

import asyncio
import difflib
import itertools
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reelscope.infra.core.ingest import request_for_path
from reelscope.infra.stack import down, up
from reelscope.sinks.store import Store

from tests.media import spoken, textured, write_video
from tests.test_pipeline import _push, wait_done

pytestmark = pytest.mark.integration

TEXT = (
    "Welcome back to the channel. Today we are cooking a simple tomato soup. First chop two onions and "
    "three cloves of garlic. Warm some olive oil in a large pot and add the onions. Stir them for five "
    "minutes until they are soft and golden. Then add the garlic, the tomatoes and a little salt. "
    "Let everything simmer for twenty minutes, blend it smooth, and serve it with fresh bread."
)
LEAD_S = 1.3


def speech(tmp_path: Path) -> np.ndarray:
    """espeak-ng speech as float32 mono at 48 kHz, after LEAD_S seconds of silence."""
    return np.concatenate([np.zeros(int(LEAD_S * 48_000), np.float32), spoken(tmp_path, TEXT)])


def words_of(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def test_streamed_transcript_words_once_on_the_video_clock(env_settings: Any, tmp_path: Path) -> None:
    audio = speech(tmp_path)
    seconds = len(audio) / 48_000
    assert seconds > 22  # long enough to cross a 20 s window seam
    fps = 10
    clip = write_video(
        tmp_path / "talk.mp4", int(seconds * fps), fps, lambda i: textured(160, 284, 3, i), audio=audio
    )
    # Whisper base (the default) on two shared cores can take a minute for the last window: the completion
    # timeout must not call the video partial while its final chunk is being transcribed
    settings = env_settings(
        REELSCOPE_ANALYZERS='["loudness", "transcription"]', REELSCOPE_AGGREGATOR__COMPLETION_TIMEOUT_S="240"
    )
    request = request_for_path(str(clip), video_id="talk")
    up(settings, timeout_s=120)
    try:
        asyncio.run(_push(settings, [request]))
        doc = wait_done(settings, "talk", timeout_s=360)
    finally:
        down(settings)
    assert doc["status"] == "complete", doc["analyzers"]
    transcript = doc["transcript"]
    assert (transcript["language"], transcript["language_detected"]) == ("en", True)  # multilingual base
    assert [span["language"] for span in transcript["languages"]] == ["en"]
    got = [w["word"] for w in transcript["words"]]
    reference = words_of(TEXT)
    # every word once: no seam duplicated or dropped a run of words (Whisper base mishears a few words)
    matcher = difflib.SequenceMatcher(a=reference, b=words_of(" ".join(got)))
    assert matcher.ratio() > 0.8, (reference, got)
    for a, b in itertools.pairwise(got):
        assert a != b, f"duplicated word at a seam: {a}"
    starts = [w["start_s"] for w in transcript["words"]]
    assert starts == sorted(starts)
    assert LEAD_S - 0.6 <= starts[0] <= LEAD_S + 0.8  # on the video clock, after the leading silence
    assert starts[-1] <= seconds
    # per-second timeline: words sit in the seconds they were spoken
    spoken = [s for s in doc["segments"] if s.get("transcription", {}).get("word_count")]
    assert spoken and spoken[0]["start_s"] >= 0.0 and spoken[0]["index"] in (0, 1)
    assert sum(s["transcription"]["word_count"] for s in spoken) == len(got)
    # word rows are queryable in ClickHouse
    store = Store(settings)
    try:
        rows = store.words("talk")
    finally:
        store.close()
    assert [r["word"] for r in rows] == got
