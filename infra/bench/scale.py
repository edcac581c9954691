"""`reelscope bench --curves`: cost and memory against video length and concurrency (issue 18).

Two curves, each on its own freshly started real stack (a private broker, serve with the embedded
ClickHouse, one process per group; ports, topics and state dir of its own, so other stacks on the machine
are not touched): the length curve pushes one video of each length in turn, the concurrency curve pushes N
different videos of one length at once for each N. The clips are the load test's (360x640, 15 fps, text
and a tone, distinct per video), made before the stacks start. Each cell is measured from the push until
every video is final: wall time, aggregate time factor (wall / video seconds pushed), CPU seconds of every
stack process (threads and children included, read from /proc) per video second, each process's peak
resident memory, each group's result latency p50/p95 over the cell (the difference of the groups'
histograms before and after it), the seconds spent inside each analyzer, the items shed under backlog,
and how many videos ended complete, degraded or failed. CPU seconds stay comparable on a shared machine, wall time does not: the load average
is recorded with each cell.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from reelscope.analyzers.registry import enabled_analyzers
from reelscope.infra.bench.loadtest import make_clips, rss_mib
from reelscope.infra.bench.pipeline import Buckets, bucket_quantile, latency_buckets
from reelscope.infra.core.settings import Settings
from reelscope.schemas.records import TERMINAL

T = TypeVar("T")
TICKS = os.sysconf("SC_CLK_TCK")
WARMUP_S = 2.0
"""A short video each stack analyzes before its first cell, so no cell pays for first-call warm-ups."""


@dataclass(frozen=True)
class Cell:
    curve: str
    seconds: float
    videos: int


def cells(lengths: list[float], concurrency: list[int], concurrency_length: float) -> dict[str, list[Cell]]:
    """The two curves: one video per length; N videos of `concurrency_length` seconds for each N."""
    return {
        "length": [Cell("length", s, 1) for s in lengths],
        "concurrency": [Cell("concurrency", concurrency_length, n) for n in concurrency],
    }


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (state, ppid, ...), None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def trees(roots: dict[str, int]) -> dict[str, list[int]]:
    """Each stack process with its live descendants (a process a group or serve starts counts as its)."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))):
            children[int(stat[1])].append(int(entry.name))
    out = {}
    for name, root in roots.items():
        pids, todo = [], [root]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            todo.extend(children.get(pid, []))
        out[name] = pids
    return out


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (every thread) and of its children it has reaped."""
    stat = _stat(pid)
    return sum(int(x) for x in stat[11:15]) / TICKS if stat else 0.0


@dataclass
class Meter:
    """CPU seconds spent and peak memory of the stack's processes between start() and stop()."""

    roots: dict[str, int]
    interval_s: float = 0.25
    peaks: dict[str, float] = field(default_factory=dict)
    loads: list[float] = field(default_factory=list)
    _start: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def usage(self) -> dict[str, float]:
        return {n: sum(cpu_s(p) for p in pids) for n, pids in trees(self.roots).items()}

    def sample(self) -> None:
        for name, pids in trees(self.roots).items():
            self.peaks[name] = max(self.peaks.get(name, 0.0), sum(rss_mib(p) for p in pids))
        self.loads.append(os.getloadavg()[0])

    def start(self) -> None:
        self._start = self.usage()
        self.sample()

        def loop() -> None:
            while not self._stop.wait(self.interval_s):
                self.sample()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, float]:
        """CPU seconds per process since start()."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
        end = self.usage()
        return {n: round(end[n] - self._start.get(n, 0.0), 2) for n in end}


def latency_since(before: dict[str, Buckets], after: dict[str, Buckets]) -> dict[str, dict[str, Any]]:
    """Each group's p50/p95 over the results acknowledged between the two readings."""
    out = {}
    for name, buckets in sorted(after.items()):
        earlier = dict(before.get(name, []))
        cell = [(le, n - earlier.get(le, 0.0)) for le, n in buckets]
        group = name.removeprefix("group-").rpartition("-")[0] or name
        top = max((le for le, _ in cell if le != float("inf")), default=None)
        out[group] = {
            "p50_s": bucket_quantile(cell, 0.5),
            "p95_s": bucket_quantile(cell, 0.95),
            "results": int(cell[-1][1]) if cell else 0,
            "histogram_top_s": top,
        }
    return out


