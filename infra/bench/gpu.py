"""GPU group benchmark: the models of reelscope's GPU groups at real size, random weights, fixed token counts.

Runs on a machine with only torch, torchvision and transformers (plus the ultralytics wheel): no broker, no
database. It measures what batching across videos buys on one GPU and turns the throughputs into the time
factor of a realistic sampling policy (docs/benchmarks.md explains the policy):

    python -m reelscope.infra.bench.gpu --out gpu.json            # everything, a few minutes on an H100/H200
    python -m reelscope.infra.bench.gpu --only yolo --out y.json   # one part

Parts: `jpeg` (torchvision GPU JPEG decode), `yolo` (YOLO11n/11s detect and 11n-pose, fp16, 9:16 rectangular
384x640 input vs padded 640x640, forward + NMS), `whisper` (Whisper large-v3-turbo architecture through
transformers, fp16, 30 s windows, encoder + 100 greedy tokens), `vlm` (Qwen2-VL-2B architecture via
reelscope.infra.bench.vlm), `policy` (the aggregate time factor); also `objects_analyzer` (detection fps
inside the objects analyzer: its batched path end to end, without the stack).
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import time
from collections.abc import Callable
from typing import Any

import torch
from reelscope.analyzers.common.yolo import batched_nms


def timed(fn: Callable[[], Any], repeat: int = 5, warmup: int = 2) -> float:
    """Median seconds of fn() with CUDA synchronised around it."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def bench_jpeg(batch: int = 128) -> dict[str, Any]:
    import numpy as np
    import torchvision
    from PIL import Image

    # a photo-like frame (smooth gradients, mild noise) compresses like real video frames do;
    # pure noise would make every JPEG ten times larger than real ones
    yy, xx = np.mgrid[0:720, 0:1280]
    rng = np.random.default_rng(0)
    base = np.stack([xx / 5, yy / 3, (xx + yy) / 8], axis=-1) % 255
    image = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=85)
    data = torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)
    jpegs = [data] * batch
    seconds = timed(lambda: torchvision.io.decode_jpeg(jpegs, device="cuda"))
    return {"batch": batch, "fps": round(batch / seconds, 1), "size": "1280x720", "jpeg_bytes": data.numel()}


def bench_yolo(batches: tuple[int, ...] = (1, 32, 128, 256)) -> dict[str, Any]:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    os.environ.setdefault("YOLO_CONFIG_DIR", "/tmp/ultralytics")
    from ultralytics import YOLO
    from ultralytics.utils.nms import non_max_suppression

    out: dict[str, Any] = {}
    for name in ("yolo11n.yaml", "yolo11s.yaml", "yolo11n-pose.yaml"):
        model = YOLO(name).model.cuda().half().eval().fuse()
        rows = []
        for height, width in ((640, 384), (640, 640)):
            for batch in batches:
                x = torch.rand(batch, 3, height, width, device="cuda", dtype=torch.half)

                def step(
                    x: torch.Tensor = x, model: Any = model, nc: int = 0 if "pose" not in name else 1
                ) -> None:
                    with torch.inference_mode():
                        preds = model(x)
                        non_max_suppression(
                            preds[0] if isinstance(preds, tuple | list) else preds,
                            conf_thres=0.25,
                            iou_thres=0.7,
                            max_det=100,
                            nc=nc,
                        )

                seconds = timed(step, repeat=5)
                rows.append({"input": f"{width}x{height}", "batch": batch, "fps": round(batch / seconds, 1)})
        out[name.removesuffix(".yaml")] = rows
        torch.cuda.empty_cache()
    return out


def bench_yolo_graph(batches: tuple[int, ...] = (128, 256, 512)) -> dict[str, Any]:
    """YOLO11n on 9:16 input: eager forward, CUDA-graph forward, and graph forward + NMS, to see what
    launch overhead and NMS cost at large batches."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", "/tmp/ultralytics")
    from ultralytics import YOLO
    from ultralytics.utils.nms import non_max_suppression

    model = YOLO("yolo11n.yaml").model.cuda().half().eval().fuse()
    rows = []
    for batch in batches:
        static = torch.rand(batch, 3, 640, 384, device="cuda", dtype=torch.half)
        with torch.inference_mode():
            eager = timed(lambda static=static: model(static))
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(3):
                    model(static)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = model(static)
            replay = timed(graph.replay)
            with_nms = timed(
                lambda out=out, graph=graph: (
                    graph.replay(),
                    non_max_suppression(out[0], conf_thres=0.25, iou_thres=0.7, max_det=100),
                )
            )
        rows.append(
            {
                "batch": batch,
                "eager_forward_fps": round(batch / eager, 1),
                "graph_forward_fps": round(batch / replay, 1),
                "graph_forward_nms_fps": round(batch / with_nms, 1),
            }
        )
    return {"model": "yolo11n", "input": "384x640", "rows": rows}


def bench_yolo_batched_nms(batches: tuple[int, ...] = (128, 256, 512)) -> dict[str, Any]:
    """YOLO11n on 9:16 input, CUDA-graph forward + one batched NMS for the whole batch (the NMS the objects
    analyzer runs: reelscope.analyzers.common.yolo.batched_nms)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", "/tmp/ultralytics")
    from ultralytics import YOLO

    model = YOLO("yolo11n.yaml").model.cuda().half().eval().fuse()
    rows = []
    for batch in batches:
        static = torch.rand(batch, 3, 640, 384, device="cuda", dtype=torch.half)
        with torch.inference_mode():
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(3):
                    model(static)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = model(static)
            detections = batched_nms(out[0])
            seconds = timed(lambda out=out, graph=graph: (graph.replay(), batched_nms(out[0])))
        rows.append(
            {
                "batch": batch,
                "graph_forward_batched_nms_fps": round(batch / seconds, 1),
                "detections_per_image": round(sum(len(d) for d in detections) / batch, 1),
            }
        )
    return {"model": "yolo11n", "input": "384x640", "rows": rows}


