"""reelscope next to the tools it competes with, each pair measured in one run on the same input (issue 18).

- producer (decode + sampled frames + JPEG + audio chunks) against raw PyAV decoding of every frame;
- the scene path (producer frames for `scene` + the analyzer + the cut summary) against PySceneDetect's
  AdaptiveDetector, decode included;
- the OCR analyzer against RapidOCR called on every frame it samples (same engine, the frame's own size);
- the transcription analyzer fed 1 s chunks against faster-whisper called once on the whole file (the same
  loaded model, the same options);
- CPU seconds per video second of every default analyzer (in-process, `pipeline.in_process`), and MTCNN's
  cost per 640 px frame.

Ratios are of process CPU seconds (every thread of this process), which a shared machine's load inflates
far less than wall time; wall seconds are reported next to them, with the load average. Run with
`python -m reelscope.infra.bench.peers --out docs/results/peers.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
from reelscope.analyzers.base import AudioItem, FrameItem
from reelscope.analyzers.registry import enabled_analyzers
from reelscope.infra.bench.pipeline import in_process, make_clip
from reelscope.infra.bench.scorecard import SHARED_MEDIA
from reelscope.infra.core.settings import Settings
from reelscope.producers.decode import DecodedFrame, iterate, open_media, upright_rgb
from reelscope.producers.events import VideoEventSource

SPEECH = SHARED_MEDIA / "hotwords.mp3"
"""Real speech for the transcription pair (the generated clip's audio is a tone)."""


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, float, Any]:
    """(best CPU seconds, wall seconds of that run, result) over `repeat` runs."""
    best: tuple[float, float, Any] | None = None
    for _ in range(repeat):
        cpu, wall = time.process_time(), time.perf_counter()
        out = fn()
        run = (time.process_time() - cpu, time.perf_counter() - wall, out)
        best = run if best is None or run[0] < best[0] else best
    assert best is not None
    return best


def timed_pair(
    ours: Callable[[], Any], theirs: Callable[[], Any], repeat: int
) -> tuple[tuple[float, float, Any], tuple[float, float, Any]]:
    """Best of `repeat` runs of each side, the two sides alternating, so that a change of the machine's
    load during the pair weighs on both alike (a shared machine's load moves within seconds)."""
    best: list[tuple[float, float, Any] | None] = [None, None]
    for _ in range(repeat):
        for k, fn in enumerate((ours, theirs)):
            run = timed(fn)
            best[k] = run if best[k] is None or run[0] < best[k][0] else best[k]
    assert best[0] is not None and best[1] is not None
    return best[0], best[1]


