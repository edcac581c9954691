"""Windows that close at once: four videos of speech pushed together, through the transcription analyzer as
the speech group hands their chunks over (each batch: the chunk of every video that arrived in that second),
with the analyzer's workers against one worker on the same threads. Reports, per configuration, CPU and
wall seconds, and when each window's words were ready after its batch began. Run on a quiet machine:

    OMP_NUM_THREADS=2 python -m reelscope.infra.bench.speech_burst --out docs/results/speech-burst.json

The configurations alternate (rounds), each with its own loaded model; the same words are required of both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from reelscope.analyzers.base import Runtime, cpu_threads
from reelscope.analyzers.transcription import TranscriptionAnalyzer, TranscriptionOptions
from reelscope.infra.bench.loadtest import speech_track
from reelscope.infra.bench.transcription_ab import RATE, chunks

VIDEOS = 4
SECONDS = 30.0


def streams() -> list[np.ndarray]:
    """The load test's speech tracks (a different order of sentences per video), at 16 kHz via int16."""
    out = []
    for video in range(VIDEOS):
        track = speech_track(SECONDS, video, RATE)
        out.append((np.round(track * 32767) / 32768).astype(np.float32))
    return out


def burst(analyzer: TranscriptionAnalyzer, audio: list[np.ndarray], tag: str) -> dict[str, Any]:
    per_video = [chunks(f"{tag}-{v}", a) for v, a in enumerate(audio)]
    cpu, wall = time.process_time(), time.perf_counter()
    ready: list[float] = []
    words: dict[str, list[str]] = {}
    for second in range(max(len(c) for c in per_video)):
        batch = [c[second] for c in per_video if second < len(c)]
        began = time.perf_counter()
        for i, payload in analyzer.analyze_ready(batch):
            if "window" in payload:
                ready.append(time.perf_counter() - began)
                words.setdefault(batch[i].video_id.rsplit("-", 1)[1], []).extend(
                    w["word"] for w in payload["words"]
                )
    return {
        "cpu_s": round(time.process_time() - cpu, 2),
        "wall_s": round(time.perf_counter() - wall, 2),
        "windows": len(ready),
        "window_ready_s": {
            "p50": round(statistics.median(ready), 2),
            "max": round(max(ready), 2),
            "all": sorted(round(r, 2) for r in ready),
        },
        "words": {k: " ".join(v) for k, v in sorted(words.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    threads = cpu_threads() or 2
    configs = {
        f"one worker, {threads} threads (before)": TranscriptionOptions(workers=1, cpu_threads=threads),
        f"{threads} workers, 1 thread each (default)": TranscriptionOptions(),
    }
    analyzers = {}
    for name, options in configs.items():
        analyzers[name] = TranscriptionAnalyzer(options, Runtime(threads=threads))
        analyzers[name].load()
    audio = streams()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
    for r in range(args.rounds):
        for name, analyzer in analyzers.items():
            runs[name].append(burst(analyzer, audio, f"r{r}{len(runs[name])}{name[:3]}"))
            print(name, {k: v for k, v in runs[name][-1].items() if k != "words"}, flush=True)
    texts = {name: {json.dumps(run["words"]) for run in rs} for name, rs in runs.items()}
    result = {
        "command": f"OMP_NUM_THREADS={threads} python -m reelscope.infra.bench.speech_burst --rounds {args.rounds}",
        "videos": VIDEOS,
        "seconds": SECONDS,
        "runs": {
            name: [{k: v for k, v in run.items() if k != "words"} for run in rs] for name, rs in runs.items()
        },
        "best": {
            name: {
                "cpu_s": min(run["cpu_s"] for run in rs),
                "wall_s": min(run["wall_s"] for run in rs),
                "window_ready_max_s": min(run["window_ready_s"]["max"] for run in rs),
            }
            for name, rs in runs.items()
        },
        "same_words": len({t for ts in texts.values() for t in ts}) == 1,
        "words": next(iter(runs.values()))[0]["words"],
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
