"""The broker is kill -9'd (memory storage: it comes back empty): the supervisor restarts it, serve recreates
the topics and re-ingests what was unfinished, queued videos included; a video that cannot be re-ingested
fails with the reason. And `up` itself: a port held by something that is not a broker, and a failed `up`
that stops only what it started."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from reelscope.infra.bench.chaos import chaos_env, submit
from reelscope.infra.broker import create_topics, free_port
from reelscope.infra.client import push_paths
from reelscope.infra.core.kafka import make_producer
from reelscope.infra.core.settings import Settings
from reelscope.infra.sample_media import cut_clip
from reelscope.infra.stack import down, running, up
from reelscope.schemas.events import IngestRequest, VideoFailed
from reelscope.sinks.aggregator import empty_video
from reelscope.sinks.recovery import BROKER_LOST, MAX_REINGESTS, Journal, reingest_unfinished
from reelscope.sinks.store import Store

from tests.reliability.test_faults import stored_counts, wait_progress
from tests.test_pipeline import read_topic, wait_done

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(600)
def test_broker_killed_mid_video_is_restarted_and_unfinished_videos_are_reingested(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in chaos_env(tmp_path / "state").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("REELSCOPE_ANALYZERS", '["scene", "color"]')
    settings = Settings()
    long = cut_clip(tmp_path / "long.mp4", cut_frame=200, frames=400, size=(160, 90))
    short = cut_clip(tmp_path / "short.mp4", cut_frame=20, frames=50, size=(160, 90))
    up(settings, timeout_s=180, supervise=True)
    try:
        submit(settings, long.as_uri(), "inflight")
        # pushed as `reelscope push` does (straight to the ingest topic, journalled beside the local serve);
        # it waits on the ingest topic behind the long one
        (queued,) = asyncio.run(push_paths(settings, [str(short)], {}))
        seen = wait_progress(settings, "inflight", "scene", 20, timeout_s=120)
        os.kill(running(settings)["broker"], signal.SIGKILL)
        docs = {v: wait_done(settings, v, timeout_s=300) for v in ("inflight", queued)}
        log = (settings.state_dir / "logs" / "supervisor.log").read_text()
    finally:
        down(settings)
    assert seen < 400, "the video was through before the broker died"
    assert "restarted broker" in log and BROKER_LOST in log  # no process was restarted by hand
    for video_id, doc in docs.items():
        counts, _ = stored_counts(settings, video_id)
        assert doc["status"] == "complete", (video_id, doc.get("error"), doc["analyzers"])
        assert counts == {name: s["expected"] for name, s in doc["analyzers"].items()}


def test_a_video_that_cannot_be_reingested_fails_with_the_reason(broker: str, tmp_path: Path) -> None:
    """Stored in flight with nothing to rebuild its request from, or re-ingested too often: failed with
    BROKER_LOST; one with a journalled request is re-published as it was accepted."""
    settings = Settings(
        kafka={"bootstrap_servers": broker},
        topics={"prefix": f"lost{os.getpid()}.", "partitions": 1},
        state_dir=tmp_path / "state",
    )
    store = Store(settings)
    journal = Journal(settings)

    async def scenario() -> tuple[list[str], list[str], list[Any], list[Any]]:
        await create_topics(settings)
        await store.call(store.create_tables)
        await store.call(store.upsert_video, empty_video("no-uri"))
        for video_id in ("again", "too-often"):
            journal.submitted(IngestRequest(video_id=video_id, uri="file:///x.mp4", submitted_at=1.0))
        for _ in range(MAX_REINGESTS):
            journal.reingested("too-often")
        producer = make_producer(settings)
        await producer.start()
        try:
            again, failed = await reingest_unfinished(settings, store, journal, producer)
        finally:
            await producer.stop()
        lifecycle = await read_topic(settings, settings.topics.lifecycle, lambda evs: len(evs) >= 2)
        ingest = await read_topic(settings, settings.topics.ingest, lambda evs: len(evs) >= 1)
        return again, failed, lifecycle, ingest

    try:
        again, failed, lifecycle, ingest = asyncio.run(scenario())
    finally:
        store.close()
    assert again == ["again"] and sorted(failed) == ["no-uri", "too-often"]
    assert {e.video_id for e in lifecycle} == {"no-uri", "too-often"}
    assert all(isinstance(e, VideoFailed) and e.reason.startswith(BROKER_LOST) for e in lifecycle)
    assert [(r.video_id, r.uri) for r in ingest] == [("again", "file:///x.mp4")]


def test_up_refuses_a_port_held_by_something_that_is_not_a_broker(tmp_path: Path) -> None:
    """A listener that accepts and never answers: `up` says so in one line within seconds, and starts
    nothing."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(8)
        port = squatter.getsockname()[1]
        accepted: list[socket.socket] = []
        threading.Thread(target=lambda: accepted.append(squatter.accept()[0]), daemon=True).start()
        settings = Settings(
            kafka={"bootstrap_servers": f"127.0.0.1:{port}"},
            state_dir=tmp_path / "state",
            api_port=free_port(),
        )
        t0 = time.monotonic()
        with pytest.raises(RuntimeError) as raised:
            up(settings, timeout_s=60)
        took = time.monotonic() - t0
    assert "not a Kafka broker" in str(raised.value) and "\n" not in str(raised.value)
    assert took < 15 and running(settings) == {}


def test_a_failed_up_stops_what_it_started(tmp_path: Path) -> None:
    """The API port is taken: `up` had started the broker already, and stops it again before raising."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        settings = Settings(
            kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}"},
            state_dir=tmp_path / "state",
            api_port=taken.getsockname()[1],
        )
        lines: list[str] = []
        with pytest.raises(RuntimeError, match="is taken by another program"):
            up(settings, timeout_s=60, say=lines.append)
    assert running(settings) == {}
    assert any(line.startswith("broker started") for line in lines)
    assert any("stopping what this call started: broker" in line for line in lines)
