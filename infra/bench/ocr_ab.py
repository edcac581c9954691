"""The OCR analyzer of another checkout (`--before`, e.g. /work/main) against this one, in one process on the
same sampled frames, runs alternating, so a shared machine's load weighs on both alike.

Frame sets: `bench` (pipeline.make_clip: a caption changing on every frame over a panning texture), `pan`
(gating.zidane_pan: no text, everything moves) and `still` (a counter changing on every frame over a still
texture). Reports CPU seconds of the `analyze` calls per round, their ratios, and how many frames read the
same texts (the same ignoring spaces, which PP-OCR reads either way) and the same payloads, and the
after analyzer's gating counters (detections run and deferred). Run with
`python -m reelscope.infra.bench.ocr_ab --before /work/main/analyzers/ocr_text.py --out docs/results/x.json`;
`--before-option`/`--after-option KEY=VALUE` set OcrTextOptions of either side (the same checkout against
itself: `--before analyzers/ocr_text.py --before-option detect_every=1`).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from reelscope.analyzers import ocr_text
from reelscope.analyzers.base import FrameItem
from reelscope.infra.bench.ab import alternating, emit, warm_up
from reelscope.infra.bench.gating import zidane_pan
from reelscope.infra.bench.peers import sampled_frames
from reelscope.infra.bench.pipeline import make_clip
from reelscope.infra.sample_media import textured, with_text


def frame_sets(names: list[str], folder: Path) -> dict[str, list[FrameItem]]:
    sets: dict[str, list[FrameItem]] = {}
    for name in names:
        if name == "bench":
            items = sampled_frames(make_clip(folder / "clip.mp4", 30.0, (720, 1280)), 2.0, 960)
        elif name == "pan":
            items = sampled_frames(zidane_pan(folder / "pan.mp4", 30.0), 2.0, 960)
        else:
            background = textured(540, 960, 7)
            images = [with_text(background, f"Frame = {100 + i}") for i in range(60)]
            items = [FrameItem(name, i, 0.5 * i, image) for i, image in enumerate(images)]
        sets[name] = [
            FrameItem(name, i, it.pts_s, it.image, first=i == 0, final=i == len(items) - 1)
            for i, it in enumerate(items)
        ]
    return sets


def load_module(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("ocr_text_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ocr_text_before"] = module
    spec.loader.exec_module(module)
    return module


def texts(payload: dict[str, Any]) -> list[str]:
    return [line["text"] for line in payload["lines"]]


def options(module: Any, pairs: list[str]) -> Any:
    """The module's OcrTextOptions with KEY=VALUE pairs (pydantic parses the values)."""
    return module.OcrTextOptions(**dict(pair.split("=", 1) for pair in pairs))


COUNTERS = (
    "detections",
    "detections_deferred",
    "detections_skipped",
    "frames_reused",
    "recognised",
    "reused",
)


def squeezed(payload: dict[str, Any]) -> list[str]:
    return [text.replace(" ", "") for text in texts(payload)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--before", type=Path, required=True, help="the other checkout's analyzers/ocr_text.py"
    )
    parser.add_argument(
        "--sets", nargs="*", choices=["bench", "pan", "still"], default=["bench", "pan", "still"]
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--before-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--after-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    sets = frame_sets(args.sets, Path(tempfile.mkdtemp(prefix="reelscope-ocr-ab-")))
    before = load_module(args.before)
    analyzers = {
        "before": before.OcrTextAnalyzer(options(before, args.before_option)),
        "after": ocr_text.OcrTextAnalyzer(options(ocr_text, args.after_option)),
    }
    warm_up(list(analyzers.values()), next(iter(sets.values()))[0])
    cpu, out, counts = alternating(
        analyzers, sets, args.rounds, lambda a: {c: getattr(a, c, 0) for c in COUNTERS}
    )
    results: dict[str, Any] = {
        "command": "python -m reelscope.infra.bench.ocr_ab " + " ".join(argv or sys.argv[1:]),
        "load_average_before": [round(x, 2) for x in load_before],
    }
    for name in sets:
        before, after = out["before", name], out["after", name]
        results[name] = {
            "frames": len(before),
            "texts_same": sum(texts(p) == texts(q) for p, q in zip(before, after, strict=True)),
            "texts_same_but_spaces": sum(
                squeezed(p) == squeezed(q) for p, q in zip(before, after, strict=True)
            ),
            "texts_differing": [
                [i, texts(p), texts(q)]
                for i, (p, q) in enumerate(zip(before, after, strict=True))
                if texts(p) != texts(q)
            ],
            "payloads_identical": sum(p == q for p, q in zip(before, after, strict=True)),
            "before_cpu_s": cpu["before"][name],
            "after_cpu_s": cpu["after"][name],
            "ratio_of_min": round(min(cpu["after"][name]) / min(cpu["before"][name]), 3),
            "ratio_of_sum": round(sum(cpu["after"][name]) / sum(cpu["before"][name]), 3),
            "before_counts_per_round": counts["before", name],
            "after_counts_per_round": counts["after", name],
        }
    return emit(results, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
