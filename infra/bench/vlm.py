"""Captioning benchmark: load time and shots per second of a vision-language model, at fixed token counts.

Weights cannot be downloaded here, so the model is built from a config with random weights (a 2B-class
Qwen2-VL written down from the published Qwen2-VL-2B dimensions, or a tiny one), saved with
`save_pretrained`, and loaded back through the analyzer's own `from_pretrained` path. Its tokenizer and
processors are built locally too. Random weights compute exactly what trained ones do, so the timings hold
for the real model; the text they produce is noise (provenance `random-test`).

    python -m reelscope.infra.bench.vlm --family qwen2_vl --size 2b --device cuda --batches 1,2,4,8,16,32 \
        --prompt-tokens 32 --new-tokens 32 --out results.json

Every shot carries K frames of a vertical 252x448 picture (what the producer publishes at max_side 448)
and a prompt of exactly `--prompt-tokens` text tokens; `min_new_tokens = max_new_tokens` (and no stop
token allowed) forces exactly `--new-tokens` generated tokens per shot, so batch sizes compare like for
like. Load time is `from_pretrained` of model and processor right after saving them (files in the page
cache: cold-ish, not a first read from disk). The builders are in random_vlm.py (the tests load them too).

On the GPU machine: `--device cuda` (dtype auto: bfloat16); the 2B model is initialised on the GPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from reelscope.analyzers.base import ShotItem
from reelscope.analyzers.common.describe import stop_ids
from reelscope.infra.bench.random_vlm import BUILDERS, build_random_vlm


def make_shots(count: int, frames: int, seed: int = 0) -> list[ShotItem]:
    """`count` 3-second shots of alternating videos, each with `frames` vertical 252x448 noise frames."""
    rng = np.random.default_rng(seed)
    shots = []
    for i in range(count):
        pictures = tuple(rng.integers(0, 256, (448, 252, 3), dtype=np.uint8) for _ in range(frames))
        times = tuple(3.0 * i + 3.0 * (j + 0.5) / frames for j in range(frames))
        shots.append(ShotItem(f"video-{i % 2}", i // 2, 3.0 * i, 3.0 * i + 3.0, pictures, times, {}))
    return shots


def run_bench(
    family: str,
    size: str,
    device: str,
    dtype: str,
    batches: list[int],
    prompt_tokens: int,
    new_tokens: int,
    frames: int,
    repeats: int,
    workdir: Path,
) -> dict[str, Any]:
    """Build and save the model, load it through CaptionAnalyzer, then time `repeats` batches per size."""
    import torch
    import transformers
    from reelscope.analyzers.captions import CaptionAnalyzer, CaptionsOptions

    started = time.perf_counter()
    path = build_random_vlm(family, size, workdir / f"{family}-{size}", device=device)
    build_s = time.perf_counter() - started
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    prompt = " ".join(f"w{i % 100}" for i in range(prompt_tokens))
    options = CaptionsOptions(
        model=str(path),
        device=device,
        dtype=dtype,
        frames_per_shot=frames,
        prompt=prompt,
        max_new_tokens=new_tokens,
        batch_size=max(batches),
    )
    analyzer = CaptionAnalyzer(options)
    analyzer.load()
    tokenizer = analyzer._processor.tokenizer
    # exactly new_tokens per shot: no stop token (EOS or padding) may end a caption early
    stops = sorted(stop_ids(analyzer._model, tokenizer))
    analyzer.generate_overrides = {"min_new_tokens": new_tokens, "suppress_tokens": stops}
    frames = analyzer.frames_per_shot
    measured_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    sample = make_shots(1, frames)[0]
    input_tokens = int(analyzer._inputs([list(sample.frames)])["input_ids"].shape[1])
    params = sum(p.numel() for p in analyzer._model.parameters())
    rows = []
    for batch in batches:
        shots = make_shots(batch, frames, seed=batch)
        analyzer.analyze(shots)  # this batch shape's first run pays its own set-up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        for _ in range(repeats):
            payloads = analyzer.analyze(shots)
        elapsed = time.perf_counter() - started
        tokens = {p["tokens"] for p in payloads}
        if tokens != {new_tokens}:
            raise RuntimeError(f"batch {batch}: generated {sorted(tokens)} tokens, expected {new_tokens}")
        rows.append(
            {
                "batch": batch,
                "seconds_per_batch": round(elapsed / repeats, 4),
                "shots_per_s": round(batch * repeats / elapsed, 3),
                "new_tokens_per_s": round(batch * repeats * new_tokens / elapsed, 1),
                "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20)
                if device.startswith("cuda")
                else None,
            }
        )
        print(
            f"batch {batch:>3}: {rows[-1]['seconds_per_batch']:>9.4f} s/batch "
            f"{rows[-1]['shots_per_s']:>9.3f} shots/s {rows[-1]['new_tokens_per_s']:>9.1f} tok/s",
            flush=True,
        )
    return {
        "family": family,
        "size": size,
        "parameters": params,
        "device": str(analyzer._device),
        "device_name": torch.cuda.get_device_name()
        if device.startswith("cuda")
        else f"{platform.machine()} cpu",
        "dtype": str(analyzer._dtype).removeprefix("torch."),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "frames_per_shot": analyzer.frames_per_shot,
        "frame_size": [252, 448],
        "prompt_tokens": measured_prompt,
        "input_tokens_per_shot": input_tokens,
        "new_tokens": new_tokens,
        "repeats": repeats,
        "build_s": round(build_s, 2),
        "load_s": round(analyzer.load_seconds or 0.0, 3),
        "warmup_s": round(analyzer.warmup_seconds or 0.0, 3),
        "provenance": analyzer.describe_model()[1],
        "results": rows,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", default="qwen2_vl", choices=sorted(BUILDERS))
    parser.add_argument("--size", default="tiny", help="tiny for every family; qwen2_vl: 2b; blip: base")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32"])
    parser.add_argument("--batches", default="1,2,4,8,16,32")
    parser.add_argument("--prompt-tokens", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--frames", type=int, default=0, help="frames per shot; 0: the family's default")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the model is saved (default: a temp dir)"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    with tempfile.TemporaryDirectory(prefix="bench_vlm_") as tmp:
        result = run_bench(
            args.family,
            args.size,
            args.device,
            args.dtype,
            batches,
            args.prompt_tokens,
            args.new_tokens,
            args.frames,
            args.repeats,
            args.workdir or Path(tmp),
        )
    print(
        f"{result['family']} {result['size']} ({result['parameters'] / 1e6:.1f} M parameters) on "
        f"{result['device_name'] or result['device']}, {result['dtype']}: load {result['load_s']} s, warm-up "
        f"{result['warmup_s']} s; {result['frames_per_shot']} frames/shot, {result['input_tokens_per_shot']} input "
        f"tokens/shot ({result['prompt_tokens']} prompt), {result['new_tokens']} new tokens"
    )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
