"""The GPU end-to-end script's logic on the CPU at tiny size: a real broker, groups and serve with chdb, the
random YOLO11n on the objects analyzer's batched path, waves of 1 and 2 generated videos; and its figures
from Prometheus samples. Only the device differs on a lent GPU (infra/gpu-stack.sh)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from reelscope.analyzers.objects import ObjectsAnalyzer
from reelscope.infra.bench.gpu_stack import delta, main, wave_figures
from reelscope.infra.bench.pipeline import bucket_quantile

LATENCY = "reelscope_result_latency_seconds_bucket"


def bucket(le: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (LATENCY, (("le", le),))


def test_quantile_interpolates_within_a_bucket() -> None:
    buckets = [(0.5, 10.0), (1.0, 20.0), (2.0, 40.0), (float("inf"), 40.0)]
    assert bucket_quantile(buckets, 0.5) == 1.0  # 20 of 40 at le=1
    assert bucket_quantile(buckets, 0.95) == pytest.approx(1.9)  # 38 of 40: nine tenths into (1, 2]
    assert bucket_quantile([(1.0, 0.0), (float("inf"), 0.0)], 0.95) is None


def test_wave_figures_are_deltas_over_the_wave() -> None:
    """A wave's latency and detection rate count only what happened during it, not what came before."""
    objects = (("analyzer", "objects"), ("group", "vision"))
    before = {
        "group-vision-0": {
            bucket("1.0"): 100.0,
            bucket("+Inf"): 100.0,
            ("reelscope_results_out_total", objects): 500.0,
            ("reelscope_analyzer_seconds_total", (("analyzer", "objects"),)): 5.0,
        }
    }
    after = {
        "group-vision-0": {
            bucket("1.0"): 110.0,
            bucket("+Inf"): 120.0,
            ("reelscope_results_out_total", objects): 800.0,
            ("reelscope_analyzer_seconds_total", (("analyzer", "objects"),)): 6.0,
        }
    }
    figures = wave_figures(delta(after, before))
    assert figures["inside_analyzers"]["objects"] == {"items": 300, "seconds": 1.0, "items_per_s": 300.0}
    latency = figures["result_latency"]["group-vision-0"]
    assert latency["results"] == 20.0 and latency["p50_s"] == 1.0  # 10 of the 20 within 1 s


def test_tiny_stack_end_to_end_on_the_cpu(tmp_path: Path) -> None:
    environ = dict(os.environ)
    out = tmp_path / "gpu-stack.json"
    try:
        rc = main(
            [
                *("--videos", "1,2", "--seconds", "2", "--device", "cpu", "--warmup", "0"),
                *("--work", str(tmp_path / "work"), "--out", str(out)),
            ]
        )
    finally:
        os.environ.clear()
        os.environ.update(environ)
    report = json.loads(out.read_text())
    assert rc == 0
    assert "REELSCOPE_GROUP_DEVICES" not in report["environment"]  # no GPU pinning on the CPU
    assert report["machine"]["chdb"]["module"].endswith("chdb/__init__.py")
    assert [w["videos"] for w in report["waves"]] == [1, 2]
    per_video = round(2 * ObjectsAnalyzer.sampling.fps)
    for wave in report["waves"]:
        assert wave["all_complete"] and wave["aggregate_time_factor"] > 0
        # 2 s at objects' sampling rate, every frame through the analyzer in this wave alone
        assert wave["inside_analyzers"]["objects"]["items"] == per_video * wave["videos"]
        assert wave["detection_fps_inside_analyzer"] > 0
        p95 = wave["per_segment_p95_s"]
        assert p95["group-light-0"] is not None and p95["group-vision-0"] is not None
        assert wave["result_latency"]["group-vision-0"]["results"] == per_video * wave["videos"]


def test_objects_analyzer_bench_runs_on_the_cpu() -> None:
    """The GPU bench's in-analyzer detection part, at tiny size on the CPU: same code, other device."""
    pytest.importorskip("ultralytics")
    from reelscope.infra.bench.gpu import bench_objects_analyzer

    result = bench_objects_analyzer((2,), device="cpu")
    assert [r["batch"] for r in result["rows"]] == [2] and result["rows"][0]["fps"] > 0


def test_ocr_analyzer_bench_runs_on_the_cpu() -> None:
    """The GPU bench's OCR part (the torch engine), at tiny size on the CPU: same code, other device."""
    pytest.importorskip("rapidocr_onnxruntime")
    pytest.importorskip("onnx2torch")
    from reelscope.infra.bench.gpu import bench_ocr_analyzer

    result = bench_ocr_analyzer((2,), device="cpu")
    assert "run by torch on cpu" in result["model"]
    assert [r["batch"] for r in result["rows"]] == [2] and result["rows"][0]["fps"] > 0
