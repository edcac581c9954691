"""OCR made cheaper without reading differently: each shortcut gives RapidOCR's own result, checked against
RapidOCR on real frames (generated captions over texture, real RapidOCR models)."""

from __future__ import annotations

import numpy as np
import pytest
from reelscope.analyzers.ocr_text import OcrTextAnalyzer, det_table, det_tensor
from reelscope.infra.sample_media import textured, with_text

from tests.conftest import loaded_ocr


@pytest.fixture(scope="module")
def analyzer() -> OcrTextAnalyzer:
    return loaded_ocr()


def bgr_frames() -> list[np.ndarray]:
    """Captions over texture in three shapes: portrait, landscape, and a size no multiple of 32."""
    return [
        with_text(textured(360, 640, 3), "HELLO 123")[:, :, ::-1].copy(),
        with_text(textured(640, 360, 4, shift=5), "Frame = 42 | caption")[:, :, ::-1].copy(),
        with_text(textured(613, 347, 5), "odd size 77")[:, :, ::-1].copy(),
    ]


def test_det_tensor_is_rapidocrs_bit_for_bit(analyzer: OcrTextAnalyzer) -> None:
    det = analyzer._engine.text_det
    for bgr in bgr_frames():
        pre = det.get_preprocess(max(bgr.shape[:2]))
        sized = pre.resize(bgr)
        theirs = pre(bgr)
        ours = det_tensor(sized, det_table(det.mean, det.std))
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        assert np.array_equal(ours, theirs)


def test_det_table_follows_other_mean_and_std() -> None:
    from rapidocr_onnxruntime.ch_ppocr_det.utils import DetPreProcess

    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    image = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    pre = DetPreProcess(960, "max", mean, std)
    assert np.array_equal(det_tensor(pre.resize(image), det_table(mean, std)), pre(image))


def test_detection_boxes_are_rapidocrs(analyzer: OcrTextAnalyzer) -> None:
    for bgr in bgr_frames():
        theirs, _ = analyzer._engine.text_det(bgr)
        ours = analyzer._det_boxes(bgr)
        assert ours is not None and len(ours) >= 1
        assert np.array_equal(ours, theirs)


def test_folded_graphs_read_the_same(analyzer: OcrTextAnalyzer) -> None:
    """The folded detector and recogniser give the unfolded ones' boxes and texts, scores within 1e-4."""
    from reelscope.analyzers.ocr_text import OcrTextOptions

    assert analyzer.folds and all(n > 0 for n in analyzer.folds.values())
    plain = OcrTextAnalyzer(OcrTextOptions(fold_graphs=False))
    plain.load()
    assert plain.folds == {}
    for bgr in bgr_frames():
        boxes = analyzer._det_boxes(bgr)
        assert np.array_equal(boxes, plain._det_boxes(bgr))
        crops = analyzer._engine.get_crop_img_list(bgr, list(analyzer._engine.sorted_boxes(boxes)))
        ours, _ = analyzer._engine.text_rec(crops)
        theirs, _ = plain._engine.text_rec(crops)
        assert [t for t, _ in ours] == [t for t, _ in theirs] and ours[0][0]
        assert np.allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-4)
