"""`reelscope loadtest`: N short videos pushed at once into the local stack.

Reports whether all completed, the wall time, each process's peak resident memory (sampled from /proc
every 0.25 s), how long the producer waited on backpressure, the largest consumer lag it saw, each
group's result latency p50/p95, the time to each video's first result (any analyzer, and every analyzer),
and the machine's load average (the machine may be shared: latency depends on it). The
producer's bound (`producer.max_lag_events`) is set low by default here so backpressure is exercised.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from reelscope.infra.core.settings import Settings
from reelscope.infra.sample_media import spoken, textured, tone, with_text, write_video


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


SENTENCES = (
    "Short videos are watched in the first seconds, so the hook comes first.",
    "Here is what happens next: the pasta goes in the pan and the sauce comes after.",
    "Everyone tastes it together, and the verdict is written on their faces.",
    "Follow for part two, where we try the same recipe with half the time.",
    "The trick is the timing: salt the water early and stir while it boils.",
)
"""Spoken by espeak-ng for `--audio speech`, rotated per video so no two clips say the same at once."""


def speech_track(seconds: float, video: int, rate: int = 48_000) -> np.ndarray:
    """`seconds` of espeak-ng speech, a different order of SENTENCES per video, 0.4 s between sentences."""
    out = np.zeros(int(seconds * rate), np.float32)
    at, k = 0, 0
    while at < out.size:
        sentence = SENTENCES[(video + k) % len(SENTENCES)]
        part = spoken(sentence, rate)[: out.size - at]
        out[at : at + part.size] = part
        at += part.size + int(0.4 * rate)
        k += 1
    return out


def make_clips(folder: Path, count: int, seconds: float, audio: str = "tone") -> list[Path]:
    """`count` distinct 360x640 15 fps clips: text over a panning texture, and a tone or speech."""
    fps = 15
    clips = []
    for i in range(count):
        path = folder / f"load_{audio}_{i:03d}.mp4"
        if not path.exists():
            write_video(
                path,
                int(seconds * fps),
                fps,
                lambda f, i=i: with_text(textured(360, 640, 10 + i, shift=f * 2), f"clip {i}"),
                audio=speech_track(seconds, i) if audio == "speech" else tone(seconds, freq=220 + 10 * i),
            )
        clips.append(path)
    return clips


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) a live process has used so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrape(address: str, name: str) -> float:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(name + " ") or line.startswith(name + "{")
    )


STAGES = {
    "video.started": "started",
    "frame": "first_media",
    "audio.chunk": "first_media",
    "result": "first_result",
}
"""Event kind -> the stage its first occurrence marks (broker timestamps, from the video's ingest request)."""


async def stage_times(settings: Settings) -> dict[str, dict[str, float]]:
    """Per video, seconds from its ingest request to its started event, its first frame or audio chunk,
    its first analyzer result and its finished event, all from broker timestamps (headers only, nothing
    decoded): where the time to a first result goes (publishing, or the groups)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    t = settings.topics
    consumer = AIOKafkaConsumer(**settings.kafka.client_kwargs(), group_id=None, enable_auto_commit=False)
    await consumer.start()
    first: dict[str, dict[str, float]] = {}
    try:
        await consumer.topics()  # the metadata of every topic, for their partitions
        parts = [
            TopicPartition(topic, p)
            for topic in (t.ingest, t.lifecycle, t.frames, t.audio, t.results)
            for p in consumer.partitions_for_topic(topic) or ()
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=1000, max_records=5000)).values():
                for r in records:
                    headers = {k: v.decode() for k, v in r.headers or ()}
                    kind, video = headers.get("event-kind"), headers.get("video-id")
                    if video is None or kind is None:
                        continue
                    stage = "pushed" if kind == "ingest" else STAGES.get(kind, kind.removeprefix("video."))
                    times = first.setdefault(video, {})
                    times[stage] = min(times.get(stage, r.timestamp), r.timestamp)
    finally:
        await consumer.stop()
    out = {}
    for video, times in sorted(first.items()):
        pushed = times.get("pushed")
        if pushed is not None:
            out[video] = {
                k: round((v - pushed) / 1000, 2)
                for k, v in sorted(times.items(), key=lambda kv: kv[1])
                if k in ("started", "first_media", "first_result", "finished")
            }
    return out


def watch_events(settings: Settings, paths: list[Path]) -> dict[str, Any]:
    """Push the videos and follow them on the API's live stream (`GET /events`, what the dashboard
    reads): seconds from the push until each analyzer of each video shows a result, and until each video
    is finished. One shared poller serves the stream; polling `GET /videos/{id}` per video instead (the
    `poll` watch) puts two store queries per video per tick on serve's one store thread, which the
    aggregator writes through."""
    from reelscope.infra.client import push_paths

    url = f"http://{settings.api_host}:{settings.api_port}/events"
    headers = {"Accept": "text/event-stream"}
    if settings.api_token is not None:
        headers["Authorization"] = f"Bearer {settings.api_token.get_secret_value()}"
    stream = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=600)
    ids: list[str] = []
    first: dict[str, dict[str, float]] = {}
    done: dict[str, float] = {}
    failed: list[str] = []
    t0 = time.perf_counter()

    def read() -> None:
        kind = ""
        for raw in stream:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind in ("progress", "complete"):
                state = json.loads(line[6:])
                at = time.perf_counter() - t0
                vid = state["video_id"]
                for name, progress in state.get("progress", {}).items():
                    if progress["received"]:
                        first.setdefault(vid, {}).setdefault(name, at)
                if kind == "complete":
                    done.setdefault(vid, at)
                    if state["status"] == "failed":
                        failed.append(vid)
                if ids and all(v in done for v in ids):
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    t0 = time.perf_counter()
    ids.extend(asyncio.run(push_paths(settings, [str(p) for p in paths], {})))
    reader.join()
    stream.close()
    assert not failed, failed
    firsts = [min(first[v].values()) for v in ids if first.get(v)]
    return {
        "seconds": max(done[v] for v in ids),
        "time_to_first_result_s": min(firsts, default=None),
        "videos": sum(v in done for v in ids),
        "first_result_per_video_s": [round(x, 2) for x in firsts],
        "every_analyzer_first_result_per_video_s": [
            round(max(first[v].values()), 2) for v in ids if first.get(v)
        ],
    }


def quantile(values: list[float], q: float) -> float | None:
    """The q-quantile of values (nearest rank); None for none."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))], 2)