def bench_objects_analyzer(batches: tuple[int, ...] = (32, 128, 256), device: str = "cuda") -> dict[str, Any]:
    """Detection fps inside the objects analyzer (`analyze` on 640x360 frames: upload, letterbox, fp16
    forward, batched NMS, payloads), YOLO11n at real size with random weights, no stack around it."""
    import tempfile
    from pathlib import Path

    import numpy as np
    from reelscope.analyzers.base import FrameItem
    from reelscope.analyzers.objects import ObjectsAnalyzer, ObjectsOptions
    from reelscope.infra.bench.gpu_stack import random_yolo

    with tempfile.TemporaryDirectory(prefix="bench_objects_") as tmp:
        analyzer = ObjectsAnalyzer(ObjectsOptions(model=str(random_yolo(Path(tmp))), device=device))
        analyzer.load()
    frame = np.random.default_rng(0).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    rows = []
    for batch in batches:
        items = [FrameItem(f"v{i % 16}", i, i / 5, frame) for i in range(batch)]

        def step(items: list[FrameItem] = items) -> None:
            analyzer.analyze(items)

        seconds = timed(step, repeat=5) if device.startswith("cuda") else cpu_timed(step)
        rows.append({"batch": batch, "fps": round(batch / seconds, 1)})
    return {
        "model": "yolo11n (random weights)",
        "input": "640x360 -> 640x384",
        "device": device,
        "rows": rows,
    }


def bench_ocr_analyzer(batches: tuple[int, ...] = (8, 32), device: str = "cuda") -> dict[str, Any]:
    """Frames per second read by the OCR analyzer on the torch engine (the packaged PP-OCR models converted
    by onnx2torch): each frame the first of its own video, a caption over texture at 960x540, so nothing is
    reused and every frame is detected and its line recognised (the worst case for gating)."""
    from reelscope.analyzers.base import FrameItem
    from reelscope.analyzers.ocr_text import OcrTextAnalyzer, OcrTextOptions
    from reelscope.infra.sample_media import textured, with_text

    analyzer = OcrTextAnalyzer(OcrTextOptions(engine="torch", device=device))
    analyzer.load()
    frames = [with_text(textured(540, 960, i), f"caption {i}") for i in range(max(batches))]
    rows = []
    calls = itertools.count()  # new video ids every call: the analyzer's memory must not reuse a reading
    for batch in batches:

        def step(batch: int = batch) -> None:
            call = next(calls)
            analyzer.analyze([FrameItem(f"c{call}v{i}", 0, 0.0, frames[i], final=True) for i in range(batch)])

        seconds = timed(step, repeat=3, warmup=1) if device.startswith("cuda") else cpu_timed(step)
        rows.append({"batch": batch, "fps": round(batch / seconds, 1)})
    return {
        "model": analyzer.describe_model()[0],
        "input": "960x540, one caption",
        "device": device,
        "rows": rows,
    }


def cpu_timed(fn: Callable[[], Any]) -> float:
    """Seconds of one fn() after one warm-up call (no CUDA to synchronise)."""
    fn()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_vlm7b_load() -> dict[str, Any]:
    """Load time of a 7B-class VLM (Qwen2-VL-7B dimensions) through the product's loading path."""
    import tempfile
    from pathlib import Path

    from reelscope.infra.bench.vlm import run_bench

    with tempfile.TemporaryDirectory(prefix="bench_vlm7b_", dir="/tmp") as tmp:
        return run_bench(
            "qwen2_vl",
            "7b",
            "cuda",
            "bfloat16",
            [32],
            prompt_tokens=32,
            new_tokens=40,
            frames=2,
            repeats=1,
            workdir=Path(tmp),
        )


