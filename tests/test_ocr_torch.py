"""The OCR analyzer's GPU path: RapidOCR's packaged PP-OCR models converted to torch (onnx2torch), checked here
on the CPU against onnxruntime running the same files: the same outputs within float rounding, the same
readings of real captions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from reelscope.analyzers.base import FrameItem
from reelscope.analyzers.ocr_text import MODEL_FILES, OcrTextAnalyzer, OcrTextOptions
from reelscope.infra.sample_media import textured, with_text

pytest.importorskip("rapidocr_onnxruntime")
pytest.importorskip("onnx2torch")

SHAPES = {  # two input sizes per model: the converted graphs must not be fixed to one
    "ch_PP-OCRv4_det_infer.onnx": [(1, 3, 640, 384), (1, 3, 352, 640)],
    "ch_PP-OCRv4_rec_infer.onnx": [(1, 3, 48, 320), (3, 3, 48, 200)],
    "ch_ppocr_mobile_v2.0_cls_infer.onnx": [(2, 3, 48, 192), (1, 3, 48, 192)],
}


def models_dir() -> Path:
    import rapidocr_onnxruntime

    return Path(rapidocr_onnxruntime.__file__).parent / "models"


@pytest.mark.parametrize("file", MODEL_FILES)
def test_each_converted_model_gives_onnxruntimes_outputs(file: str) -> None:
    import onnxruntime as ort
    from reelscope.analyzers.common.onnx_torch import TorchSession

    reference = ort.InferenceSession(str(models_dir() / file), providers=["CPUExecutionProvider"])
    session = TorchSession(models_dir() / file, "cpu", reference)
    name = reference.get_inputs()[0].name
    assert [i.name for i in session.get_inputs()] == [name]
    rng = np.random.default_rng(0)
    for shape in SHAPES[file]:
        x = rng.random(shape, dtype=np.float32)
        theirs = reference.run(None, {name: x})[0]
        ours = session.run(None, {name: x})[0]
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() < 1e-4


def frames() -> list[FrameItem]:
    images = [
        with_text(textured(540, 960, 3), "HELLO 123"),
        with_text(textured(960, 540, 4, shift=5), "Frame = 42 | caption"),
        with_text(textured(613, 347, 5), "odd size 77"),
    ]
    return [FrameItem("v", i, i * 0.5, image, final=i == len(images) - 1) for i, image in enumerate(images)]


def texts(analyzer: OcrTextAnalyzer) -> list[list[str]]:
    return [[line["text"] for line in p["lines"]] for p in analyzer.analyze(frames())]


def test_the_torch_engine_reads_what_onnxruntime_reads_and_says_so() -> None:
    plain = OcrTextAnalyzer()
    plain.load()
    assert plain.torch_device is None and plain.folds  # on a CPU, auto stays on onnxruntime
    on_torch = OcrTextAnalyzer(OcrTextOptions(engine="torch", device="cpu"))
    on_torch.load()
    assert on_torch.torch_device == "cpu" and on_torch.folds is None
    assert on_torch._engine.text_rec.session.session.get_providers() == ["torch:cpu"]
    assert "run by torch on cpu" in on_torch.describe_model()[0]
    read = texts(on_torch)
    assert read == texts(plain)
    assert [" ".join(lines).replace(" ", "") for lines in read] == [
        "HELLO123",
        "Frame=42|caption",
        "oddsize77",
    ]