def analyzer_seconds(settings: Settings) -> dict[str, float]:
    """Seconds spent inside each analyzer so far, summed over the group processes (their counters): where
    a group's time goes. Wall seconds, so only their split within a cell is meaningful on a loaded machine."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families
    from reelscope.infra.stack import run_dir

    out: dict[str, float] = defaultdict(float)
    for path in run_dir(settings).glob("group-*.metrics"):
        with urllib.request.urlopen(f"http://{path.read_text()}/metrics", timeout=5) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "reelscope_analyzer_seconds_total":
                    out[sample.labels["analyzer"]] += sample.value
    return out


def wait_final(settings: Settings, ids: list[str], t0: float, timeout_s: float) -> dict[str, Any]:
    """Poll the API until every video is final (or the timeout): each one's status and first result time."""
    from reelscope.infra.client import fetch

    status: dict[str, str] = {}
    first: dict[str, float] = {}
    done_at = t0
    deadline = t0 + timeout_s
    while len(status) < len(ids) and time.perf_counter() < deadline:
        for vid in ids:
            if vid in status:
                continue
            row = fetch(settings, f"/videos/{vid}") or {}
            if vid not in first and any(p["received"] for p in row.get("progress", {}).values()):
                first[vid] = time.perf_counter() - t0
            if row.get("status") in TERMINAL:
                status[vid] = row["status"]
                done_at = time.perf_counter()
        time.sleep(0.1)
    for vid in ids:
        status.setdefault(vid, "timed_out")
        done_at = time.perf_counter() if status[vid] == "timed_out" else done_at
    return {"status": status, "wall_s": done_at - t0, "first": first}


def shed_items(settings: Settings, ids: list[str]) -> dict[str, int]:
    """Items each analyzer skipped under backlog (stated in the documents), summed over the videos."""
    from reelscope.infra.client import fetch

    shed: Counter[str] = Counter()
    for vid in ids:
        doc = fetch(settings, f"/videos/{vid}/reconstruction") or {}
        for name, state in doc.get("analyzers", {}).items():
            shed[name] += (state.get("shed") or {}).get("skipped", 0)
    return {k: v for k, v in sorted(shed.items()) if v}


def settled(read: Callable[[], T], wait_s: float = 0.3, limit_s: float = 5.0) -> T:
    """A reading taken again until two in a row agree: a group counts a result after its publish is
    acknowledged, so the last counts of a cell can land just after its videos are seen final."""
    last = read()
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        time.sleep(wait_s)
        now = read()
        if now == last:
            break
        last = now
    return last


def run_cell(settings: Settings, clips: list[Path], cell: Cell, timeout_s: float) -> dict[str, Any]:
    from reelscope.infra.client import push_paths
    from reelscope.infra.stack import running

    meter = Meter(running(settings))
    before = latency_buckets(settings)
    inside = analyzer_seconds(settings)
    harness = time.process_time()
    meter.start()
    t0 = time.perf_counter()
    ids = asyncio.run(push_paths(settings, [str(p) for p in clips], {}))
    final = wait_final(settings, ids, t0, timeout_s)
    cpu = meter.stop()
    after = settled(lambda: latency_buckets(settings))
    harness = time.process_time() - harness
    video_s = cell.seconds * cell.videos
    total_cpu = sum(cpu.values())
    firsts = sorted(final["first"].values())
    return {
        "curve": cell.curve,
        "video_seconds": cell.seconds,
        "videos": cell.videos,
        "wall_s": round(final["wall_s"], 2),
        "aggregate_time_factor": round(final["wall_s"] / video_s, 4),
        "cpu_s": round(total_cpu, 2),
        "cpu_s_per_video_s": round(total_cpu / video_s, 4),
        "cpu_s_by_process": dict(sorted(cpu.items())),
        "peak_rss_mib": {k: round(v) for k, v in sorted(meter.peaks.items())},
        "result_latency": latency_since(before, after),
        "analyzer_seconds": {
            k: round(v - inside.get(k, 0.0), 4) for k, v in sorted(analyzer_seconds(settings).items())
        },
        "statuses": dict(Counter(final["status"].values())),
        "complete": sum(s == "complete" for s in final["status"].values()),
        "time_to_first_result_s": round(firsts[0], 2) if firsts else None,
        "last_first_result_s": round(firsts[-1], 2) if firsts else None,
        "shed_items": shed_items(settings, ids),
        "load_average_1m": {
            "start": round(meter.loads[0], 2),
            "max": round(max(meter.loads), 2),
            "end": round(meter.loads[-1], 2),
        },
        "harness_cpu_s": round(harness, 2),
    }


