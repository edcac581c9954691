"""Long videos on a long-lived stack (issue 15, item 0; docs/reliability.md).

Pushes files or generated clips of N minutes into the stack already running from the state dir
(`reelscope up`), one after another, each waited for, and appends one JSON line per video: publishing time
(started → finished event), submitted → complete, status, every analyzer's received/expected, the
document's warnings, CPU seconds of the stack's processes and the load average. A stack that stays up
between runs is the point: the failure it looks for appeared only after earlier work on the same stack.

    python -m reelscope.infra.bench.long_videos --minutes 1 3 --clips DIR --out FILE
    python -m reelscope.infra.bench.long_videos --file warmup=PATH --out FILE
    python -m reelscope.infra.bench.long_videos --table --out FILE   # docs/reliability.md's rows
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from reelscope.infra.core.settings import Settings
from reelscope.infra.sample_media import loop_file, looped_clip, spoken, textured, with_text, write_video
from reelscope.schemas.records import TERMINAL

SPEECH = (
    "Short videos are watched in the first seconds. Here is what happens next: the pasta goes in the pan, "
    "the sauce comes after, and everyone tastes it together."
)
"""10.7 s at espeak-ng's 150 words a minute, cut at 10 s: every loop is speech, like the clip the issue saw."""


def speech_base(path: Path, base_s: float = 10.0, size: tuple[int, int] = (720, 1280)) -> Path:
    """A `base_s` 30 fps clip with a hard cut at its middle and espeak-ng speech as its audio."""
    rate = 48_000
    audio = np.zeros(int(base_s * rate), np.float32)
    speech = spoken(SPEECH, rate)[: audio.size]
    audio[: speech.size] = speech
    frames, cut = int(base_s * 30), int(base_s * 15)
    w, h = size

    def frame_at(i: int) -> np.ndarray:
        return with_text(textured(w, h, seed=1 if i < cut else 2, shift=i), f"frame {i}")

    return write_video(path, frames, 30, frame_at, audio=audio, audio_rate=rate)


