"""The `reelscope` command line: analyze, push, status, results, up, down, serve, process, bench, eval, models."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from reelscope.infra.client import fetch, push_paths, read_store
from reelscope.infra.core.settings import Settings, get_settings
from reelscope.schemas.events import VIDEO_ID_PATTERN
from reelscope.schemas.records import TERMINAL, VideoStatus
from reelscope.sinks.uploads import MAX_FIELDS_BYTES


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """Per-video analysis options from the command line."""
    options: dict[str, Any] = {}
    if args.hotwords:
        options["hotwords"] = [w.strip() for w in args.hotwords.split(",") if w.strip()]
    return options


def cmd_push(settings: Settings, args: argparse.Namespace) -> int:
    for video_id in asyncio.run(push_paths(settings, args.videos, args.metadata or {}, _options(args))):
        print(video_id)
    return 0


def wait_and_show(settings: Settings, video_ids: list[str], timeout_s: float) -> dict[str, dict[str, Any]]:
    """Poll the API with progress bars per video and analyzer until every video is finished."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    docs: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=not sys.stdout.isatty(),
    ) as bars:
        tasks: dict[tuple[str, str], Any] = {}
        while len(docs) < len(video_ids) and time.monotonic() < deadline:
            for video_id in video_ids:
                if video_id in docs:
                    continue
                status = fetch(settings, f"/videos/{video_id}")
                if status is None:
                    continue
                for name, p in status.get("progress", {}).items():
                    key = (video_id, name)
                    if key not in tasks:
                        tasks[key] = bars.add_task(f"{video_id[:28]} {name}", total=p["expected"])
                    bars.update(tasks[key], completed=p["received"], total=p["expected"])
                if status["status"] in TERMINAL:
                    doc = fetch(settings, f"/videos/{video_id}/reconstruction")
                    if doc is not None:
                        docs[video_id] = doc
            time.sleep(0.25)
    return docs


def summary_lines(doc: dict[str, Any]) -> list[str]:
    """A readable summary of one reconstruction."""
    lines = [
        f"{doc['video_id']}: {doc['status'].upper()}" + (f" - {doc['error']}" if doc.get("error") else "")
    ]
    if doc["status"] == VideoStatus.FAILED:
        return lines
    media = doc.get("media", {})
    lines.append(
        f"  duration {doc['duration_s']:.2f} s from {doc['start_s']:.3f} s, "
        f"{media.get('width')}x{media.get('height')}, video={media.get('video_codec')}, "
        f"audio={media.get('audio_codec')}"
    )
    if doc.get("description"):
        d = doc["description"]
        lines.append(f"  description [{d['provenance']}]: {d['description'][:400]}")
    cuts = ", ".join(f"{c['time_s']:.2f}s" for c in doc.get("cuts", [])) or "none"
    lines.append(f"  shots {len(doc['shots'])}; hard cuts: {cuts}")
    for t in doc.get("transitions", []):
        lines.append(f"  transition {t['kind']} {t['start_s']:.2f}-{t['end_s']:.2f} s")
    for e in doc.get("text_events", [])[:8]:
        lines.append(f"  on screen {e['start_s']:.1f}-{e['end_s']:.1f} s: {e['text'][:80]}")
    about = doc.get("about") or {}
    if about.get("topics") or about.get("keywords"):
        topics = ", ".join(t["label"] for t in about.get("topics", []))
        keywords = ", ".join(k["text"] for k in about.get("keywords", [])[:6])
        lines.append(f"  about: topics {topics or '-'}; keywords {keywords or '-'}")
    loud = doc.get("summaries", {}).get("loudness")
    if loud:
        spans = ", ".join(f"{s['start_s']:.1f}-{s['end_s']:.1f}s" for s in loud["silences"]) or "none"
        lines.append(f"  audio level {loud['mean_rms_dbfs']} dBFS; silence: {spans}")
    transcript = doc.get("transcript")
    if transcript and transcript.get("text"):
        lines.append(f"  transcript: {transcript['text'][:300]}")
    lines += vision_lines(doc)
    for name, state in doc["analyzers"].items():
        lines.append(
            f"  {name:<14} {state['state']:<15} {state['received']}/{state['expected']} "
            f"[{state['model']}, {state['provenance']}]"
        )
    lines += [f"  warning: {w}" for w in doc.get("warnings", [])]
    lines.append(f"  segments: {len(doc['segments'])} x {doc['segment_s']} s")
    return lines