@contextlib.contextmanager
def private_stack(state_dir: Path, env: dict[str, str]) -> Iterator[Settings]:
    """A stack of its own: a broker on a free port, free API and metrics ports, its own topics and state;
    the environment is restored afterwards."""
    from reelscope.infra.broker import free_port
    from reelscope.infra.stack import down, up

    mine = {
        "REELSCOPE_STATE_DIR": str(state_dir),
        "REELSCOPE_TOPICS__PREFIX": f"curve{uuid.uuid4().hex[:6]}.",
        "REELSCOPE_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "REELSCOPE_API_PORT": str(free_port()),
        "REELSCOPE_METRICS_BASE_PORT": "0",
        **env,
    }
    saved = {k: os.environ.get(k) for k in mine}
    os.environ.update(mine)
    settings = Settings()
    try:
        up(settings)
        yield settings
    finally:
        down(settings)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _clips(folder: Path, count: int, seconds: float) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return make_clips(folder, count, seconds)


def measure(
    lengths: list[float],
    concurrency: list[int],
    concurrency_length: float,
    work: Path,
    clips_dir: Path | None = None,
    timeout_s: float = 3600.0,
    warmup: bool = True,
    env: dict[str, str] | None = None,
    one_stack: bool = False,
    curves: tuple[str, ...] = ("length", "concurrency"),
) -> dict[str, Any]:
    """Every cell of both curves, each curve on a fresh stack (both on one with `one_stack`: a quick check,
    where a curve's memory peaks carry over into the next); the report as a JSON-ready dict."""
    plan = {k: v for k, v in cells(lengths, concurrency, concurrency_length).items() if k in curves}
    clips_dir = clips_dir or work / "clips"
    clips: dict[float, list[Path]] = {}
    for cell in (c for curve in plan.values() for c in curve):
        if len(clips.get(cell.seconds, [])) < cell.videos:
            clips[cell.seconds] = _clips(clips_dir / f"{cell.seconds:g}s", cell.videos, cell.seconds)
    warm = _clips(clips_dir / "warmup", 1, WARMUP_S) if warmup else []
    longest = max([cell.seconds for curve in plan.values() for cell in curve], default=0.0)
    stack_env = {"REELSCOPE_PRODUCER__MAX_DURATION_S": str(max(600.0, longest + 60.0)), **(env or {})}
    rows: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    runs = [[c for curve in plan.values() for c in curve]] if one_stack else list(plan.values())
    for run in (r for r in runs if r):
        with private_stack(work / f"state-{run[0].curve}", stack_env) as settings:
            if warm:
                run_cell(settings, warm, Cell("warmup", WARMUP_S, 1), timeout_s)
            for cell in run:
                rows.append(run_cell(settings, clips[cell.seconds][: cell.videos], cell, timeout_s))
                print(json.dumps(rows[-1]), flush=True)
    settings = Settings()
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "clips": "360x640, 15 fps, H.264 + AAC, text and a tone, distinct per video (loadtest.make_clips)",
        "analyzers": sorted(enabled_analyzers(settings.analyzers, settings)),
        "environment": {
            k: v
            for k, v in sorted({**os.environ, **stack_env}.items())
            if k.startswith("REELSCOPE_") and not any(w in k for w in ("TOKEN", "PASSWORD", "SECRET"))
        },
        "stack_per_curve": not one_stack,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "cells": rows,
    }


