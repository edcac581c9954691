"""`reelscope bench`: time factors measured in one run on one machine.

- raw PyAV decode of the clip (every frame, no conversion) against the producer's event generation;
- in-process: the producer's events fed straight to the same analyzers in batches, then the reconstruction,
  no Kafka, no ClickHouse;
- pipeline: the same clip pushed through the real local stack (broker, processor groups, aggregator,
  ClickHouse), timed from push to reconstruction, with 1 and with N concurrent videos;
- per analyzer: items per second inside the in-process run.

Time factor = processing time / video duration (lower is better).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import av
from reelscope.analyzers.base import ShotItem
from reelscope.analyzers.registry import create, enabled_analyzers
from reelscope.infra.core.settings import Settings
from reelscope.infra.sample_media import cut_clip
from reelscope.producers.events import VideoEventSource
from reelscope.schemas.events import AudioChunk, Frame, VideoFinished, VideoStarted
from reelscope.schemas.records import TERMINAL, VideoStatus
from reelscope.sinks import reconstruction
from reelscope.stream_processors.runtime import BatchItems, item_key, item_span, to_item
from reelscope.stream_processors.shots import pick


def make_clip(path: Path, seconds: float, size: tuple[int, int], fps: int = 30) -> Path:
    frames = int(seconds * fps)
    if not path.exists():
        cut_clip(
            path,
            cut_frame=frames // 2,
            frames=frames,
            fps=fps,
            size=size,
            tone_s=seconds * 0.6,
            silence_s=seconds * 0.4,
        )
    return path


def raw_decode_s(path: Path) -> float:
    """Seconds to decode every frame (or, for audio-only files, every audio frame) with plain PyAV."""
    t0 = time.perf_counter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0] if container.streams.video else container.streams.audio[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            pass
    return time.perf_counter() - t0


def in_process(path: Path, settings: Settings) -> dict[str, Any]:
    """Producer events straight into the analyzers (batches of max_size), then the reconstruction."""
    classes = enabled_analyzers(settings.analyzers, settings)
    load_cpu = time.process_time()
    analyzers = {n: create(c, settings) for n, c in classes.items()}
    for a in analyzers.values():
        a.load()
    load_cpu = time.process_time() - load_cpu
    t0 = time.perf_counter()
    source = VideoEventSource(
        "bench", str(path), path.as_uri(), classes, settings.producer, settings.kafka.max_event_bytes
    )
    produce_s = 0.0
    per_analyzer_s: dict[str, float] = defaultdict(float)
    per_analyzer_cpu: dict[str, float] = defaultdict(float)
    """Process CPU seconds (every thread): the comparable figure on a shared, loaded machine."""
    per_analyzer_n: dict[str, int] = defaultdict(int)
    rows: list[dict[str, Any]] = []
    pending: list[Frame | AudioChunk] = []
    shot_frames: list[Frame] = []
    events = source.events()
    info: dict[str, Any] = {}

    def flush() -> None:
        items = BatchItems()
        for name, analyzer in analyzers.items():
            if analyzer.input == "shot":
                shot_frames.extend(ev for ev in pending if name in ev.targets and isinstance(ev, Frame))
                continue
            mine = [ev for ev in pending if name in ev.targets]
            if not mine:
                continue
            batch = items.batch(analyzer, mine)  # decoding and resizing count outside the analyzer
            t, cpu = time.perf_counter(), time.process_time()
            payloads = analyzer.analyze(batch)
            per_analyzer_s[name] += time.perf_counter() - t
            per_analyzer_cpu[name] += time.process_time() - cpu
            per_analyzer_n[name] += len(mine)
            for ev, payload in zip(mine, payloads, strict=True):
                start, end = item_span(ev)
                rows.append(
                    {
                        "analyzer": name,
                        "item_key": item_key(ev),
                        "model": "m",
                        "provenance": "algorithm",
                        "start_s": start,
                        "end_s": end,
                        "payload": json.dumps(payload),
                        "error": "",
                    }
                )
        pending.clear()

    while True:
        t = time.perf_counter()
        event = next(events, None)
        produce_s += time.perf_counter() - t
        if event is None:
            break
        if isinstance(event, Frame | AudioChunk):
            pending.append(event)
            if len(pending) >= settings.batch.max_size:
                flush()
        elif isinstance(event, VideoStarted):
            info = {**event.media.model_dump(), "uri": event.uri}
        elif isinstance(event, VideoFinished):
            info["expected"] = json.dumps(event.expected)
    flush()
    video = {**info, "video_id": "bench", "warnings": []}
    shot_analyzers = {n: a for n, a in analyzers.items() if a.input == "shot"}
    if shot_analyzers:  # the describe phase, as the aggregator and the shot processor do it
        doc = reconstruction.build(video, rows, classes, settings.aggregator.segment_s, None, False)
        for name, analyzer in shot_analyzers.items():
            k = getattr(analyzer, "frames_per_shot", 4)
            shots = []
            for shot in doc["shots"]:
                chosen = pick(shot_frames, shot["start_s"], shot["end_s"], k)
                shots.append(
                    ShotItem(
                        "bench",
                        shot["index"],
                        shot["start_s"],
                        shot["end_s"],
                        tuple(to_item(f).image for f in chosen),  # type: ignore[union-attr]
                        tuple(f.pts_s for f in chosen),
                        reconstruction.shot_context(doc, shot),
                    )
                )
            t, cpu = time.perf_counter(), time.process_time()
            payloads = analyzer.analyze(shots)
            per_analyzer_s[name] += time.perf_counter() - t
            per_analyzer_cpu[name] += time.process_time() - cpu
            per_analyzer_n[name] += len(shots)
            rows.extend(
                {
                    "analyzer": name,
                    "item_key": f"s{item.index:04d}",
                    "model": "m",
                    "provenance": "composed",
                    "start_s": item.start_s,
                    "end_s": item.end_s,
                    "payload": json.dumps(p),
                    "error": "",
                }
                for item, p in zip(shots, payloads, strict=True)
            )
    reconstruction.build(video, rows, classes, settings.aggregator.segment_s)
    total = time.perf_counter() - t0
    return {
        "seconds": total,
        "load_cpu_seconds": load_cpu,
        "producer_seconds": produce_s,
        "analyzers": {
            n: {
                "items": per_analyzer_n[n],
                "seconds": round(per_analyzer_s[n], 3),
                "cpu_seconds": round(per_analyzer_cpu[n], 3),
                "items_per_s": round(per_analyzer_n[n] / per_analyzer_s[n], 1) if per_analyzer_s[n] else None,
            }
            for n in analyzers
        },
    }


def pipeline(paths: list[Path], settings: Settings) -> dict[str, Any]:
    """Push the videos into the running stack and time until every reconstruction exists."""
    from reelscope.infra.client import fetch, push_paths

    t0 = time.perf_counter()
    ids = asyncio.run(push_paths(settings, [str(p) for p in paths], {}))
    first: dict[str, dict[str, float]] = {vid: {} for vid in ids}
    """Video -> analyzer -> seconds until its first result was stored."""
    done: dict[str, float] = {}
    while len(done) < len(ids):
        for vid in ids:
            if vid in done:
                continue
            status = fetch(settings, f"/videos/{vid}")
            for name, progress in (status or {}).get("progress", {}).items():
                if progress["received"] and name not in first[vid]:
                    first[vid][name] = time.perf_counter() - t0
            if status and status["status"] in TERMINAL:
                done[vid] = time.perf_counter() - t0
                assert status["status"] != VideoStatus.FAILED, status
        time.sleep(0.05)
    firsts = [min(f.values()) for f in first.values() if f]
    return {
        "seconds": max(done.values()),
        "time_to_first_result_s": min(firsts, default=None),
        "videos": len(ids),
        "first_result_per_video_s": [round(x, 2) for x in firsts],
        "every_analyzer_first_result_per_video_s": [round(max(f.values()), 2) for f in first.values() if f],
    }


Buckets = list[tuple[float, float]]
"""A Prometheus histogram's cumulative buckets: (upper bound, count at or below it), sorted."""