async def segment_latency(settings: Settings) -> dict[str, dict[str, Any]]:
    """Per group and per analyzer: seconds from each analyzed input item's broker timestamp to its result's
    (its publish, after the batch was analyzed), from the topics themselves: exact quantiles, not the
    groups' histogram buckets (whose top finite bucket is 60 s). Shed results (stated, not analyzed) are
    left out, as the histogram leaves them out. An analyzer that holds items in windows (transcription's
    `buffered` results) is also split: `<name> windows`, the results that carry its findings (the words of
    a window come with the chunk that closed it), and `<name> buffered`."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from reelscope.analyzers.registry import groups
    from reelscope.schemas.events import SHED_KEY, AnalyzerResult, AudioChunk, Frame, decode
    from reelscope.stream_processors.runtime import item_key

    group_of = {c.name: g for g, classes in groups(settings.analyzers, settings).items() for c in classes}
    t = settings.topics
    consumer = AIOKafkaConsumer(**settings.kafka.client_kwargs(), group_id=None, enable_auto_commit=False)
    await consumer.start()
    published: dict[tuple[str, str], int] = {}
    results: list[tuple[AnalyzerResult, int]] = []
    try:
        await consumer.topics()
        parts = [
            TopicPartition(topic, p)
            for topic in (t.frames, t.audio, t.results)
            for p in consumer.partitions_for_topic(topic) or ()
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=1000, max_records=2000)).values():
                for r in records:
                    event = decode(r.value or b"")
                    if isinstance(event, (Frame, AudioChunk)):
                        published[(event.video_id, item_key(event))] = r.timestamp
                    elif isinstance(event, AnalyzerResult) and SHED_KEY not in event.payload:
                        results.append((event, r.timestamp))
    finally:
        await consumer.stop()
    by: dict[str, list[float]] = {}
    held: dict[str, dict[bool, list[float]]] = {}
    for result, at in results:
        sent = published.get((result.video_id, result.item_key))
        if sent is None or result.analyzer not in group_of:
            continue
        seconds = (at - sent) / 1000
        by.setdefault(f"group {group_of[result.analyzer]}", []).append(seconds)
        by.setdefault(result.analyzer, []).append(seconds)
        held.setdefault(result.analyzer, {True: [], False: []})[bool(result.payload.get("buffered"))].append(
            seconds
        )
    for name, split in held.items():
        if split[True]:
            by[f"{name} buffered"], by[f"{name} windows"] = split[True], split[False]
    return {
        name: {
            "p50_s": quantile(v, 0.5),
            "p95_s": quantile(v, 0.95),
            "max_s": quantile(v, 1.0),
            "results": len(v),
        }
        for name, v in sorted(by.items())
    }


def run_loadtest(settings: Settings, args: argparse.Namespace) -> int:
    from reelscope.infra.bench.pipeline import latency_quantiles, pipeline
    from reelscope.infra.stack import down, running, up

    work = Path(tempfile.mkdtemp(prefix="reelscope-load-"))
    clips = make_clips(work, args.videos, args.seconds, args.audio)
    os.environ["REELSCOPE_STATE_DIR"] = str(work / "state")
    os.environ["REELSCOPE_TOPICS__PREFIX"] = f"load{uuid.uuid4().hex[:6]}."
    os.environ.setdefault("REELSCOPE_PRODUCER__MAX_LAG_EVENTS", str(args.max_lag))
    stack = Settings()
    up(stack)
    peaks: dict[str, float] = {}
    cpu: dict[str, float] = {}
    lag_peak = [0.0]
    stop = threading.Event()
    api = f"{stack.api_host}:{stack.api_port}"

    def sample() -> None:
        while not stop.is_set():
            for name, pid in running(stack).items():
                peaks[name] = max(peaks.get(name, 0.0), rss_mib(pid))
                cpu[name] = max(cpu.get(name, 0.0), cpu_s(pid))
            with contextlib.suppress(OSError):
                lag_peak[0] = max(lag_peak[0], scrape(api, "reelscope_consumer_lag_events"))
            time.sleep(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    load_before = os.getloadavg()
    # start-up (model loading) is left out: the CPU figures are the videos' cost
    cpu_at_push = {name: cpu_s(pid) for name, pid in running(stack).items()}
    try:
        watch = getattr(args, "watch", "poll")
        result = watch_events(stack, clips) if watch == "events" else pipeline(clips, stack)
        waited = scrape(api, "reelscope_backpressure_seconds_total")
        latency = latency_quantiles(stack)
        try:
            stages = asyncio.run(stage_times(stack))
        except Exception as exc:  # a figure of the report, not the run's outcome
            stages = {"error": str(exc)}
        try:
            segments = asyncio.run(segment_latency(stack))
        except Exception as exc:
            segments = {"error": str(exc)}
    finally:
        stop.set()
        sampler.join()
        down(stack)
    report: dict[str, Any] = {
        "command": f"reelscope loadtest --videos {args.videos} --seconds {args.seconds} --max-lag {args.max_lag}"
        f" --watch {watch} --audio {args.audio}",
        "watch": watch,
        "audio": args.audio,
        "videos": args.videos,
        "video_seconds": args.seconds,
        "all_complete": result["videos"] == args.videos,
        "wall_s": round(result["seconds"], 1),
        "aggregate_time_factor": round(result["seconds"] / (args.videos * args.seconds), 3),
        "peak_rss_mib": {k: round(v) for k, v in sorted(peaks.items())},
        "cpu_s_since_push": {k: round(v - cpu_at_push.get(k, 0.0), 1) for k, v in sorted(cpu.items())},
        "cpu_s_since_push_total": round(sum(v - cpu_at_push.get(k, 0.0) for k, v in cpu.items()), 1),
        "producer_backpressure_wait_s": round(waited, 1),
        "max_consumer_lag_events_seen": int(lag_peak[0]),
        "result_latency": latency,
        "result_latency_from_topics": segments,
        "time_to_first_result_s": result["time_to_first_result_s"],
        "first_result_per_video_s": result["first_result_per_video_s"],
        "every_analyzer_first_result_per_video_s": result["every_analyzer_first_result_per_video_s"],
        "stages_from_push_s": stages,
        "scheduling": stack.batch.model_dump(),
        "producer": stack.producer.model_dump(),
        "load_average_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "analyzers": sorted(json.loads(os.environ.get("REELSCOPE_ANALYZERS", '["auto"]'))),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0 if report["all_complete"] else 1
