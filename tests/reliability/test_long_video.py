"""A 5-minute video on a stack that already did other work completes with every analyzer's count met.

Processors once measured a stream's age from its first item and dropped streams older than the
completion timeout, so any video whose publishing took longer than that lost its audio tail and all its
captions. Here the timeout is short and the video long, so publishing outlasts the timeout several times.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import pytest
from reelscope.infra.core.ingest import request_for_path
from reelscope.infra.sample_media import looped_clip

from tests.conftest import stack_env, stack_running
from tests.media import cut_clip, tone, write_video
from tests.test_pipeline import _push, wait_done

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TIMEOUT_S = 2
ANALYZERS = '["color", "loudness", "audio_features", "transcription", "captions"]'


def _seconds(doc: dict, start: str, end: str) -> float:
    t = doc["timings"]
    return (datetime.fromisoformat(t[end]) - datetime.fromisoformat(t[start])).total_seconds()


@pytest.mark.timeout(900)
def test_five_minute_video_after_other_work_completes(broker: str, tmp_path: Path) -> None:
    long = looped_clip(tmp_path / "long.mp4", 300, size=(360, 640))
    short = cut_clip(tmp_path / "short.mp4", frames=100)
    voice = write_video(tmp_path / "voice.m4a", 0, 10, None, audio=tone(3.0))
    env = stack_env(
        broker,
        tmp_path / "state",
        REELSCOPE_ANALYZERS=ANALYZERS,
        REELSCOPE_AGGREGATOR__COMPLETION_TIMEOUT_S=str(TIMEOUT_S),
    )
    with stack_running(env) as settings:
        earlier = [
            request_for_path(str(path), video_id=name)
            for path, name in ((short, "earlier-clip"), (voice, "earlier-voice"), (short, "earlier-again"))
        ]
        asyncio.run(_push(settings, earlier))
        for request in earlier:
            wait_done(settings, request.video_id, timeout_s=120)
        asyncio.run(_push(settings, [request_for_path(str(long), video_id="five-minutes")]))
        doc = wait_done(settings, "five-minutes", timeout_s=600)
    # the test means something only if publishing outlasted the completion timeout
    assert _seconds(doc, "started_at", "published_at") > 2 * TIMEOUT_S
    counts = {name: (a["received"], a["expected"]) for name, a in doc["analyzers"].items()}
    assert all(a["state"] == "complete" for a in doc["analyzers"].values()), (counts, doc["warnings"])
    assert counts["loudness"][1] >= 300 and counts["captions"][1] >= 2
    assert doc["status"] == "complete" and doc["warnings"] == []
    assert 299 <= doc["duration_s"] - doc["start_s"] <= 301