def _gesture_spans(gestures: list[dict[str, Any]] | None) -> str:
    spans = [f"{g['kind']} {g['start_s']:.1f}-{g['end_s']:.1f}s" for g in (gestures or [])[:6]]
    return ", ".join(spans) or "none"


def vision_lines(doc: dict[str, Any]) -> list[str]:
    """What the vision analyzers saw: objects, bodies, hands, faces (gaze, emotion), person segmentation."""
    summaries = doc.get("summaries", {})
    lines = []
    if objects := summaries.get("objects"):
        counts = ", ".join(f"{k} x{v}" for k, v in list(objects.get("max_counts", {}).items())[:8]) or "none"
        lines.append(f"  objects: {counts}; tracks: {objects.get('track_count', 0)}")
    if pose := summaries.get("pose"):
        lines.append(
            f"  bodies: up to {pose.get('max_count', 0)} at once; gestures: {_gesture_spans(pose.get('gestures'))}"
        )
    if hands := summaries.get("hands"):
        lines.append(
            f"  hands: up to {hands.get('max_count', 0)} at once, in {hands.get('hand_share', 0):.0%} of frames; "
            f"gestures: {_gesture_spans(hands.get('gestures'))}"
        )
    faces = doc.get("faces") or {}
    if faces.get("track_count"):
        emotions = ", ".join(
            f"face {t['id']} {t['emotion']}" for t in faces.get("tracks", [])[:4] if t.get("emotion")
        )
        gaze = (
            f"eye contact {faces['eye_contact_share']:.0%}, mouth open {faces['mouth_open_share']:.0%}; "
            if "eye_contact_share" in faces
            else ""
        )
        lines.append(
            f"  faces: up to {faces.get('max_faces', 0)} at once ({faces.get('shot_type')}); {gaze}"
            f"emotion: {emotions or 'not measured'}"
        )
    if segmentation := summaries.get("segmentation"):
        changes = ", ".join(f"{c['at_s']:.1f}s" for c in segmentation.get("background_changes", [])[:6])
        lines.append(
            f"  people fill {segmentation['mean_person_share']:.0%} of the frame; green screen "
            f"{segmentation['green_screen_share']:.0%}; background changes: {changes or 'none'}"
        )
    return lines


def cmd_analyze(settings: Settings, args: argparse.Namespace) -> int:
    from reelscope.infra.stack import down, up

    if args.sample:
        from reelscope.infra.sample_media import sample_clip

        args.videos.append(str(sample_clip(settings.state_dir / "samples" / "sample.mp4")))
    if not args.videos:
        print("nothing to analyze: name videos or pass --sample", file=sys.stderr)
        return 2
    info = up(settings)
    try:
        video_ids = asyncio.run(push_paths(settings, args.videos, args.metadata or {}, _options(args)))
        docs = wait_and_show(settings, video_ids, args.timeout)
    finally:
        if info.started and not args.keep:
            down(settings)
    out_dir = settings.state_dir / "reconstructions"
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = False
    for path, video_id in zip(args.videos, video_ids, strict=True):
        doc = docs.get(video_id) or {
            "video_id": video_id,
            "status": VideoStatus.FAILED,
            "error": f"no result within {args.timeout:.0f} s",
        }
        failed |= doc["status"] == VideoStatus.FAILED
        target = out_dir / f"{video_id}.json"
        if args.json:
            target = Path(args.json) / f"{video_id}.json" if len(args.videos) > 1 else Path(args.json)
            target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(doc, indent=2))
        print(f"{path}:")
        print("\n".join(summary_lines(doc)) if "analyzers" in doc else f"  FAILED - {doc['error']}")
        print(f"  reconstruction: {target}")
    return 1 if failed else 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    row = read_store(settings, "status", args.video_id)
    if row is None:
        print(f"unknown video {args.video_id}", file=sys.stderr)
        return 2
    print(json.dumps(row, indent=2, default=str))
    return 0


