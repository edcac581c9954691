"""The `reelscope` command line: analyze, push, status, results, up, down, serve, process, bench, eval, models.

A user's mistake is answered in one line and a non-zero exit (cli_errors.py); progress is bars on a
terminal and plain lines otherwise (cli_progress.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reelscope.analyzers.registry import enabled_analyzers
from reelscope.infra.cli_errors import (
    OneLineParser,
    UserError,
    debugging,
    handled,
    load_settings,
    one_of,
    output_path,
    positive,
    require_api,
    require_broker,
    unknown,
)
from reelscope.infra.cli_progress import Bars, Lines, reporter
from reelscope.infra.cli_summary import summary_lines
from reelscope.infra.client import fetch, push_paths, read_store
from reelscope.infra.core.ingest import resolve_uri
from reelscope.infra.core.metrics import every_group
from reelscope.infra.core.settings import Settings
from reelscope.infra.core.topics import FINALIZE
from reelscope.schemas.events import VIDEO_ID_PATTERN
from reelscope.schemas.records import TERMINAL, VideoStatus
from reelscope.sinks.uploads import MAX_FIELDS_BYTES

from reelscope import __version__

if TYPE_CHECKING:
    from reelscope.infra.stack import StackInfo


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


def readable_videos(settings: Settings, videos: list[str]) -> list[str]:
    """The local files to push, checked by the same URI policy the producer applies (missing file, a
    directory, a refused scheme or root), so a mistake is answered now rather than as a failed video later."""
    return [resolve_uri(video, settings) for video in videos]


def cmd_push(settings: Settings, args: argparse.Namespace) -> int:
    paths = readable_videos(settings, args.videos)
    require_broker(settings)
    if args.wait:
        require_api(settings)
    video_ids = asyncio.run(push_paths(settings, paths, args.metadata or {}, _options(args)))
    for video_id in video_ids:
        print(video_id, flush=True)
    if not args.wait:
        return 0
    docs = wait_and_show(settings, video_ids, args.timeout, reporter())
    return show_results(settings, args.videos, video_ids, docs, args.timeout, None)


def wait_and_show(
    settings: Settings, video_ids: list[str], timeout_s: float, watch: Lines | Bars
) -> dict[str, dict[str, Any]]:
    """Poll the API, showing each video's status and analyzers' progress, until every video is finished."""
    docs: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    with watch:
        while len(docs) < len(video_ids) and time.monotonic() < deadline:
            for video_id in video_ids:
                if video_id in docs:
                    continue
                status = fetch(settings, f"/videos/{video_id}")
                if status is None:
                    continue
                watch.status(video_id, status["status"])
                for name, p in status.get("progress", {}).items():
                    watch.analyzer(video_id, name, p["received"], p["expected"])
                if status["status"] in TERMINAL:
                    doc = fetch(settings, f"/videos/{video_id}/reconstruction")
                    if doc is not None:
                        docs[video_id] = doc
            time.sleep(0.25)
    return docs


def show_results(
    settings: Settings,
    paths: list[str],
    video_ids: list[str],
    docs: dict[str, dict[str, Any]],
    timeout_s: float,
    json_out: str | None,
) -> int:
    """Write each reconstruction to a file and print its summary; 1 when any video failed or timed out."""
    out_dir = settings.state_dir / "reconstructions"
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = False
    for path, video_id in zip(paths, video_ids, strict=True):
        doc = docs.get(video_id) or {
            "video_id": video_id,
            "status": VideoStatus.FAILED,
            "error": f"no result within {timeout_s:.0f} s",
        }
        failed |= doc["status"] == VideoStatus.FAILED
        target = out_dir / f"{video_id}.json"
        if json_out:
            target = Path(json_out) / f"{video_id}.json" if len(paths) > 1 else Path(json_out)
            target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(doc, indent=2))
        print(f"{path}:")
        print("\n".join(summary_lines(doc)) if "analyzers" in doc else f"  FAILED - {doc['error']}")
        print(f"  reconstruction: {target}")
    return 1 if failed else 0


def start_stack(settings: Settings, processes_per_group: int = 1, supervise: bool = False) -> StackInfo:
    """`up` after checking the analyzer names; a stack that cannot start (a port held, a process that exited,
    not ready in time) is one line pointing at the logs, where the processes' own words are."""
    from reelscope.infra.stack import log_dir, up

    enabled_analyzers(settings.analyzers, settings)  # a misspelled analyzer, before anything starts
    try:
        return up(settings, processes_per_group=processes_per_group, supervise=supervise)
    except (RuntimeError, TimeoutError) as exc:
        first = str(exc).strip().splitlines()[0].rstrip(":")
        raise UserError(f"the stack did not start: {first}; logs in {log_dir(settings)}") from exc