def _at_least(value: float, top: float | None) -> str:
    """A quantile at the histogram's last finite bound is only known to be at least that."""
    return f"≥{value:.0f}" if top is not None and value >= top else f"{value:.1f}"


def _short(name: str) -> str:
    return name.removeprefix("group-").removesuffix("-0")


def markdown(report: dict[str, Any]) -> str:
    """The report's cells as a markdown table (CPU and memory per process in short form)."""
    lines = [
        "| curve | videos x length | wall s | aggregate time factor | CPU s per video s | the same by process "
        "| peak RSS MiB | result latency p95 s | complete / degraded / other | shed items | load 1 min start / max |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in report["cells"]:
        statuses = c["statuses"]
        other = sum(n for s, n in statuses.items() if s not in ("complete", "degraded"))
        latency = ", ".join(
            f"{g} {_at_least(v['p95_s'], v.get('histogram_top_s', 60.0))}"
            for g, v in c["result_latency"].items()
            if v["results"]
        )
        video_s = c["videos"] * c["video_seconds"]
        lines.append(
            f"| {c['curve']} | {c['videos']} x {c['video_seconds']:g} s | {c['wall_s']:.1f} "
            f"| {c['aggregate_time_factor']:.3f} | **{c['cpu_s_per_video_s']:.3f}** "
            f"| {', '.join(f'{_short(k)} {v / video_s:.3f}' for k, v in c['cpu_s_by_process'].items())} "
            f"| {', '.join(f'{_short(k)} {v}' for k, v in c['peak_rss_mib'].items())} "
            f"| {latency or '-'} | {statuses.get('complete', 0)} / {statuses.get('degraded', 0)} / {other} "
            f"| {sum(c['shed_items'].values()) or 0} "
            f"| {c['load_average_1m']['start']} / {c['load_average_1m']['max']} |"
        )
    return "\n".join(lines)


def run_curves(settings: Settings, args: argparse.Namespace) -> int:
    """`reelscope bench --curves`: measure, write the JSON, print the table; 1 when a video did not complete."""
    lengths = getattr(args, "lengths", [10.0, 60.0, 600.0])
    concurrency = getattr(args, "concurrency", [1, 4, 16, 50])
    length = getattr(args, "concurrency_length", 10.0)
    work = Path(tempfile.mkdtemp(prefix="reelscope-curves-"))
    clips_dir = Path(args.clips) if getattr(args, "clips", None) else None
    env = {"REELSCOPE_BATCH__MAX_STRIDE": "1"} if getattr(args, "no_shed", False) else {}
    curve = getattr(args, "curve", "both")
    chosen = ("length", "concurrency") if curve == "both" else (curve,)
    timeout_s = getattr(args, "cell_timeout", 3600.0)
    report = measure(lengths, concurrency, length, work, clips_dir, timeout_s, env=env, curves=chosen)
    report["command"] = (
        f"reelscope bench --curves --curve {curve} --lengths {','.join(f'{x:g}' for x in lengths)} "
        f"--concurrency {','.join(map(str, concurrency))} --concurrency-length {length:g}"
        + (" --no-shed" if env else "")
        + f" --out {args.out}"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(markdown(report))
    return 0 if all(c["complete"] == c["videos"] for c in report["cells"]) else 1


def main() -> None:
    """`python -m reelscope.infra.bench.scale FILE`: print a curves JSON file as the markdown table."""
    import sys

    print(markdown(json.loads(Path(sys.argv[1]).read_text())))


if __name__ == "__main__":
    main()
