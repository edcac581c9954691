"""The whole stack on one machine, end to end, at 1, 16 and 64 concurrent videos: the GPU check of issue 18.

Starts the broker, the processor groups (the vision group pinned to a GPU) and serve with its embedded
ClickHouse (chdb, or chdb-core-lite where installed instead: both import as `chdb`), once, then pushes each
wave of generated videos and reads, per wave:

- the aggregate time factor: wall time until every video's reconstruction exists / video seconds pushed;
- each group's per-segment result latency p50/p95 (input event's broker time to result acknowledged),
  from the deltas of the groups' Prometheus histograms over the wave;
- detection fps inside the analyzer: objects frames / seconds spent in the objects analyzer (its
  `reelscope_results_out_total` and `reelscope_analyzer_seconds_total` counters over the wave).

No weights are downloaded: objects runs a YOLO11n built from ultralytics' yaml at real size with random
weights (as infra/bench/gpu.py does), saved as a checkpoint in the state directory. On a lent GPU machine,
`infra/gpu-stack.sh` installs the carried packages and runs this module; on the CPU the same logic runs at
tiny size (tests/test_gpu_stack.py):

    python -m reelscope.infra.bench.gpu_stack --videos 1,16,64 --seconds 10 --device cuda --out gpu-stack.json
    python -m reelscope.infra.bench.gpu_stack --videos 1,2 --seconds 2 --device cpu --out /tmp/tiny.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

DEFAULT_ANALYZERS = ("scene", "color", "composition", "quality", "thumbnails", "objects")
"""Light group + objects on the vision group: what the carried packages run (no RapidOCR, MTCNN or
faster-whisper wheels travel to the GPU machine; docs/benchmarks.md, GPU groups)."""

Metrics = dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]
"""Per group process: (sample name, sorted labels) -> value."""


def random_yolo(weights_dir: Path, yaml: str = "yolo11n.yaml") -> Path:
    """A never-trained YOLO at real size (ultralytics' model yaml), saved as a checkpoint: the analyzer
    reports it as random-test, and nothing is downloaded."""
    from reelscope.analyzers.common.yolo import ultralytics_offline

    ultralytics_offline()
    from ultralytics import YOLO

    weights_dir.mkdir(parents=True, exist_ok=True)
    path = weights_dir / yaml.replace(".yaml", "-random.pt")
    if not path.exists():
        YOLO(yaml).save(path)
    return path


def configure(work: Path, device: str, analyzers: Sequence[str], yolo_yaml: str) -> dict[str, str]:
    """The environment of the stack: its own state dir, topic prefix and free ports (broker, API, group
    metrics), the analyzers, objects on the random YOLO, and the vision group pinned to GPU 0 on CUDA."""
    from reelscope.infra.broker import free_port

    env = {
        "REELSCOPE_STATE_DIR": str(work / "state"),
        "REELSCOPE_TOPICS__PREFIX": f"gpu{uuid.uuid4().hex[:6]}.",
        "REELSCOPE_ANALYZERS": json.dumps(list(analyzers)),
        "REELSCOPE_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "REELSCOPE_API_PORT": str(free_port()),
        "REELSCOPE_METRICS_BASE_PORT": "0",
    }
    if "objects" in analyzers:
        env["REELSCOPE_OBJECTS__MODEL"] = str(random_yolo(work / "state" / "weights", yolo_yaml))
        env["REELSCOPE_OBJECTS__DEVICE"] = "cuda:0" if device.startswith("cuda") else device
    if device.startswith("cuda"):
        env["REELSCOPE_GROUP_DEVICES"] = json.dumps({"vision": device.partition(":")[2] or "0"})
    os.environ.update(env)
    return env


def scrape_groups(settings: Any) -> Metrics:
    """Every group process's Prometheus samples, by process name."""
    from prometheus_client.parser import text_string_to_metric_families
    from reelscope.infra.stack import run_dir

    out: Metrics = {}
    for path in run_dir(settings).glob("group-*.metrics"):
        with urllib.request.urlopen(f"http://{path.read_text()}/metrics", timeout=5) as response:
            text = response.read().decode()
        out[path.stem] = {
            (s.name, tuple(sorted(s.labels.items()))): float(s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
    return out


def delta(after: Metrics, before: Metrics) -> Metrics:
    """Counters and histogram buckets over a wave (a process absent before counts from zero)."""
    return {
        process: {key: value - before.get(process, {}).get(key, 0.0) for key, value in samples.items()}
        for process, samples in after.items()
    }


def wave_figures(samples: Metrics) -> dict[str, Any]:
    """Per group: result latency p50/p95 and results; per analyzer: items and seconds inside it."""
    from reelscope.infra.bench.pipeline import bucket_quantile

    latency: dict[str, Any] = {}
    items: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for process, values in sorted(samples.items()):
        buckets = [
            (float(dict(labels)["le"]), v)
            for (name, labels), v in values.items()
            if name == "reelscope_result_latency_seconds_bucket"
        ]
        total = max((v for _, v in buckets), default=0.0)
        latency[process] = {
            "p50_s": bucket_quantile(sorted(buckets), 0.5),
            "p95_s": bucket_quantile(sorted(buckets), 0.95),
            "results": total,
        }
        for (name, labels), v in values.items():
            analyzer = dict(labels).get("analyzer")
            if name == "reelscope_results_out_total" and analyzer:
                items[analyzer] = items.get(analyzer, 0.0) + v
            elif name == "reelscope_analyzer_seconds_total" and analyzer:
                seconds[analyzer] = seconds.get(analyzer, 0.0) + v
    inside = {
        name: {
            "items": int(items.get(name, 0)),
            "seconds": round(seconds[name], 3),
            "items_per_s": round(items.get(name, 0) / seconds[name], 1) if seconds[name] > 0 else None,
        }
        for name in sorted(seconds)
    }
    return {"result_latency": latency, "inside_analyzers": inside}


def run_wave(settings: Any, clips: list[Path], seconds: float) -> dict[str, Any]:
    """Push the clips at once into the running stack; the wave's figures."""
    from reelscope.infra.bench.pipeline import pipeline

    before = scrape_groups(settings)
    cpu0 = os.times()
    result = pipeline(clips, settings)
    cpu1 = os.times()
    figures = wave_figures(delta(scrape_groups(settings), before))
    detection = figures["inside_analyzers"].get("objects", {})
    return {
        "videos": len(clips),
        "all_complete": result["videos"] == len(clips),
        "wall_s": round(result["seconds"], 2),
        "aggregate_time_factor": round(result["seconds"] / (len(clips) * seconds), 4),
        "per_segment_p95_s": {k: v["p95_s"] for k, v in figures["result_latency"].items()},
        "detection_fps_inside_analyzer": detection.get("items_per_s"),
        "time_to_first_result_s": result["time_to_first_result_s"],
        "driver_cpu_s": round((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system), 2),
        **figures,
    }


def device_info(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"device": device, "torch": torch.__version__, "cpus": os.cpu_count()}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        import chdb

        info["chdb"] = {"module": chdb.__file__, "version": getattr(chdb, "__version__", None)}
    except ImportError as missing:
        info["chdb"] = f"unavailable: {missing}"
    return info


def run(args: argparse.Namespace, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Start the stack once, run each wave, stop the stack; the report (also written to args.out after
    every wave, so a run cut short keeps the waves it finished)."""
    from reelscope.infra.bench.loadtest import make_clips
    from reelscope.infra.core.settings import Settings
    from reelscope.infra.stack import down, up

    work = Path(args.work or tempfile.mkdtemp(prefix="reelscope-gpu-stack-"))
    analyzers = [a for a in args.analyzers.split(",") if a]
    env = configure(work, args.device, analyzers, args.yolo)
    waves = [int(n) for n in args.videos.split(",")]
    (work / "clips").mkdir(parents=True, exist_ok=True)
    clips = make_clips(work / "clips", max([*waves, args.warmup]), args.seconds)
    report: dict[str, Any] = {
        "command": " ".join(["python -m reelscope.infra.bench.gpu_stack", *sys.argv[1:]]),
        "machine": {"host": platform.node(), **device_info(args.device)},
        "environment": env,
        "video_seconds": args.seconds,
        "waves": [],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = Settings()
    t0 = time.perf_counter()
    up(settings, timeout_s=args.start_timeout)
    report["stack_start_s"] = round(time.perf_counter() - t0, 1)
    say(f"stack ready in {report['stack_start_s']} s")
    try:
        if args.warmup:  # model loading is done by `up`; this pays lazy CUDA/cuDNN set-up outside the figures
            report["warmup_wall_s"] = run_wave(settings, clips[: args.warmup], args.seconds)["wall_s"]
        for n in waves:
            wave = run_wave(settings, clips[:n], args.seconds)
            report["waves"].append(wave)
            out.write_text(json.dumps(report, indent=2))
            say(json.dumps({k: wave[k] for k in ("videos", "wall_s", "aggregate_time_factor")}))
    finally:
        down(settings)
        report["load_average_1m_end"] = round(os.getloadavg()[0], 2)
        out.write_text(json.dumps(report, indent=2))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--videos", default="1,16,64", help="waves: videos pushed at once (default: %(default)s)"
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="each video's length (default: %(default)s)"
    )
    parser.add_argument("--device", default="cuda:0", help="cuda:0 or cpu (default: %(default)s)")
    parser.add_argument("--analyzers", default=",".join(DEFAULT_ANALYZERS))
    parser.add_argument("--warmup", type=int, default=1, help="videos of an unreported first wave (0: none)")
    parser.add_argument("--yolo", default="yolo11n.yaml", help="ultralytics model yaml (random weights)")
    parser.add_argument("--start-timeout", type=float, default=240.0)
    parser.add_argument("--work", default="", help="state and clips folder (default: a new temporary one)")
    parser.add_argument("--out", default="gpu-stack.json")
    args = parser.parse_args(argv)
    report = run(args)
    return 0 if report["waves"] and all(w["all_complete"] for w in report["waves"]) else 1


if __name__ == "__main__":
    sys.exit(main())