def cmd_results(settings: Settings, args: argparse.Namespace) -> int:
    doc = read_store(settings, "reconstruction", args.video_id)
    if doc is None:
        print(f"no reconstruction for {args.video_id}", file=sys.stderr)
        return 2
    print(json.dumps(doc, indent=2))
    return 0


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    from reelscope.infra.stack import up

    info = up(settings, processes_per_group=args.processes, supervise=True)
    print(f"stack ready at {info.api_url}; started: {', '.join(info.started) or 'nothing (already running)'}")
    return 0


def cmd_down(settings: Settings, args: argparse.Namespace) -> int:
    from reelscope.infra.stack import down

    print(f"stopped: {', '.join(down(settings)) or 'nothing was running'}")
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from reelscope.infra.services import serve

    _setup_logging(settings)
    asyncio.run(serve(settings))
    return 0


def cmd_process(settings: Settings, args: argparse.Namespace) -> int:
    from reelscope.infra.core.metrics import serve_metrics
    from reelscope.infra.core.service import KafkaService, install_signal_handlers
    from reelscope.infra.core.topics import FINALIZE
    from reelscope.infra.stack import run_dir
    from reelscope.sinks.finalizer import Finalizer
    from reelscope.stream_processors.shots import processor_for

    _setup_logging(settings)
    name = args.name or f"group-{args.group}-{os.getpid()}"
    if threads := os.environ.get("REELSCOPE_TORCH_THREADS"):
        try:
            import torch

            torch.set_num_threads(int(threads))
        except ImportError:
            pass

    async def main() -> None:
        serve_metrics(settings.metrics_port)
        processor: KafkaService = (
            Finalizer(settings) if args.group == FINALIZE else processor_for(settings, args.group)
        )
        install_signal_handlers(processor.stop)
        ready_file = run_dir(settings) / f"{name}.ready"

        async def announce() -> None:
            await processor.ready.wait()
            ready_file.write_text(str(os.getpid()))

        announcer = asyncio.create_task(announce())
        try:
            await processor.run()
        finally:
            announcer.cancel()
            ready_file.unlink(missing_ok=True)

    asyncio.run(main())
    return 0


def cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    from reelscope.infra.bench.pipeline import run_bench

    return run_bench(settings, args)


def cmd_loadtest(settings: Settings, args: argparse.Namespace) -> int:
    from reelscope.infra.bench.loadtest import run_loadtest

    return run_loadtest(settings, args)


def video_id_arg(value: str) -> str:
    """A video id as the API and the ingest schema accept it, checked before anything is sent."""
    if not re.fullmatch(VIDEO_ID_PATTERN, value):
        raise argparse.ArgumentTypeError(
            "a video id is 1 to 128 letters, digits, '.', '_' or '-', not starting with '.' or '-'"
        )
    return value


def metadata_arg(value: str) -> dict[str, Any]:
    """--metadata: a JSON object within the API's budget for it."""
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    if len(value.encode()) > MAX_FIELDS_BYTES:
        raise argparse.ArgumentTypeError(f"more than {MAX_FIELDS_BYTES} bytes")
    return parsed


def cmd_eval(settings: Settings, args: argparse.Namespace) -> int:
    from reelscope.infra.bench.eval import run_eval

    return run_eval(args)


