"""Input confined by its content and bounded by the configuration, on the real stack: a playlist that
names a file outside the allowed roots, a still image named .mp4, an audio stream starting at 80,000 s and
a forged 2,000,000 s VideoStarted written straight onto the lifecycle topic each cost only themselves,
with a reason, while a good video pushed around them completes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from PIL import Image
from reelscope.infra.cli import fetch
from reelscope.infra.core.ingest import request_for_path
from reelscope.infra.core.kafka import make_producer, send_all
from reelscope.infra.core.settings import Settings
from reelscope.schemas.events import VideoFinished, VideoStarted
from reelscope.schemas.records import Media

from tests.conftest import stack_env, stack_running
from tests.media import cut_clip, late_audio, mpegts_copy, textured
from tests.test_pipeline import _push, wait_done

pytestmark = pytest.mark.integration

MAX_DURATION_S = 20


def playlist_escaping(root: Path, outside: Path) -> Path:
    """An HLS playlist inside `root` whose only segment is a clip (as MPEG-TS) outside it."""
    segment = mpegts_copy(cut_clip(outside / "secret.mp4", frames=50), outside / "secret.ts")
    playlist = root / "upload.m3u8"
    playlist.write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{segment.as_uri()}\n#EXT-X-ENDLIST\n"
    )
    return playlist


async def forge(settings: Settings, video_id: str) -> None:
    """A 100-byte claim of a 2,000,000 s video, then its end, with nothing in between."""
    producer = make_producer(settings)
    await producer.start()
    try:
        started = VideoStarted(
            video_id=video_id,
            uri="file:///forged.mp4",
            media=Media(duration_s=2e6, has_video=True),
            started_at=time.time(),
        )
        finished = VideoFinished(
            video_id=video_id, frames_published=0, chunks_published=0, finished_at=time.time()
        )
        await send_all(
            producer, [(settings.topics.lifecycle, started), (settings.topics.lifecycle, finished)]
        )
    finally:
        await producer.stop()


def test_hostile_inputs_cost_only_themselves(broker: str, tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    playlist = playlist_escaping(root, outside)
    image = root / "photo.mp4"
    Image.fromarray(textured(64, 48, 1)).save(image, format="PNG")
    audio = late_audio(root / "late.m4a", 80_000.0, 3.0)
    good = cut_clip(root / "good.mp4", frames=40)
    env = stack_env(
        broker,
        tmp_path / "state",
        REELSCOPE_ANALYZERS='["scene", "color", "loudness"]',
        REELSCOPE_PRODUCER__ALLOWED_ROOTS=f'["{root}"]',
        REELSCOPE_PRODUCER__MAX_DURATION_S=str(MAX_DURATION_S),
    )
    with stack_running(env) as settings:
        requests = [
            request_for_path(str(good), video_id="good-before"),
            request_for_path(str(playlist), video_id="playlist"),
            request_for_path(str(image), video_id="still-image"),
            request_for_path(str(audio), video_id="late-audio"),
        ]
        asyncio.run(_push(settings, requests))
        asyncio.run(forge(settings, "forged-length"))
        asyncio.run(_push(settings, [request_for_path(str(good), video_id="good-after")]))
        docs = {r: wait_done(settings, r, timeout_s=180) for r in ("playlist", "still-image", "late-audio")}
        docs["forged-length"] = wait_done(settings, "forged-length", timeout_s=180)
        for vid in ("good-before", "good-after"):
            assert wait_done(settings, vid, timeout_s=180)["status"] == "complete"
        segments = {vid: fetch(settings, f"/videos/{vid}/segments") for vid in docs}
    assert docs["playlist"]["status"] == "failed"
    assert "names other files" in docs["playlist"]["error"]
    assert segments["playlist"] == [] and not docs["playlist"]["shots"]  # nothing of the outside clip
    assert all(a["received"] == 0 for a in docs["playlist"]["analyzers"].values())
    assert docs["still-image"]["status"] == "failed" and "still image" in docs["still-image"]["error"]
    late = docs["late-audio"]
    assert late["status"] == "complete" and late["absent_streams"] == ["video"]  # audio only: nothing lost
    assert late["start_s"] == pytest.approx(80_000, abs=0.1)
    assert 3 <= len(segments["late-audio"]) <= 5 and len(late["segments"]) <= 5
    assert 0 < len(segments["forged-length"]) <= MAX_DURATION_S
