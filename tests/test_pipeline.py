"""End to end through real processes: Tansu broker, serve (ingest + aggregator + API, chdb), processor groups."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from reelscope.infra.cli import fetch
from reelscope.infra.core.ingest import push, request_for_path
from reelscope.infra.core.kafka import make_producer
from reelscope.infra.core.settings import Settings
from reelscope.infra.stack import down, up
from reelscope.schemas.events import DeadLetter, Reconstruction, decode
from reelscope.sinks.store import Store

from tests.media import cut_clip
from tests.test_active_speaker import assert_off_screen, still_with_speech
from tests.test_schemas import assert_valid_document

pytestmark = pytest.mark.integration


async def _push(settings: Settings, requests: list[Any]) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        for request in requests:
            await push(producer, settings, request)
    finally:
        await producer.stop()


def wait_done(settings: Settings, video_id: str, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    status = None
    while time.monotonic() < deadline:
        try:
            status = fetch(settings, f"/videos/{video_id}")
            if status and status["status"] in ("complete", "degraded", "failed"):
                doc = fetch(settings, f"/videos/{video_id}/reconstruction")
                if doc is not None:
                    return doc
        except OSError:  # the API's process is restarting
            pass
        time.sleep(0.2)
    raise AssertionError(f"{video_id} did not finish within {timeout_s} s: {status}")


async def read_topic(settings: Settings, topic: str, until: Any, timeout_s: float = 30) -> list[Any]:
    """Events from the start of a topic until `until(events)` holds."""
    consumer = AIOKafkaConsumer(
        topic,
        **settings.kafka.client_kwargs(),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    events: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not until(events):
            batch = await consumer.getmany(timeout_ms=500)
            events += [decode(r.value) for part in batch.values() for r in part]
    finally:
        await consumer.stop()
    return events


def test_cut_silence_and_late_start(running_stack: Settings, tmp_path: Path, shared_media: Path) -> None:
    settings = running_stack
    clip = cut_clip(tmp_path / "cut.mp4", cut_frame=30, frames=60, fps=25, tone_s=1.0, silence_s=1.4)
    cut_req = request_for_path(str(clip), metadata={"creator": "@me", "caption": "before | after"})
    late_req = request_for_path(str(shared_media / "delayed_start.mp4"))
    asyncio.run(_push(settings, [cut_req, late_req]))

    doc = wait_done(settings, cut_req.video_id)
    assert doc["status"] == "complete", doc["analyzers"]
    assert_valid_document(doc)
    assert doc["metadata"] == {"creator": "@me", "caption": "before | after"}  # exactly what was sent
    assert doc["timings"]["submitted_at"] and doc["media"]["has_audio"] and doc["media"]["width"] == 320
    assert [round(c["time_s"], 2) for c in doc["cuts"]] == [1.2]  # frame 30 at 25 fps
    assert next((s["start_s"], s["end_s"]) for s in doc["shots"]) == (0.0, 1.2)
    silences = doc["summaries"]["loudness"]["silences"]
    assert len(silences) == 1 and 0.9 <= silences[0]["start_s"] <= 1.1, silences
    assert doc["segments"][0]["loudness"]["silent_share"] == 0.0
    assert doc["segments"][-1]["loudness"]["silent_share"] == 1.0
    assert all(a["state"] == "complete" for a in doc["analyzers"].values())

    late = wait_done(settings, late_req.video_id)
    assert_valid_document(late)
    assert late["start_s"] == pytest.approx(1.075, abs=1e-3)
    assert late["shots"][0]["start_s"] == pytest.approx(1.075, abs=1e-3)
    # no audio track: nothing was lost, so complete, with the absent stream stated
    assert late["status"] == "complete" and late["absent_streams"] == ["audio"] and not late["warnings"]
    assert late["analyzers"]["loudness"]["state"] == "not_applicable"


def test_a_still_photo_with_speech_is_an_off_screen_voice(running_stack: Settings, tmp_path: Path) -> None:
    request = request_for_path(str(still_with_speech(tmp_path)), video_id="still")
    asyncio.run(_push(running_stack, [request]))
    doc = wait_done(running_stack, "still", timeout_s=240)
    assert doc["status"] == "complete", doc["analyzers"]
    assert_off_screen(doc)


def test_corrupt_video_fails_while_another_completes(running_stack: Settings, tmp_path: Path) -> None:
    settings = running_stack
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    good = cut_clip(tmp_path / "good.mp4", frames=40)
    bad_req, good_req = request_for_path(str(bad)), request_for_path(str(good))
    asyncio.run(_push(settings, [bad_req, good_req]))
    failed = wait_done(settings, bad_req.video_id)
    assert failed["status"] == "failed"
    assert "not a readable video" in failed["error"]
    assert wait_done(settings, good_req.video_id)["status"] == "complete"


def test_reconstruction_is_published_and_malformed_event_dead_lettered(
    running_stack: Settings, tmp_path: Path
) -> None:
    settings = running_stack
    clip = cut_clip(tmp_path / "pub.mp4", frames=30)
    request = request_for_path(str(clip))

    async def scenario() -> tuple[list[Any], list[Any]]:
        producer = AIOKafkaProducer(**settings.kafka.client_kwargs())
        await producer.start()
        await producer.send_and_wait(settings.topics.frames, b"\x93not-an-event", key=b"poison")
        await producer.send_and_wait(settings.topics.results, b"garbage", key=b"poison")
        await producer.stop()
        await _push(settings, [request])
        recon = await read_topic(
            settings,
            settings.topics.reconstructions,
            lambda evs: any(e.video_id == request.video_id for e in evs),
            timeout_s=90,
        )
        shots = await read_topic(
            settings,
            settings.topics.part("shots"),
            lambda evs: any(e.video_id == request.video_id for e in evs),
        )
        letters = await read_topic(
            settings,
            settings.topics.dead_letter,
            lambda evs: {e.source_topic for e in evs} >= {settings.topics.frames, settings.topics.results},
        )
        return recon, letters, shots

    recon, letters, shots = asyncio.run(scenario())
    part = next(e for e in shots if e.video_id == request.video_id)
    assert part.part == "shots" and json.loads(part.document)[0]["start_s"] == 0.0
    mine = [e for e in recon if isinstance(e, Reconstruction) and e.video_id == request.video_id]
    assert mine and json.loads(mine[0].document)["video_id"] == request.video_id
    by_topic = {e.source_topic: e for e in letters if isinstance(e, DeadLetter)}
    assert by_topic[settings.topics.frames].original == b"\x93not-an-event"
    assert (
        "MessagePack" in by_topic[settings.topics.frames].error
        or "kind" in by_topic[settings.topics.frames].error
    )
    assert by_topic[settings.topics.results].consumer == "aggregator"
    # the processors kept going: the video after the poison event completed
    assert json.loads(mine[0].document)["status"] == "complete"


def test_duplicate_ingest_writes_no_duplicate_rows(env_settings: Any, tmp_path: Path) -> None:
    settings = env_settings()
    clip = cut_clip(tmp_path / "dup.mp4", frames=40)
    request = request_for_path(str(clip), video_id="dup-video")
    up(settings, timeout_s=120)
    try:
        asyncio.run(_push(settings, [request]))
        first = wait_done(settings, "dup-video")
        # the same video id submitted again (a new request: the same one delivered again is not re-run,
        # tests/reliability/test_redelivery.py): processed again and finished again, two reconstructions
        asyncio.run(_push(settings, [request.model_copy(update={"submitted_at": time.time()})]))
        recon = asyncio.run(
            read_topic(
                settings,
                settings.topics.reconstructions,
                lambda evs: sum(e.video_id == "dup-video" for e in evs) >= 2,
                90,
            )
        )
        assert sum(e.video_id == "dup-video" for e in recon) >= 2
        second = wait_done(settings, "dup-video")
    finally:
        down(settings)
    assert first["status"] == second["status"] == "complete"
    expected = sum(first["analyzers"][a]["expected"] for a in first["analyzers"])
    store = Store(settings)  # the stack is down, so this process may open the embedded database
    try:
        total_raw = store.scalar(f"SELECT count() FROM {store.db}.results WHERE video_id = 'dup-video'")
        final = store.scalar(f"SELECT count() FROM {store.db}.results FINAL WHERE video_id = 'dup-video'")
        segments = store.scalar(f"SELECT count() FROM {store.db}.segments FINAL WHERE video_id = 'dup-video'")
        videos = store.scalar(f"SELECT count() FROM {store.db}.videos FINAL WHERE video_id = 'dup-video'")
        shot_rows = store.scalar(f"SELECT count() FROM {store.db}.shots FINAL WHERE video_id = 'dup-video'")
        per_minute = store.scalar(f"SELECT sum(results) FROM {store.db}.analyzer_minute")
    finally:
        store.close()
    assert total_raw >= expected  # both deliveries were written ...
    assert final == expected  # ... and each result exists once
    assert segments == len(first["segments"])
    assert videos == 1
    assert shot_rows == len(first["shots"]) == 2  # the clip's hard cut makes two shots
    assert per_minute >= expected  # the live aggregate counted every stored result


def test_every_process_exports_prometheus_metrics(running_stack: Settings, tmp_path: Path) -> None:
    import urllib.request

    from reelscope.infra.stack import run_dir

    settings = running_stack
    request = request_for_path(str(cut_clip(tmp_path / "m.mp4", frames=30)))
    asyncio.run(_push(settings, [request]))
    wait_done(settings, request.video_id)

    def scrape(address: str) -> str:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
            return response.read().decode()

    def scrape_serve() -> str:
        return scrape(f"{settings.api_host}:{settings.api_port}")

    serve = scrape_serve()
    assert 'reelscope_videos_finished_total{status="complete"}' in serve
    assert 'reelscope_events_in_total{component="aggregator"}' in serve
    groups = {p.stem: scrape(p.read_text()) for p in run_dir(settings).glob("group-*.metrics")}
    assert {"group-light-0", "group-audio-0", "group-speech-0"} <= groups.keys()
    assert 'reelscope_results_out_total{analyzer="scene",group="light"}' in groups["group-light-0"]
    assert "reelscope_result_latency_seconds_bucket" in groups["group-audio-0"]
    assert 'reelscope_results_out_total{analyzer="transcription",group="speech"}' in groups["group-speech-0"]
    assert 'reelscope_result_latency_seconds_count{group="speech"}' in groups["group-speech-0"]
    assert 'reelscope_results_out_total{analyzer="captions",group="describe"}' in groups["group-describe-0"]
    assert 'reelscope_result_latency_seconds_count{group="describe"}' in groups["group-describe-0"]
    # idle, every group has committed what was published (the describe group, which holds a video's frames
    # until its captions are out, too), and the gauge says so without anyone asking /stats
    lags: dict[str, str] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lags = dict(re.findall(r'reelscope_consumer_lag_events\{group="(\w+)"\} (\S+)', scrape_serve()))
        if "describe" in lags and all(float(v) == 0 for v in lags.values()):
            break
        time.sleep(1)
    assert "describe" in lags and all(float(v) == 0 for v in lags.values()), lags


def test_push_wait_prints_plain_progress_when_stdout_is_piped(
    running_stack: Settings, tmp_path: Path
) -> None:
    """`reelscope push --wait` into a pipe: the id and summary on stdout, one line per stage and per tenth of
    each analyzer's progress on stderr (rich would draw nothing there)."""
    import os
    import subprocess
    import sys

    clip = cut_clip(tmp_path / "piped.mp4", frames=30)
    run = subprocess.run(
        [sys.executable, "-m", "reelscope", "push", "--wait", "--timeout", "120", str(clip)],
        capture_output=True,
        text=True,
        env=dict(os.environ),  # the running stack's settings
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    video_id = run.stdout.splitlines()[0]
    assert f"{clip}:" in run.stdout and f"{video_id}: COMPLETE" in run.stdout, run.stdout
    progress = run.stderr.splitlines()
    assert f"{video_id}: complete" in progress, progress
    assert any(line.startswith(f"{video_id} scene: ") and line.endswith("(100%)") for line in progress), (
        progress
    )