def raw_decode(path: Path, threads: int = 0) -> int:
    """Every video frame decoded with plain PyAV (FFmpeg's own threading, or `threads` of them)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if threads:
            stream.codec_context.thread_count = threads
        return sum(1 for _ in container.decode(stream))


def pair(ours: tuple[float, float, Any], theirs: tuple[float, float, Any], seconds: float) -> dict[str, Any]:
    return {
        "reelscope_cpu_s": round(ours[0], 3),
        "peer_cpu_s": round(theirs[0], 3),
        "reelscope_wall_s": round(ours[1], 3),
        "peer_wall_s": round(theirs[1], 3),
        "ratio_cpu": round(ours[0] / theirs[0], 3) if theirs[0] else None,
        "reelscope_cpu_per_video_s": round(ours[0] / seconds, 4),
        "peer_cpu_per_video_s": round(theirs[0] / seconds, 4),
    }


def producer_vs_decode(clip: Path, seconds: float, settings: Settings, repeat: int = 5) -> dict[str, Any]:
    """The producer (default sampling) against decoding every frame with plain PyAV, both with FFmpeg's
    default threading; then both again with one decoding thread (`single_thread`), like for like."""
    classes = enabled_analyzers(settings.analyzers, settings)

    def produce(threads: int) -> int:
        producer = settings.producer.model_copy(update={"decode_threads": threads})
        source = VideoEventSource(
            "peer", str(clip), clip.as_uri(), classes, producer, settings.kafka.max_event_bytes
        )
        return sum(1 for _ in source.events())

    ours, raw = timed_pair(lambda: produce(0), lambda: raw_decode(clip), repeat)
    out = pair(ours, raw, seconds)
    out["events"] = ours[2]
    out["producer_speed_share_of_raw_decode"] = round(raw[0] / ours[0], 3)
    one, raw_one = timed_pair(lambda: produce(1), lambda: raw_decode(clip, 1), repeat)
    out["single_thread"] = pair(one, raw_one, seconds)
    out["single_thread"]["producer_speed_share_of_raw_decode"] = round(raw_one[0] / one[0], 3)
    return out


def scene_vs_pyscenedetect(clip: Path, seconds: float, repeat: int = 3) -> dict[str, Any]:
    from scenedetect import AdaptiveDetector, detect

    ours, theirs = timed_pair(
        lambda: in_process(clip, Settings(analyzers=["scene"])),
        lambda: detect(str(clip), AdaptiveDetector()),
        repeat,
    )
    out = pair(ours, theirs, seconds)
    out["peer_cuts_s"] = [round(scene[0].get_seconds(), 3) for scene in theirs[2][1:]]
    return out


def sampled_frames(clip: Path, fps: float, max_side: int) -> list[FrameItem]:
    """The frames an analyzer sampling at `fps` gets, at its size, as the producer makes them."""
    container, info = open_media(str(clip))
    items: list[FrameItem] = []
    due = None
    try:
        for item in iterate(container, info):
            if isinstance(item, DecodedFrame) and (due is None or item.pts_s >= due - 1e-6):
                due = item.pts_s + 1.0 / fps if due is None else due + 1.0 / fps
                image = upright_rgb(item.frame, max_side)
                items.append(FrameItem("peer", len(items), item.pts_s, image, first=not items))
    finally:
        container.close()
    return items


def ocr_vs_rapidocr(clip: Path, seconds: float) -> dict[str, Any]:
    from rapidocr_onnxruntime import RapidOCR
    from reelscope.analyzers.base import cpu_threads
    from reelscope.analyzers.ocr_text import MIN_LINE_CONFIDENCE, OcrTextAnalyzer

    sampling = OcrTextAnalyzer.sampling
    items = sampled_frames(clip, sampling.fps or 2.0, sampling.max_side)
    analyzer = OcrTextAnalyzer()
    analyzer.load()
    threads = {"intra_op_num_threads": cpu_threads()} if cpu_threads() else {}
    engine = RapidOCR(det_limit_type="max", text_score=MIN_LINE_CONFIDENCE, **threads)

    def direct() -> list[Any]:
        return [engine(np.ascontiguousarray(i.image[:, :, ::-1]))[0] for i in items]

    def ours() -> list[dict[str, Any]]:
        return [p for b in range(0, len(items), 32) for p in analyzer.analyze(items[b : b + 32])]

    theirs = timed(direct)
    mine = timed(ours)
    same = sum(
        sorted(str(line[1]).replace(" ", "") for line in d or [])
        == sorted(line["text"].replace(" ", "") for line in p["lines"])
        for d, p in zip(theirs[2], mine[2], strict=True)
    )
    out = pair(mine, theirs, seconds)
    out.update(
        frames=len(items),
        frames_read_the_same=same,
        lines_recognised=analyzer.recognised,
        lines_reused=analyzer.reused,
        frames_reused=analyzer.frames_reused,
    )
    return out


def transcription_vs_faster_whisper(audio_path: Path, repeat: int = 3) -> dict[str, Any]:
    """The transcription analyzer (1 s chunks) against faster-whisper's `transcribe` on the whole file, same
    weights and options; best of `repeat` alternating runs each (the analyzer sees a new video each
    run: it remembers the replies it gave, so a repeated video would cost nothing)."""
    from faster_whisper import decode_audio
    from reelscope.analyzers.transcription import TranscriptionAnalyzer

    audio = decode_audio(str(audio_path), sampling_rate=16_000)
    seconds = len(audio) / 16_000
    analyzer = TranscriptionAnalyzer()
    analyzer.load()
    options = analyzer.options
    n = int(np.ceil(seconds))
    runs = iter(range(1_000_000))

    def chunks(video: str) -> list[AudioItem]:
        return [
            AudioItem(
                video,
                i,
                float(i),
                float(min(i + 1, seconds)),
                audio[i * 16_000 : (i + 1) * 16_000],
                16_000,
                first=i == 0,
                final=i == n - 1,
            )
            for i in range(n)
        ]

    peer = analyzer._whisper(analyzer._model_path(analyzer.runtime.state_dir / "weights"))
    """The same weights and options in a model of its own: the analyzer's remembers its last encoding, which
    would otherwise serve it the peer's."""

    def direct() -> str:
        segments, _ = peer.transcribe(
            audio,
            beam_size=options.beam_size,
            vad_filter=True,
            word_timestamps=True,
            condition_on_previous_text=False,
        )
        return " ".join(s.text.strip() for s in segments)

    def ours() -> str:
        items = chunks(f"peer-{next(runs)}")
        payloads = [p for b in range(0, n, 32) for p in analyzer.analyze(items[b : b + 32])]
        return " ".join(w["word"] for p in payloads for w in p.get("words", []))

    mine, theirs = timed_pair(ours, direct, repeat)
    out = pair(mine, theirs, seconds)
    out.update(audio=f"{audio_path.name}, {seconds:.1f} s", text=mine[2][:300], peer_text=theirs[2][:300])
    return out