def latency_buckets(settings: Settings) -> dict[str, Buckets]:
    """Each group process's `reelscope_result_latency_seconds` buckets, read from its Prometheus endpoint."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families
    from reelscope.infra.stack import run_dir

    out: dict[str, Buckets] = {}
    for path in run_dir(settings).glob("group-*.metrics"):
        with urllib.request.urlopen(f"http://{path.read_text()}/metrics", timeout=5) as response:
            text = response.read().decode()
        buckets: Buckets = []
        for family in text_string_to_metric_families(text):
            if family.name == "reelscope_result_latency_seconds":
                buckets = sorted(
                    (float(x.labels["le"]), x.value) for x in family.samples if x.name.endswith("_bucket")
                )
        out[path.stem] = buckets
    return out


def bucket_quantile(buckets: Buckets, q: float) -> float | None:
    """The q-quantile, interpolated inside its bucket (the last finite bound when it falls in +Inf)."""
    total = buckets[-1][1] if buckets else 0
    if not total:
        return None
    previous_le, previous_n = 0.0, 0.0
    for le, n in buckets:
        if n >= q * total:
            if le == float("inf"):
                return previous_le
            share = (q * total - previous_n) / max(n - previous_n, 1e-9)
            return round(previous_le + share * (le - previous_le), 3)
        previous_le, previous_n = le, n
    return None


def latency_quantiles(settings: Settings) -> dict[str, dict[str, float | None]]:
    """p50/p95 of each group's result latency (input event's broker time to result acknowledged), read from
    the groups' Prometheus histograms (bucket-interpolated)."""
    return {
        name: {
            "p50_s": bucket_quantile(buckets, 0.5),
            "p95_s": bucket_quantile(buckets, 0.95),
            "results": buckets[-1][1] if buckets else 0,
        }
        for name, buckets in latency_buckets(settings).items()
    }