def cmd_models(settings: Settings, args: argparse.Namespace) -> int:
    from reelscope.infra.models import PullError, catalog, print_models, pull

    if args.action is None:
        print_models(settings, args.json)
        return 0
    if args.action != "pull" or not args.name:
        print(
            "usage: reelscope models [--json] | reelscope models pull NAME [--base-url URL]", file=sys.stderr
        )
        return 2
    try:
        path = pull(settings, args.name, args.base_url or "")
    except PullError as failed:
        print(f"pull failed: {failed}", file=sys.stderr)
        return 1
    print(f"{catalog(settings)[args.name].setting}={path}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reelscope", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("analyze", help="analyze videos end to end on the local stack and print a summary")
    a.add_argument("videos", nargs="*")
    a.add_argument("--sample", action="store_true", help="also analyze a generated sample clip")
    a.add_argument("--json", help="write the reconstruction here (a directory when several videos)")
    a.add_argument("--metadata", type=metadata_arg, help="JSON object of free metadata kept with the videos")
    a.add_argument("--hotwords", help="comma-separated words to listen for (names, products)")
    a.add_argument("--timeout", type=float, default=900.0)
    a.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    a.set_defaults(fn=cmd_analyze)
    pu = sub.add_parser("push", help="put ingest requests for videos on the ingest topic")
    pu.add_argument("videos", nargs="+")
    pu.add_argument("--metadata", type=metadata_arg)
    pu.add_argument("--hotwords")
    pu.set_defaults(fn=cmd_push)
    s = sub.add_parser("status", help="a video's status and per-analyzer progress")
    s.add_argument("video_id", type=video_id_arg)
    s.set_defaults(fn=cmd_status)
    r = sub.add_parser("results", help="a video's reconstruction JSON")
    r.add_argument("video_id", type=video_id_arg)
    r.set_defaults(fn=cmd_results)
    u = sub.add_parser("up", help="start the local stack (broker, serve, processor groups)")
    u.add_argument("--processes", type=int, default=1, help="processes per group")
    u.set_defaults(fn=cmd_up)
    sub.add_parser("down", help="stop the local stack").set_defaults(fn=cmd_down)
    sub.add_parser("serve", help="run the ingest worker, aggregator and API").set_defaults(fn=cmd_serve)
    pr = sub.add_parser("process", help="run one processor group (an analyzer group, or finalize)")
    pr.add_argument("--group", required=True)
    pr.add_argument("--name", help="process name for the ready file (set by `up`)")
    pr.set_defaults(fn=cmd_process)
    b = sub.add_parser("bench", help="measure time factors and write docs/benchmarks.md figures")
    b.add_argument("--duration", type=float, default=30.0)
    b.add_argument("--concurrent", type=int, default=4, help="also time N copies pushed at once")
    b.add_argument("--scale", type=int, nargs="*", default=[], help="also run with N processes per group")
    b.add_argument("--large", action="store_true", help="also time one 60 s 1080x1920 clip")
    b.add_argument("--clip", help="measure this file instead of the generated 720x1280 clip")
    b.add_argument("--out", default="docs/benchmark-results.json")
    b.set_defaults(fn=cmd_bench)
    lt = sub.add_parser("loadtest", help="push many short videos at once; report memory, backpressure, lag")
    lt.add_argument("--videos", type=int, default=50)
    lt.add_argument("--seconds", type=float, default=3.0)
    lt.add_argument("--max-lag", type=int, default=300, help="producer backpressure bound for this run")
    lt.add_argument("--out", default="docs/results/loadtest.json")
    lt.set_defaults(fn=cmd_loadtest)
    ev = sub.add_parser("eval", help="quality scorecard: each aspect's figure on media with known truth")
    ev.add_argument("aspect", nargs="*", help="aspects to measure (default: all)")
    ev.add_argument("--out", help="also write each aspect's details here as JSON")
    ev.set_defaults(fn=cmd_eval)
    m = sub.add_parser("models", help="every analyzer's models; `models pull NAME` downloads hub weights")
    m.add_argument("action", nargs="?", choices=["pull"])
    m.add_argument("name", nargs="?", help="catalog entry to pull (yolo11n, yolo11n-pose, ...)")
    m.add_argument("--json", action="store_true", help="machine-readable listing")
    m.add_argument("--base-url", help="fetch from this mirror instead of the catalog's source")
    m.set_defaults(fn=cmd_models)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = get_settings()
    return int(args.fn(settings, args) or 0)


if __name__ == "__main__":
    sys.exit(main())