def cmd_analyze(settings: Settings, args: argparse.Namespace) -> int:
    from reelscope.infra.stack import down

    if args.sample:
        from reelscope.infra.sample_media import sample_clip

        args.videos.append(str(sample_clip(settings.state_dir / "samples" / "sample.mp4")))
    if not args.videos:
        raise UserError("nothing to analyze: name videos or pass --sample")
    paths = readable_videos(settings, args.videos)
    watch = reporter()
    info = start_stack(settings)
    try:
        video_ids = asyncio.run(push_paths(settings, paths, args.metadata or {}, _options(args)))
        for path, video_id in zip(args.videos, video_ids, strict=True):
            watch.stage(f"pushed {path} as {video_id}")
        docs = wait_and_show(settings, video_ids, args.timeout, watch)
    finally:
        if info.started and not args.keep:
            watch.stage("stopping the stack")
            down(settings)
    return show_results(settings, args.videos, video_ids, docs, args.timeout, args.json)


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    row = read_store(settings, "status", args.video_id)
    if row is None:
        raise UserError(f"unknown video {args.video_id}")
    print(json.dumps(row, indent=2, default=str))
    return 0


def cmd_results(settings: Settings, args: argparse.Namespace) -> int:
    doc = read_store(settings, "reconstruction", args.video_id)
    if doc is None:
        raise UserError(f"no reconstruction for {args.video_id}")
    print(json.dumps(doc, indent=2))
    return 0


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    info = start_stack(settings, args.processes, supervise=True)
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
    from reelscope.infra.stack import process_groups, run_dir
    from reelscope.sinks.finalizer import Finalizer
    from reelscope.stream_processors.shots import processor_for

    enabled = process_groups(settings)
    if args.group not in enabled:
        raise UserError(
            f"no enabled analyzer belongs to group {args.group!r} with REELSCOPE_ANALYZERS="
            f"{','.join(settings.analyzers)} (groups that run here: {', '.join(enabled)})"
        )
    _setup_logging(settings)
    name = args.name or f"group-{args.group}-{os.getpid()}"
    if threads := os.environ.get("REELSCOPE_TORCH_THREADS"):
        try:
            import torch

            torch.set_num_threads(int(threads))
        except ImportError:
            pass

    async def main() -> None:
        serve_metrics(settings.metrics_port, settings.metrics_host)
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

    if getattr(args, "curves", False):
        from reelscope.infra.bench.scale import run_curves

        args.out = args.out or "docs/results/scale-curves.json"
        return run_curves(settings, args)
    args.out = args.out or "docs/benchmark-results.json"
    if args.clip:
        resolve_uri(args.clip, settings)  # a missing clip is said now, not after the stack started
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
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object ({{...}}), not {type(parsed).__name__}")
    if len(value.encode()) > MAX_FIELDS_BYTES:
        raise argparse.ArgumentTypeError(f"more than {MAX_FIELDS_BYTES} bytes")
    return parsed


def cmd_eval(settings: Settings, args: argparse.Namespace) -> int:
    from reelscope.infra.bench.eval import ASPECTS, run_eval

    for aspect in args.aspect:
        if aspect not in ASPECTS:
            raise UserError(unknown("aspect", aspect, ASPECTS))
    return run_eval(args)


def cmd_models(settings: Settings, args: argparse.Namespace) -> int:
    from reelscope.infra.models import PullError, catalog, print_models, pull

    if args.action is None:
        print_models(settings, args.json)
        return 0
    if args.action != "pull" or not args.name:
        raise UserError("name what to pull: reelscope models pull NAME [--base-url URL]")
    try:
        path = pull(settings, args.name, args.base_url or "")
    except PullError as failed:
        print(f"pull failed: {failed}", file=sys.stderr)
        return 1
    print(f"{catalog(settings)[args.name].setting}={path}")
    return 0


