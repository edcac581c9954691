"""Transcription's economy mode on the real stack: three videos of speech pushed at once through a speech
group that is behind. Every chunk is transcribed (none shed), the windows taken behind say economy, the
documents state it, the words are still the words, and every video is complete."""

from __future__ import annotations

import asyncio
import difflib
from pathlib import Path
from typing import Any

import pytest
from reelscope.infra.core.ingest import request_for_path
from reelscope.infra.stack import down, up

from tests.media import textured, write_video
from tests.reliability.test_faults import stored_counts
from tests.test_pipeline import _push, wait_done
from tests.test_pipeline_audio import TEXT, speech, words_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_speech_group_behind_transcribes_every_chunk_in_economy_and_says_so(
    env_settings: Any, tmp_path: Path
) -> None:
    audio = speech(tmp_path)
    fps = 5
    frames = int(len(audio) / 48_000 * fps)
    clip = write_video(tmp_path / "talk.mp4", frames, fps, lambda i: textured(96, 160, 3, i), audio=audio)
    settings = env_settings(
        REELSCOPE_ANALYZERS='["loudness", "transcription"]',
        REELSCOPE_AGGREGATOR__COMPLETION_TIMEOUT_S="240",
        REELSCOPE_BATCH__SHED_ABOVE_S="0.3",  # behind as soon as anything waits: three videos at once are
        REELSCOPE_BATCH__SHED_BELOW_S="0.05",
        REELSCOPE_BATCH__MAX_STRIDE="4",  # conftest turns shedding off (1) for exact results elsewhere
        REELSCOPE_BATCH__FIRST_S="1.0",
    )
    ids = [f"talk{i}" for i in range(3)]
    up(settings, timeout_s=120)
    try:
        asyncio.run(_push(settings, [request_for_path(str(clip), video_id=v) for v in ids]))
        docs = {v: wait_done(settings, v, timeout_s=420) for v in ids}
    finally:
        down(settings)
    reference = words_of(TEXT)
    economical = []
    for v, doc in docs.items():
        assert doc["status"] == "complete", (doc["analyzers"], doc["warnings"])
        counts, _ = stored_counts(settings, v)
        assert counts == {name: state["expected"] for name, state in doc["analyzers"].items()}  # no gap
        state = doc["analyzers"]["transcription"]
        assert "shed" not in state  # transcription skips nothing: it needs every chunk
        transcript = doc["transcript"]
        got = words_of(" ".join(w["word"] for w in transcript["words"]))
        assert difflib.SequenceMatcher(a=reference, b=got).ratio() > 0.8, got
        if "economy" in state:
            economical.append(v)
            assert state["economy"]["max_stride"] in (2, 4) and state["economy"]["results"] >= 1
            assert any(n.startswith("transcription: ") and "economy mode" in n for n in doc["notes"])
            assert len(transcript["economy_windows"]) == state["economy"]["results"]
        else:
            assert "economy_windows" not in transcript
    assert economical, "the speech group was behind and transcribed nothing in economy mode"