def run_bench(settings: Settings, args: argparse.Namespace) -> int:
    from reelscope.infra.stack import down, up

    work = Path(tempfile.mkdtemp(prefix="reelscope-bench-"))
    seconds = args.duration
    if args.clip:
        clip = Path(args.clip).resolve()
        with av.open(str(clip)) as container:
            seconds = float(container.duration or 0) / av.time_base
    else:
        clip = make_clip(work / "clip_720x1280.mp4", seconds, (720, 1280))
    results: dict[str, Any] = {
        "command": "reelscope bench "
        + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("fn", "command")
        ),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "clip": f"{clip.name}, {seconds:.1f} s"
        if args.clip
        else f"{seconds:.0f} s 720x1280 30 fps, H.264 + AAC",
        "analyzers": sorted(enabled_analyzers(settings.analyzers, settings)),
    }
    raw = raw_decode_s(clip)
    proc = in_process(clip, settings)
    results["raw_decode_s"] = round(raw, 3)
    results["in_process"] = {**proc, "time_factor": round(proc["seconds"] / seconds, 4)}
    results["producer_vs_raw_decode"] = round(raw / proc["producer_seconds"], 3)
    if getattr(args, "peers", False):
        from reelscope.infra.bench.peers import PARTS, run_parts

        results["peers"] = run_parts(clip, seconds, [p for p in PARTS if p != "default_set"])

    os.environ["REELSCOPE_STATE_DIR"] = str(work / "state")
    for processes in [1, *args.scale]:
        os.environ["REELSCOPE_TOPICS__PREFIX"] = f"bench{uuid.uuid4().hex[:6]}."
        stack_settings = Settings()
        up(stack_settings, processes_per_group=processes)
        try:
            if processes == 1:
                single = pipeline([clip], stack_settings)
                results["pipeline_1"] = {**single, "time_factor": round(single["seconds"] / seconds, 4)}
                results["streaming_overhead_ratio"] = round(single["seconds"] / proc["seconds"], 3)
            many = pipeline([clip] * args.concurrent, stack_settings)
            total = seconds * args.concurrent
            results[f"pipeline_{args.concurrent}_videos_{processes}_processes_per_group"] = {
                **many,
                "aggregate_time_factor": round(many["seconds"] / total, 4),
                "video_seconds_per_second": round(total / many["seconds"], 2),
            }
            if processes == 1:
                results["result_latency"] = latency_quantiles(stack_settings)
            if processes == 1 and args.large:
                large = make_clip(work / "clip_1080x1920.mp4", 60.0, (1080, 1920))
                big = pipeline([large], stack_settings)
                results["pipeline_1_large_60s_1080x1920"] = {
                    **big,
                    "time_factor": round(big["seconds"] / 60.0, 4),
                }
        finally:
            down(stack_settings)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0