def number_list(kind: type[float] | type[int]) -> Callable[[str], list[float] | list[int]]:
    """An argparse type for a comma-separated list of numbers above zero (`10,60,600`)."""
    one = positive(kind)

    def check(value: str) -> list[float] | list[int]:
        numbers = [one(x.strip()) for x in value.split(",") if x.strip()]
        if not numbers:
            raise argparse.ArgumentTypeError("a comma-separated list of numbers, e.g. 1,4,16")
        return numbers  # type: ignore[return-value]

    return check


def curves_options(b: argparse.ArgumentParser) -> None:
    """`bench --curves` and its options; absent from the namespace unless given, so the plain bench's
    recorded command stays as it was."""
    quiet = argparse.SUPPRESS
    b.add_argument(
        "--curves",
        action="store_true",
        default=quiet,
        help="instead: cost and memory against video length and concurrency (infra/bench/scale.py)",
    )
    b.add_argument(
        "--curve",
        choices=["both", "length", "concurrency"],
        default=quiet,
        help="with --curves: which curve to measure (both)",
    )
    b.add_argument(
        "--lengths",
        type=number_list(float),
        default=quiet,
        help="with --curves: video lengths, s (10,60,600)",
    )
    b.add_argument(
        "--concurrency",
        type=number_list(int),
        default=quiet,
        help="with --curves: videos at once (1,4,16,50)",
    )
    b.add_argument(
        "--concurrency-length",
        type=positive(float),
        default=quiet,
        help="with --curves: each video's length in the concurrency curve, s (10)",
    )
    b.add_argument(
        "--cell-timeout",
        type=positive(float),
        default=quiet,
        help="with --curves: seconds a cell may take before its videos count as timed out (3600)",
    )
    b.add_argument("--clips", default=quiet, help="with --curves: keep the generated clips in this folder")
    b.add_argument(
        "--no-shed",
        action="store_true",
        default=quiet,
        help="with --curves: no load shedding (REELSCOPE_BATCH__MAX_STRIDE=1), the full cost of each cell",
    )


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="reelscope", description=__doc__)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument(
        "--debug", action="store_true", help="show the traceback behind an error (also: REELSCOPE_DEBUG=1)"
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    a = sub.add_parser("analyze", help="analyze videos end to end on the local stack and print a summary")
    a.add_argument("videos", nargs="*", help="local video files to analyze")
    a.add_argument("--sample", action="store_true", help="also analyze a generated sample clip")
    a.add_argument(
        "--json", type=output_path, help="write the reconstruction here (a directory when several videos)"
    )
    a.add_argument("--metadata", type=metadata_arg, help="JSON object of free metadata kept with the videos")
    a.add_argument("--hotwords", help="comma-separated words to listen for (names, products)")
    a.add_argument(
        "--timeout", type=positive(float), default=900.0, help="seconds to wait for results (default: 900)"
    )
    a.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    a.set_defaults(fn=cmd_analyze)
    pu = sub.add_parser("push", help="put ingest requests for videos on the ingest topic; prints their ids")
    pu.add_argument("videos", nargs="+", help="local video files to analyze")
    pu.add_argument(
        "--metadata", type=metadata_arg, help='JSON object kept with the videos, e.g. \'{"campaign": "q3"}\''
    )
    pu.add_argument(
        "--hotwords", help="comma-separated words the transcription listens for (names, products)"
    )
    pu.add_argument("--wait", action="store_true", help="wait for the results and print their summaries")
    pu.add_argument(
        "--timeout", type=positive(float), default=900.0, help="with --wait: seconds to wait (default: 900)"
    )
    pu.set_defaults(fn=cmd_push)
    s = sub.add_parser("status", help="a video's status and per-analyzer progress")
    s.add_argument("video_id", type=video_id_arg, help="the id `push` or `analyze` printed")
    s.set_defaults(fn=cmd_status)
    r = sub.add_parser("results", help="a video's reconstruction JSON")
    r.add_argument("video_id", type=video_id_arg, help="the id `push` or `analyze` printed")
    r.set_defaults(fn=cmd_results)
    u = sub.add_parser("up", help="start the local stack (broker, serve, processor groups)")
    u.add_argument("--processes", type=positive(int), default=1, help="processes per group (default: 1)")
    u.set_defaults(fn=cmd_up)
    sub.add_parser("down", help="stop the local stack").set_defaults(fn=cmd_down)
    sub.add_parser("serve", help="run the ingest worker, aggregator and API").set_defaults(fn=cmd_serve)
    pr = sub.add_parser("process", help="run one processor group (an analyzer group, or finalize)")
    names = every_group()
    pr.add_argument(
        "--group", required=True, type=one_of("group", names), help=f"the group to run: {', '.join(names)}"
    )
    pr.add_argument("--name", help="process name for the ready file (set by `up`)")
    pr.set_defaults(fn=cmd_process)
    b = sub.add_parser("bench", help="measure time factors and write docs/benchmarks.md figures")
    b.add_argument(
        "--duration",
        type=positive(float),
        default=30.0,
        help="seconds of generated clip to time (default: 30)",
    )
    b.add_argument("--concurrent", type=positive(int), default=4, help="also time N copies pushed at once")
    b.add_argument(
        "--scale", type=positive(int), nargs="*", default=[], help="also run with N processes per group"
    )
    b.add_argument("--large", action="store_true", help="also time one 60 s 1080x1920 clip")
    b.add_argument("--clip", help="measure this file instead of the generated 720x1280 clip")
    b.add_argument("--peers", action="store_true", help="also PySceneDetect, RapidOCR, faster-whisper, PyAV")
    b.add_argument(
        "--out",
        type=output_path,
        help="where the figures go as JSON (default: docs/benchmark-results.json; with --curves "
        "docs/results/scale-curves.json)",
    )
    curves_options(b)
    b.set_defaults(fn=cmd_bench)
    lt = sub.add_parser("loadtest", help="push many short videos at once; report memory, backpressure, lag")
    lt.add_argument("--videos", type=positive(int), default=50, help="how many videos (default: 50)")
    lt.add_argument("--seconds", type=positive(float), default=3.0, help="each video's length (default: 3)")
    lt.add_argument(
        "--max-lag", type=positive(int), default=300, help="producer backpressure bound for this run"
    )
    lt.add_argument(
        "--out",
        type=output_path,
        default="docs/results/loadtest.json",
        help="report file (default: %(default)s)",
    )
    lt.add_argument(
        "--watch",
        choices=("events", "poll"),
        default="events",
        help="follow the videos on GET /events (the dashboard's stream) or poll GET /videos/{id} (default: %(default)s)",
    )
    lt.add_argument(
        "--audio",
        choices=("tone", "speech"),
        default="tone",
        help="each clip's sound: a tone (no speech: transcription has nothing to decode) or espeak-ng "
        "reading a different passage per video (needs espeak-ng) (default: %(default)s)",
    )
    lt.set_defaults(fn=cmd_loadtest)
    ev = sub.add_parser("eval", help="quality scorecard: each aspect's figure on media with known truth")
    ev.add_argument("aspect", nargs="*", help="aspects to measure (default: all)")
    ev.add_argument("--out", type=output_path, help="also write each aspect's details here as JSON")
    ev.set_defaults(fn=cmd_eval)
    m = sub.add_parser("models", help="every analyzer's models; `models pull NAME` downloads hub weights")
    m.add_argument("action", nargs="?", choices=["pull"], help="`pull` downloads NAME (default: list)")
    m.add_argument("name", nargs="?", help="catalog entry to pull (yolo11n, yolo11n-pose, ...)")
    m.add_argument("--json", action="store_true", help="machine-readable listing")
    m.add_argument("--base-url", help="fetch from this mirror instead of the catalog's source")
    m.set_defaults(fn=cmd_models)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return handled(args.command, debugging(args.debug), lambda: int(args.fn(load_settings(), args) or 0))


if __name__ == "__main__":
    sys.exit(main())