def bench_whisper(batches: tuple[int, ...] = (1, 16, 64), new_tokens: int = 100) -> dict[str, Any]:
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    # large-v3-turbo: 32 encoder layers, 4 decoder layers, d_model 1280, 128 mel bins
    config = WhisperConfig(
        vocab_size=51866,
        num_mel_bins=128,
        d_model=1280,
        encoder_layers=32,
        decoder_layers=4,
        encoder_attention_heads=20,
        decoder_attention_heads=20,
        encoder_ffn_dim=5120,
        decoder_ffn_dim=5120,
        max_source_positions=1500,
        max_target_positions=448,
        decoder_start_token_id=50258,
        pad_token_id=50257,
        eos_token_id=50257,
        begin_suppress_tokens=None,
        suppress_tokens=None,
    )
    with torch.device("cuda"):  # random init on the GPU: seconds instead of a minute on the CPU
        model = WhisperForConditionalGeneration(config).to(torch.float16).eval()
    rows = []
    for batch in batches:
        features = torch.randn(batch, 128, 3000, device="cuda", dtype=torch.float16)

        def step(features: torch.Tensor = features, model: Any = model) -> None:
            with torch.inference_mode():
                model.generate(
                    features, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False
                )

        seconds = timed(step, repeat=3, warmup=1)
        rows.append(
            {"windows": batch, "seconds": round(seconds, 3), "audio_s_per_s": round(batch * 30 / seconds, 1)}
        )
    torch.cuda.empty_cache()
    return {
        "model": "whisper-large-v3-turbo architecture (random weights, transformers, fp16)",
        "new_tokens": new_tokens,
        "rows": rows,
    }


def bench_vlm_large() -> dict[str, Any]:
    return bench_vlm((96, 128))


def bench_vlm(batches: tuple[int, ...] = (1, 8, 32, 64)) -> dict[str, Any]:
    import tempfile
    from pathlib import Path

    from reelscope.infra.bench.vlm import run_bench

    with tempfile.TemporaryDirectory(prefix="bench_vlm_") as tmp:
        return run_bench(
            "qwen2_vl",
            "2b",
            "cuda",
            "bfloat16",
            list(batches),
            prompt_tokens=32,
            new_tokens=40,
            frames=2,
            repeats=2,
            workdir=Path(tmp),
        )


def policy(results: dict[str, Any]) -> dict[str, Any]:
    """GPU seconds per second of video for the documented sampling policy, from the measured best rates."""

    def best(rows: list[dict[str, Any]], key: str, where: Callable[[dict[str, Any]], bool]) -> float:
        return max(r[key] for r in rows if where(r))

    rect = lambda r: r["input"] == "384x640"  # noqa: E731 - the 9:16 input
    det = best(results["yolo"]["yolo11n"], "fps", rect)
    pose = best(results["yolo"]["yolo11n-pose"], "fps", rect)
    whisper = max(r["audio_s_per_s"] for r in results["whisper"]["rows"])
    vlm = results.get("vlm", {})
    captions = max(r["shots_per_s"] for r in vlm["results"]) if "results" in vlm else None
    jpeg = results["jpeg"]["fps"]
    per_video_second = {
        "jpeg decode (12 frames/s)": 12 / jpeg,
        "detection 5 fps": 5 / det,
        "pose 5 fps": 5 / pose,
        "whisper (1 s of audio)": 1 / whisper,
    }
    if captions:
        per_video_second["captions (1 shot per 3 s)"] = (1 / 3) / captions
    total = sum(per_video_second.values())
    return {
        "gpu_seconds_per_video_second": {k: round(v, 5) for k, v in per_video_second.items()},
        "time_factor": round(total, 4),
        "streams_per_gpu_at_realtime": round(1 / total, 1),
    }


PARTS: dict[str, Callable[[], Any]] = {
    "jpeg": bench_jpeg,
    "yolo": bench_yolo,
    "whisper": bench_whisper,
    "vlm": bench_vlm,
    "yolo_graph": bench_yolo_graph,
    "yolo_batched_nms": bench_yolo_batched_nms,
    "objects_analyzer": bench_objects_analyzer,
    "ocr_analyzer": bench_ocr_analyzer,
    "vlm_large": bench_vlm_large,
    "vlm7b_load": bench_vlm7b_load,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="jpeg,yolo,whisper,vlm")
    parser.add_argument("--out", default="gpu-benchmark.json")
    args = parser.parse_args()
    results: dict[str, Any] = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    for part in args.only.split(","):
        t0 = time.perf_counter()
        try:
            results[part] = PARTS[part]()
        except Exception as exc:  # one failing part must not lose the others' figures
            results[part] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"{part}: {time.perf_counter() - t0:.1f} s", json.dumps(results[part])[:400], flush=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    if all(k in results and "error" not in results[k] for k in ("jpeg", "yolo", "whisper")):
        results["policy"] = policy(results)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results.get("policy"), indent=2))


if __name__ == "__main__":
    main()