def long_clip(folder: Path, minutes: float) -> Path:
    """A 720x1280 H.264/AAC clip of `minutes`: the speech base looped (a tone base without espeak-ng)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{minutes:g}min_720x1280.mp4"
    if path.exists():
        return path
    if shutil.which("espeak-ng") is None:
        return looped_clip(path, minutes * 60)
    base = folder / "speech_base_720x1280.mp4"
    if not base.exists():
        speech_base(base)
    return loop_file(base, path, max(1, round(minutes * 6)))


def stack_cpu_s(settings: Settings) -> dict[str, float]:
    """CPU seconds (user + system, reaped children included) of each stack process now alive."""
    from reelscope.infra.stack import running

    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, pid in running(settings).items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        out[f"{name}:{pid}"] = sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
    return out


def seconds_between(timings: dict[str, Any], start: str, end: str) -> float | None:
    if not timings.get(start) or not timings.get(end):
        return None
    a, b = (datetime.fromisoformat(timings[k]) for k in (start, end))
    return round((b - a).total_seconds(), 1)


def shed(doc: dict[str, Any]) -> dict[str, str]:
    """Analyzer -> "skipped/expected (every Nth at most)": items load shedding left unanalyzed; their results
    still count as received (a stated skip), so a met count alone does not say how much was analyzed."""
    return {
        name: f"{a['shed']['skipped']}/{a['expected']} (every {a['shed']['max_stride']}th at most)"
        for name, a in sorted((doc.get("analyzers") or {}).items())
        if a.get("shed")
    }


def run_one(settings: Settings, name: str, path: Path, timeout_s: float) -> dict[str, Any]:
    """Push one file, wait for its terminal status, and describe how it went."""
    from reelscope.infra.client import fetch, push_paths

    load0, cpu0 = os.getloadavg(), stack_cpu_s(settings)
    t0 = time.monotonic()
    (video_id,) = asyncio.run(push_paths(settings, [str(path)], {"long_videos": name}))
    status: dict[str, Any] = {}
    loads = []
    while time.monotonic() - t0 < timeout_s:
        status = fetch(settings, f"/videos/{video_id}") or {}
        if status.get("status") in TERMINAL:
            break
        loads.append(os.getloadavg()[0])
        time.sleep(1.0)
    wall = time.monotonic() - t0
    cpu1 = stack_cpu_s(settings)
    doc = fetch(settings, f"/videos/{video_id}/reconstruction") or {}
    timings = doc.get("timings") or {}
    return {
        "video": name,
        "file": path.name,
        "video_id": video_id,
        "status": status.get("status"),
        "error": status.get("error"),
        "wall_s": round(wall, 1),
        "publishing_s": seconds_between(timings, "started_at", "published_at"),
        "submitted_to_complete_s": seconds_between(timings, "submitted_at", "completed_at"),
        "timings": timings,
        "counts": {
            n: f"{p['received']}/{p['expected']}" for n, p in sorted((status.get("progress") or {}).items())
        },
        "errors": {n: p["errors"] for n, p in (status.get("progress") or {}).items() if p.get("errors")},
        "warnings": doc.get("warnings") or [],
        "shed": shed(doc),
        "segments": len(doc.get("segments") or []),
        "shots": len(doc.get("shots") or []),
        "stack_cpu_s": round(sum(cpu1.get(k, 0) - v for k, v in cpu0.items()), 1),
        "stack_processes_restarted": sorted(set(cpu0) ^ set(cpu1)),
        "load_average": {
            "start_1_5_15": [round(x, 2) for x in load0],
            "end_1_5_15": [round(x, 2) for x in os.getloadavg()],
            "max_1min_during": round(max(loads, default=load0[0]), 2),
        },
    }


def table(path: Path) -> list[str]:
    """docs/reliability.md's rows: one per recorded video, analyzers grouped by their counts."""
    rows = []
    for line in path.read_text().splitlines():
        d = json.loads(line)
        by: dict[str, list[str]] = {}
        for name, count in d["counts"].items():
            by.setdefault(count, []).append(name)
        met = all(a == b for a, b in (c.split("/") for c in d["counts"].values()))
        counts = "; ".join(f"{', '.join(by[c])} {c}" for c in sorted(by, key=lambda c: -int(c.split("/")[1])))
        load = d["load_average"]
        skipped = ", ".join(f"{n} {v.split(' ')[0]}" for n, v in d.get("shed", {}).items()) or "none"
        rows.append(
            f"| {d['video']} ({d['segments']} segments, {d['shots']} shots) | {d['publishing_s']:.0f} s "
            f"| {d['submitted_to_complete_s']:.0f} s | {d['status']} | {len(d['counts'])} analyzers, "
            f"{'every count met' if met else '**not met**'}: {counts} | {'; '.join(d['warnings']) or 'none'} "
            f"| {skipped} | {d['stack_cpu_s']:.0f} | {load['start_1_5_15'][0]:.1f} → {load['end_1_5_15'][0]:.1f} "
            f"(max {load['max_1min_during']:.1f}) |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, nargs="*", default=[], help="generated clips, in order")
    parser.add_argument("--file", nargs="*", default=[], help="NAME=PATH files pushed first, in order")
    parser.add_argument("--clips", type=Path, default=Path("long-video-clips"), help="where clips are made")
    parser.add_argument("--out", type=Path, required=True, help="JSON lines, appended")
    parser.add_argument("--timeout", type=float, default=7200.0, help="seconds to wait for each video")
    parser.add_argument("--table", action="store_true", help="only print --out's records as markdown rows")
    args = parser.parse_args(argv)
    if args.table:
        print("\n".join(table(args.out)))
        return 0
    settings = Settings()
    todo = [(n, Path(p)) for n, _, p in (f.partition("=") for f in args.file)]
    todo += [(f"{m:g}min", long_clip(args.clips, m)) for m in args.minutes]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name, path in todo:
        record = run_one(settings, name, path.resolve(), args.timeout)
        record["analyzers"] = sorted(record["counts"])
        print(json.dumps(record), flush=True)
        with args.out.open("a") as out:
            out.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
