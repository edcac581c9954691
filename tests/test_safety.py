"""Safety analyzer: NudeNet's packaged detector on the ultralytics sample photos and on a generated
skin-free picture, the explicit flag on synthetic detections, and flagged spans.

No explicit image is kept in the repository. Measured on the photos at the analyzer's 320 px sampling:
zidane.jpg reports FACE_MALE ~0.31; bus.jpg FEET_COVERED ~0.35, FACE_FEMALE ~0.31, FEET_EXPOSED ~0.30; no
explicit class reaches NudeNet's 0.2 reporting floor on either.
Measured on this 2-core CPU, batch of 8 frames: ~60 ms per frame.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from reelscope.analyzers.base import FrameItem, ItemResult
from reelscope.analyzers.safety import EXPLICIT_LABELS, SafetyAnalyzer, detections, frame_payload

MAX_SIDE = SafetyAnalyzer.sampling.max_side


def asset(name: str) -> np.ndarray:
    """An ultralytics sample photo (RGB) resized as the producer would for this analyzer (longest side 320)."""
    spec = importlib.util.find_spec("ultralytics")  # locate the wheel without importing all of it
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("ultralytics (whose wheel ships the sample photos) is not installed")
    img = Image.open(Path(spec.submodule_search_locations[0]) / "assets" / name).convert("RGB")
    scale = MAX_SIDE / max(img.size)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BILINEAR)
    return np.asarray(img)


@pytest.fixture(scope="module")
def analyzer() -> SafetyAnalyzer:
    pytest.importorskip("nudenet")
    a = SafetyAnalyzer()
    a.load()
    return a


def test_photos_are_not_explicit(analyzer: SafetyAnalyzer) -> None:
    zidane, bus = analyzer.analyze(
        [FrameItem("v", 0, 0.0, asset("zidane.jpg")), FrameItem("w", 0, 0.0, asset("bus.jpg"))]
    )
    for payload in (zidane, bus):
        assert payload["explicit"] is False and payload["explicit_score"] == 0.0
        assert not set(payload["labels"]) & EXPLICIT_LABELS
    assert set(zidane["labels"]) == {"FACE_MALE"} and 0.2 <= zidane["labels"]["FACE_MALE"] < 0.5
    assert set(bus["labels"]) >= {"FEET_COVERED"} and 0.2 <= bus["labels"]["FEET_COVERED"] < 0.5
    assert analyzer.describe_model() == ("nudenet 320n detector (onnx)", "packaged")


def test_skin_free_picture_has_no_detection(analyzer: SafetyAnalyzer) -> None:
    """A blue-green gradient with grey stripes: nothing NudeNet knows, so it reports nothing."""
    image = np.zeros((320, 180, 3), dtype=np.uint8)
    image[..., 1] = np.linspace(0, 255, 180, dtype=np.uint8)[None, :]
    image[..., 2] = 200
    image[::40] = 128
    payloads = analyzer.analyze([FrameItem("v", i, float(i), image) for i in range(3)])
    assert payloads == [{"labels": {}, "explicit_score": 0.0, "explicit": False}] * 3


def test_explicit_flag_from_exposed_classes_only() -> None:
    dets = [
        {"class": "FEET_EXPOSED", "score": 0.95, "box": [0, 0, 1, 1]},
        {"class": "MALE_BREAST_EXPOSED", "score": 0.9, "box": [0, 0, 1, 1]},
        {"class": "BUTTOCKS_EXPOSED", "score": 0.45, "box": [0, 0, 1, 1]},
        {"class": "BUTTOCKS_EXPOSED", "score": 0.61, "box": [0, 0, 1, 1]},
    ]
    payload = frame_payload(dets, threshold=0.5)
    assert payload["explicit"] is True and payload["explicit_score"] == 0.61
    assert list(payload["labels"]) == ["FEET_EXPOSED", "MALE_BREAST_EXPOSED", "BUTTOCKS_EXPOSED"]
    assert frame_payload(dets, threshold=0.7)["explicit"] is False
    assert frame_payload(dets[:2], threshold=0.5) == {
        "labels": {"FEET_EXPOSED": 0.95, "MALE_BREAST_EXPOSED": 0.9},
        "explicit_score": 0.0,
        "explicit": False,
    }


def sample(t: float, score: float) -> ItemResult:
    labels = {"FEMALE_BREAST_EXPOSED": score} if score else {"FACE_FEMALE": 0.8}
    return ItemResult(
        f"{t:06.1f}", t, t, {"labels": labels, "explicit_score": score, "explicit": score >= 0.5}
    )


def test_flagged_spans_and_segments() -> None:
    scores = [0.0, 0.0, 0.0, 0.7, 0.9, 0.6, 0.3, 0.0, 0.0, 0.8]
    summary = SafetyAnalyzer.video_summary([sample(float(t), s) for t, s in enumerate(scores)])
    assert summary == {
        "frames": 10,
        "explicit": True,
        "explicit_share": 0.4,
        "max_score": 0.9,
        "flagged_spans": [
            {
                "start_s": 3.0,
                "end_s": 6.0,
                "frames": 3,
                "max_score": 0.9,
                "labels": ["FEMALE_BREAST_EXPOSED"],
            },
            {
                "start_s": 9.0,
                "end_s": 10.0,
                "frames": 1,
                "max_score": 0.8,
                "labels": ["FEMALE_BREAST_EXPOSED"],
            },
        ],
    }
    clean = SafetyAnalyzer.video_summary([sample(float(t), 0.0) for t in range(4)])
    assert clean is not None and clean["explicit"] is False and clean["flagged_spans"] == []
    fields = SafetyAnalyzer.segment_fields([sample(0.0, 0.7).payload, sample(0.5, 0.0).payload])
    assert fields == {"explicit_score": 0.7, "explicit_share": 0.5}


def test_detections_are_nudenets_own_on_real_photos_and_dense_outputs(analyzer: SafetyAnalyzer) -> None:
    """The analyzer runs NudeNet's session itself and reads its output with a numpy `detections`: on real
    photos (people, a portrait, at the 320 px sampling and at 640 px) the detections equal NudeNet's own
    `detect_batch` on the same frames, boxes included; on dense random outputs (hundreds of candidates a
    frame, overlapping, NMS at work) they equal its `_postprocess` exactly."""
    nudenet = pytest.importorskip("nudenet.nudenet")
    grace = Path(pytest.importorskip("matplotlib").get_data_path()) / "sample_data" / "grace_hopper.jpg"
    hopper = np.asarray(Image.open(grace).convert("RGB"))
    frames = [asset("zidane.jpg"), asset("bus.jpg"), hopper[::2, ::2].copy(), hopper]
    frames += [np.ascontiguousarray(f[:, ::-1]) for f in frames]
    theirs = analyzer._detector.detect_batch(frames, batch_size=len(frames))
    ours = analyzer.detect(frames)
    assert ours == theirs
    assert sum(map(len, ours)) >= 8  # faces and covered parts: the comparison saw real detections

    labels = list(vars(nudenet)["__labels"])
    rng = np.random.default_rng(1)
    dense = 0
    for _ in range(40):
        out = rng.random((1, 22, 2100), dtype=np.float32)
        out[0, :4] *= 400
        out[0, 4:] **= 6  # most anchors under the 0.2 floor, a few hundred over it
        width, height = (int(v) for v in rng.integers(100, 400, 2))
        side = max(width, height)
        expected = nudenet._postprocess([out], side - width, side - height, 0, 0, width, height, 320, 320)
        assert detections(out[0], width, height, side - width, side - height, labels) == expected
        dense += len(expected)
    assert dense > 40 * 10