def mtcnn_ms_per_frame(frames: int = 12) -> dict[str, Any]:
    """MTCNN alone on 640 px frames of a real photo with two people (ultralytics' zidane.jpg)."""
    import ultralytics
    from PIL import Image
    from reelscope.analyzers.faces import _Mtcnn

    photo = Path(ultralytics.__file__).parent / "assets" / "zidane.jpg"
    image = Image.open(photo).convert("RGB")
    image.thumbnail((640, 640))
    rgb = np.asarray(image)
    detector = _Mtcnn()
    detector.detect(rgb)  # warm-up
    cpu, wall, faces = timed(lambda: [len(detector.detect(rgb)) for _ in range(frames)])
    return {
        "image": f"zidane.jpg at {rgb.shape[1]}x{rgb.shape[0]}",
        "faces_found": faces[0],
        "cpu_ms_per_frame": round(cpu / frames * 1000, 1),
        "wall_ms_per_frame": round(wall / frames * 1000, 1),
    }


def aggregator_models() -> float:
    """Load the reconstruction's own model (the keyword embedder of sinks/about.py, which an aggregator
    process loads once for every video it builds); CPU seconds it took. Left to the first document, its
    loading (3-7 CPU-s) was counted in the clip's figure as if every video paid it."""
    from reelscope.sinks.about import embedding_model

    cpu = time.process_time()
    embedding_model()
    return time.process_time() - cpu


def default_set(clip: Path, seconds: float) -> dict[str, Any]:
    """CPU seconds per video second of every analyzer the default settings enable (in-process), models
    loaded: a processor group loads them once for every video it serves, the aggregator its embedder once,
    so loading is reported apart. The rest (`other_cpu_per_video_s`) is the producer, the processors'
    JPEG decoding, the payloads' JSON and the reconstruction."""
    aggregator_load = aggregator_models()
    cpu, _wall, run = timed(lambda: in_process(clip, Settings()))
    cpu -= run["load_cpu_seconds"]
    per = {
        name: {
            "items": a["items"],
            "cpu_s": a["cpu_seconds"],
            "cpu_per_video_s": round(a["cpu_seconds"] / seconds, 4),
        }
        for name, a in sorted(run["analyzers"].items(), key=lambda kv: -kv[1]["cpu_seconds"])
    }
    analyzers_cpu = sum(a["cpu_seconds"] for a in run["analyzers"].values())
    return {
        "cpu_time_factor": round(cpu / seconds, 4),
        "analyzers_cpu_per_video_s": round(analyzers_cpu / seconds, 4),
        "other_cpu_per_video_s": round((cpu - analyzers_cpu) / seconds, 4),
        "load_cpu_s": round(run["load_cpu_seconds"], 3),
        "aggregator_load_cpu_s": round(aggregator_load, 3),
        "wall_time_factor": round(run["seconds"] / seconds, 4),
        "producer_wall_s": round(run["producer_seconds"], 3),
        "analyzers": per,
    }


def default_set_pan(clip: Path, seconds: float) -> dict[str, Any]:
    """The same on a more typical clip than the bench's (whose caption changes on every frame over a panning
    texture, the worst case for every gate): a camera panning slowly over zidane.jpg, two people, two faces,
    a pointing hand, no cut."""
    from reelscope.infra.bench.gating import zidane_pan

    pan = zidane_pan(clip.with_name("zidane-pan.mp4"), seconds)
    return {"clip": "30 s 1120x630 30 fps pan over zidane.jpg (infra/bench/gating.zidane_pan)"} | default_set(
        pan, seconds
    )


PARTS: dict[str, Callable[[Path, float], dict[str, Any]]] = {
    "producer": lambda clip, s: producer_vs_decode(clip, s, Settings()),
    "scene": scene_vs_pyscenedetect,
    "ocr": ocr_vs_rapidocr,
    "transcription": lambda clip, s: transcription_vs_faster_whisper(SPEECH),
    "mtcnn": lambda clip, s: mtcnn_ms_per_frame(),
    "default_set": default_set,
    "default_set_pan": default_set_pan,
}


def run_parts(clip: Path, seconds: float, names: list[str]) -> dict[str, Any]:
    """The named pairs on one clip, each with the load average after it (`reelscope bench --peers` too)."""
    results: dict[str, Any] = {}
    for name in names:
        results[name] = PARTS[name](clip, seconds)
        results[name]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        print(name, json.dumps(results[name]), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--only", nargs="*", choices=list(PARTS), default=list(PARTS))
    parser.add_argument("--out", default="docs/results/peers.json")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    clip = make_clip(
        Path(tempfile.mkdtemp(prefix="reelscope-peers-")) / "clip.mp4", args.duration, (720, 1280)
    )
    results: dict[str, Any] = {
        "command": "python -m reelscope.infra.bench.peers " + " ".join(argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "clip": f"{args.duration:.0f} s 720x1280 30 fps, H.264 + AAC (infra/sample_media.cut_clip)",
        "threads": os.environ.get("OMP_NUM_THREADS", "library default"),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    results.update(run_parts(clip, args.duration, args.only))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
