"""Objects analyzer: offline loading and provenance, batched rectangular inference, and ByteTrack tracks.

No trained YOLO weights may be downloaded here, so the model is a random yolo11n built from ultralytics'
own YAML and saved as a checkpoint: its detections are noise, so tests check what does not depend on the
weights (loading, provenance, batching, payload geometry against ultralytics' own normalised boxes), and
the tracker runs on synthetic detection payloads with known motion. The analyzer's batched path (one
forward and one batched NMS per frame shape, no predictor) is compared with ultralytics' predictor on a
random network whose scores are spread out (`spread_checkpoint`), so the comparison is not one of ties.
Measured on this 2-core CPU, batch of 8 frames of 640x360: ~45 ms per frame.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from reelscope.analyzers.base import FrameItem, ItemResult, Runtime
from reelscope.analyzers.common.yolo import (
    FrameDetections,
    batched_nms,
    detections_payload,
    track_detections,
    ultralytics_offline,
)
from reelscope.analyzers.objects import ObjectsAnalyzer, ObjectsOptions

pytest.importorskip("ultralytics")
pytest.importorskip("torch")

MAX_SIDE = ObjectsAnalyzer.sampling.max_side


def asset(name: str) -> np.ndarray:
    """An ultralytics sample photo (RGB), resized as the producer would (longest side = max_side)."""
    spec = importlib.util.find_spec("ultralytics")
    assert spec is not None and spec.submodule_search_locations
    img = Image.open(Path(spec.submodule_search_locations[0]) / "assets" / name).convert("RGB")
    scale = MAX_SIDE / max(img.size)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BILINEAR)
    return np.asarray(img)


def random_checkpoint(path: Path, yaml: str) -> Path:
    """A never-trained model built from ultralytics' YAML, saved as a .pt checkpoint."""
    ultralytics_offline()
    from ultralytics import YOLO

    YOLO(yaml).save(path)
    return path


def spread_checkpoint(path: Path) -> Path:
    """A random yolo11n whose scores differ from anchor to anchor: a fresh random network's activations fade
    layer by layer, so its head gives every anchor the same score (ties, in any order). BatchNorm statistics
    are recalibrated on noise (each layer's output normalised again) and the head's last convolutions are
    drawn wider, with class biases spread, so boxes, scores and classes vary like a trained model's. The
    statistics come from the photos the tests use (and noise), so their activations stay in range."""
    ultralytics_offline()
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    yolo = YOLO("yolo11n.yaml")
    head = yolo.model.model[-1]
    for branch in [*head.cv2, *head.cv3]:
        torch.nn.init.normal_(branch[-1].weight, std=0.02)
    for branch in head.cv3:
        torch.nn.init.normal_(branch[-1].bias, mean=-4.0, std=1.5)
    for module in yolo.model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average over the calibration pass
    photos = [np.asarray(Image.fromarray(asset(n)).resize((640, 384))) for n in ("zidane.jpg", "bus.jpg")]
    calibration = torch.from_numpy(np.stack(photos)).permute(0, 3, 1, 2).float() / 255
    yolo.model.train()
    with torch.no_grad():
        yolo.model(torch.cat([calibration, torch.rand(2, 3, 384, 640)]))
    yolo.model.eval()
    yolo.save(path)
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_checkpoint(tmp_path_factory.mktemp("weights") / "random-yolo11n.pt", "yolo11n.yaml")


@pytest.fixture(scope="module")
def spread_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return spread_checkpoint(tmp_path_factory.mktemp("spread") / "spread-yolo11n.pt")


@pytest.fixture(scope="module")
def spread(spread_weights: Path) -> ObjectsAnalyzer:
    a = ObjectsAnalyzer(ObjectsOptions(model=str(spread_weights), conf=0.05, max_detections=40, half=False))
    a.load()
    return a


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Any attempt to resolve or connect fails the call and is recorded."""
    attempts: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(repr(args[:2]))
        raise OSError("network access in a test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.fixture(scope="module")
def analyzer(weights: Path) -> ObjectsAnalyzer:
    # conf near zero: the random head scores ~2e-4, and the payload path must see detections
    # FP32 on CUDA too, so the payload can be compared with ultralytics' own FP32 predictions
    a = ObjectsAnalyzer(ObjectsOptions(model=str(weights), conf=1e-6, max_detections=25, half=False))
    a.load()
    return a


def test_random_checkpoint_loads_offline_by_name_as_random_test(
    weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[str]
) -> None:
    """A bare name resolves in <state_dir>/weights; a checkpoint without a training record is random-test."""
    (tmp_path / "state" / "weights").mkdir(parents=True)
    (tmp_path / "state" / "weights" / "yolo11n.pt").write_bytes(weights.read_bytes())
    monkeypatch.chdir(tmp_path)
    a = ObjectsAnalyzer(ObjectsOptions(model="yolo11n.pt"), Runtime(state_dir=tmp_path / "state"))
    a.load()
    name, provenance = a.describe_model()
    assert provenance == "random-test"
    assert name.startswith("yolo11n.pt (ultralytics ") and name.endswith(" detect)")
    (payload,) = a.analyze([FrameItem("v", 0, 0.0, asset("zidane.jpg"))])
    assert payload["size"] == [640, 360]
    assert no_network == []


def test_missing_weights_fail_loudly_and_download_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    a = ObjectsAnalyzer(ObjectsOptions(model="yolo11n.pt"), Runtime(state_dir=tmp_path / "state"))
    with pytest.raises(FileNotFoundError, match=r"'yolo11n\.pt' not found.*never downloads"):
        a.load()
    assert no_network == []
    assert list(tmp_path.rglob("*.pt")) == []


def test_only_pt_checkpoints_are_accepted(tmp_path: Path) -> None:
    (tmp_path / "yolo11n.onnx").write_bytes(b"not a checkpoint")
    a = ObjectsAnalyzer(ObjectsOptions(model=str(tmp_path / "yolo11n.onnx")))
    with pytest.raises(ValueError, match=r"only ultralytics \.pt checkpoints"):
        a.load()


def test_trained_checkpoint_is_configured(weights: Path, tmp_path: Path) -> None:
    """The same network with a training record (what ultralytics' training writes) is user-configured."""
    import torch

    ckpt = torch.load(weights, weights_only=False)
    ckpt["train_args"] = {"data": "coco.yaml", "epochs": 1}
    torch.save(ckpt, tmp_path / "trained.pt")
    a = ObjectsAnalyzer(ObjectsOptions(model=str(tmp_path / "trained.pt")))
    a.load()
    assert a.describe_model()[1] == "configured"


def hooked(weights: Path) -> tuple[ObjectsAnalyzer, list[Any]]:
    """A fresh analyzer whose network records every input batch it is given."""
    a = ObjectsAnalyzer(ObjectsOptions(model=str(weights), conf=1e-6))
    a.load()
    a.analyze(
        [FrameItem("warm-up", 0, 0.0, np.zeros((64, 64, 3), dtype=np.uint8))]
    )  # CUDA adds a warm-up pass
    inputs: list[Any] = []
    assert a._yolo is not None and a._yolo.batched is not None  # the batched path, not the predictor, ran
    a._yolo.batched.net.register_forward_pre_hook(lambda _m, args: inputs.append(args[0].detach().clone()))
    return a, inputs


def test_mixed_batch_runs_one_rectangular_pass_per_frame_shape(spread_weights: Path) -> None:
    """Frames of two videos (landscape and portrait) interleaved: one forward pass per shape, each letterboxed
    to its own rectangle (640x384 and 480x640, stride 32), payloads back in item order."""
    a, inputs = hooked(spread_weights)
    zidane, bus = asset("zidane.jpg"), asset("bus.jpg")
    portrait = {1, 4, 6}
    items = [
        FrameItem("v2" if i in portrait else "v1", i, i * 0.2, bus if i in portrait else zidane)
        for i in range(8)
    ]
    payloads = a.analyze(items)
    assert sorted(tuple(x.shape) for x in inputs) == [(3, 3, 640, 480), (5, 3, 384, 640)]
    assert [p["size"] for p in payloads] == [[480, 640] if i in portrait else [640, 360] for i in range(8)]
    # identical frames give identical payloads, whichever group and position they ran in
    assert payloads[0] == payloads[7] and payloads[1] == payloads[6]


def test_frames_reach_the_network_as_rgb(weights: Path) -> None:
    """Items are RGB and the network takes RGB (what ultralytics feeds it): a red frame must arrive red."""
    a, inputs = hooked(weights)
    red = np.zeros((360, 640, 3), dtype=np.uint8)
    red[..., 0] = 255
    a.analyze([FrameItem("v", 0, 0.0, red)])
    (batch,) = inputs
    assert batch[0, :, 192, 320].float().tolist() == [1.0, 0.0, 0.0]


def predictor(a: ObjectsAnalyzer, image: np.ndarray, conf: float) -> Any:
    """ultralytics' own predictor on the same weights and frame (it takes BGR)."""
    assert a._yolo is not None
    return a._yolo.model.predict(np.ascontiguousarray(image[..., ::-1]), conf=conf, verbose=False)[0]


def frames_of_every_kind() -> list[np.ndarray]:
    """Landscape and portrait photos at the sampled size, noise, a frame the letterbox shrinks (1280x720)
    and one it enlarges (180x320)."""
    rng = np.random.default_rng(7)
    return [
        asset("zidane.jpg"),
        asset("bus.jpg"),
        rng.integers(0, 256, (360, 640, 3), dtype=np.uint8),
        asset("zidane.jpg")[::-1].copy(),
        np.asarray(Image.fromarray(asset("bus.jpg")).resize((720, 1280))),
        np.asarray(Image.fromarray(asset("zidane.jpg")).resize((320, 180))),
    ]


def matched(
    mine: list[tuple[int, float, np.ndarray]],
    theirs: list[tuple[int, float, np.ndarray]],
    conf: float,
    box: float,
) -> float:
    """The share of `theirs` (class, score, box) found in `mine` with the same class, the score within
    `conf` and every box coordinate within `box`. Not 1.0 exactly: two near-equal overlapping boxes at the
    IoU threshold can be kept by one path and suppressed by the other, through float differences of 1e-5
    between fused kernels, and a suppression changes what follows it."""
    hits = sum(
        any(c == k and abs(s - t) <= conf and np.abs(b - x).max() <= box for k, t, x in mine)
        for c, s, b in theirs
    )
    return hits / max(len(theirs), 1)


def rows(found: FrameDetections, top: int) -> list[tuple[int, float, np.ndarray]]:
    order = np.argsort(-found.conf, kind="stable")[:top]
    return [(int(found.cls[i]), float(found.conf[i]), found.xyxy[i]) for i in order]


def test_batched_path_gives_the_predictors_boxes_classes_and_scores(spread: ObjectsAnalyzer) -> None:
    """One forward + one batched NMS per shape, letterboxed on the device and scaled back to frame pixels,
    finds what ultralytics' predictor finds on the same weights and frames, frame by frame."""
    assert spread._yolo is not None
    frames = frames_of_every_kind()
    batched = spread._yolo.detect(frames, 0.05)
    assert spread._yolo.batched is not None
    for image, mine in zip(frames, batched, strict=True):
        ref = FrameDetections.of_result(predictor(spread, image, 0.05))
        assert mine.size == ref.size == (image.shape[1], image.shape[0])
        assert len(ref.conf) > 50 and len(mine.conf) == len(ref.conf)
        assert mine.conf.max() == pytest.approx(ref.conf.max(), abs=1e-4)
        # the 100 most confident of each, boxes in frame pixels
        assert matched(rows(mine, 100), rows(ref, 100), conf=1e-4, box=0.05) >= 0.95
        assert matched(rows(ref, 100), rows(mine, 100), conf=1e-4, box=0.05) >= 0.95
    noise = frames[2]  # and a frame of noise, whatever else is in the batch, is found alike
    alone = spread._yolo.detect([noise], 0.05)[0]
    assert matched(rows(alone, 100), rows(batched[2], 100), conf=1e-4, box=0.05) >= 0.95


def test_payload_form_is_the_predictors(spread: ObjectsAnalyzer) -> None:
    """The analyzer's payload is the one the predictor's Results gave before: same keys, sizes, counts, and
    boxes normalised by the frame, most confident first, capped at max_detections."""
    assert spread._yolo is not None
    frames = frames_of_every_kind()
    payloads = spread.analyze([FrameItem("v", i, i * 0.2, f) for i, f in enumerate(frames)])
    for image, payload in zip(frames, payloads, strict=True):
        ref = detections_payload(predictor(spread, image, 0.05), spread._yolo.names, spread.options)
        assert payload.keys() == ref.keys() == {"size", "count", "counts", "detections"}
        assert payload["size"] == ref["size"] and payload["count"] == ref["count"]
        assert sum(payload["counts"].values()) == payload["count"] == sum(ref["counts"].values())
        dets, want = payload["detections"], ref["detections"]
        assert len(dets) == len(want) == 40
        assert all(d.keys() == {"cls", "label", "conf", "box"} for d in dets)
        assert [d["conf"] for d in dets] == sorted((d["conf"] for d in dets), reverse=True)
        assert all(0.0 <= v <= 1.0 for d in dets for v in d["box"])
        assert all(d["label"] == spread._yolo.names[d["cls"]] for d in dets)
        as_rows = [
            (lambda ds: [(d["cls"], d["conf"], np.array(d["box"])) for d in ds])(x) for x in (dets, want)
        ]
        assert matched(*as_rows, conf=2e-4, box=2e-4) >= 0.9  # rounded to 4 decimals, normalised boxes
        assert len(json.dumps(payload)) < 4096


def test_payload_matches_ultralytics_normalised_boxes(analyzer: ObjectsAnalyzer) -> None:
    """With a fresh random head (every anchor scored alike), the payload is capped and the boxes are in
    the frame; a real threshold finds nothing, as the predictor does."""
    image = asset("bus.jpg")
    (payload,) = analyzer.analyze([FrameItem("v", 0, 0.0, image)])
    assert len(predictor(analyzer, image, 0.1).boxes) == 0  # a random head scores far below any threshold ...
    direct = predictor(analyzer, image, 1e-6)
    dets = payload["detections"]
    assert len(dets) == 25 and payload["count"] == len(direct.boxes) > 25  # ... so at 1e-6 there are plenty
    np.testing.assert_allclose([d["conf"] for d in dets], direct.boxes.conf.cpu().numpy()[:25], atol=1e-4)
    assert all(0.0 <= v <= 1.0 for d in dets for v in d["box"])
    assert sum(payload["counts"].values()) == payload["count"]


def test_batched_nms_is_ultralytics_nms_per_image() -> None:
    """The one NMS over a batch keeps what ultralytics' per-image non_max_suppression keeps."""
    import torch
    from ultralytics.utils.nms import non_max_suppression

    torch.manual_seed(1)
    batch, classes, anchors = 3, 5, 400
    xy = torch.rand(batch, 2, anchors) * 300
    wh = torch.rand(batch, 2, anchors) * 80 + 4
    preds = torch.cat([xy, wh, torch.rand(batch, classes, anchors)], dim=1)
    mine = batched_nms(preds, conf=0.3, iou=0.5, max_det=50)
    theirs = non_max_suppression(preds.clone(), conf_thres=0.3, iou_thres=0.5, max_det=50)
    for a, b in zip(mine, theirs, strict=True):
        assert 10 < len(a) <= 50
        torch.testing.assert_close(a, b[b[:, 4].argsort(descending=True, stable=True)], atol=1e-5, rtol=0)


def det(x: float, y: float = 0.3, conf: float = 0.9, label: str = "person") -> dict[str, Any]:
    return {
        "cls": 0 if label == "person" else 16,
        "label": label,
        "conf": conf,
        "box": [x, y, x + 0.2, y + 0.3],
    }


def results(frames: list[list[dict[str, Any]]], fps: float = 5.0) -> list[ItemResult]:
    return [
        ItemResult(f"{i:06d}", i / fps, i / fps, {"count": len(d), "counts": {}, "detections": d})
        for i, d in enumerate(frames)
    ]


def test_box_moving_steadily_is_one_track() -> None:
    summary = ObjectsAnalyzer.video_summary(results([[det(0.05 + 0.02 * i)] for i in range(20)]))
    assert summary is not None and summary["tracker"] == "bytetrack (ultralytics)"
    (track,) = summary["tracks"]
    assert track["track_id"] == 1 and track["label"] == "person" and track["frames"] == 20
    assert track["first_s"] == 0.0 and track["last_s"] == 3.8
    assert track["mean_box"] == pytest.approx([0.24, 0.3, 0.44, 0.6], abs=1e-3)


def test_person_crossing_the_frame_in_two_seconds_is_one_track_at_the_sampled_rate() -> None:
    """The analyzer samples 3 fps: a person 0.2 wide crossing 0.6 of the frame in 2 s (a brisk walk across
    a 9:16 frame) moves half its width between samples, and stays one track both ways."""
    fps = ObjectsAnalyzer.sampling.fps
    assert fps is not None
    steps = round(2 * fps) + 1
    for sign, start in ((1, 0.05), (-1, 0.65)):
        frames = [[det(start + sign * 0.6 * i / (steps - 1))] for i in range(steps)]
        summary = ObjectsAnalyzer.video_summary(results(frames, fps))
        assert summary is not None and summary["track_count"] == 1, (sign, summary)
        assert summary["tracks"][0]["frames"] == steps


def test_two_boxes_two_tracks_in_order_of_appearance() -> None:
    frames = [[det(0.7 - 0.01 * i, 0.5, label="dog"), det(0.05 + 0.01 * i)] for i in range(20)]
    summary = ObjectsAnalyzer.video_summary(results(frames))
    assert summary is not None
    tracks = {t["label"]: t for t in summary["tracks"]}
    assert summary["track_count"] == 2 and summary["tracks_by_label"] == {"dog": 1, "person": 1}
    assert {tracks["dog"]["track_id"], tracks["person"]["track_id"]} == {1, 2}
    assert tracks["dog"]["frames"] == tracks["person"]["frames"] == 20


def test_gap_of_two_frames_keeps_the_id_a_long_gap_does_not() -> None:
    short = [[] if i in (8, 9) else [det(0.05 + 0.02 * i)] for i in range(20)]
    (track,) = track_detections([(r.start_s, r.payload["detections"]) for r in results(short)])
    assert track.track_id == 1 and len(track.times) == 18 and track.times[-1] == pytest.approx(3.8)
    # gone for 3 s (over the 1 s the rescaled track buffer keeps a lost track at 5 fps): a new track
    long = [[] if 5 <= i < 20 else [det(0.3)] for i in range(30)]
    assert [
        len(t.times) for t in track_detections([(r.start_s, r.payload["detections"]) for r in results(long)])
    ] == [
        5,
        10,
    ]


def test_single_frame_flicker_is_no_track_and_summary_is_order_independent() -> None:
    frames = [[det(0.05 + 0.02 * i)] + ([det(0.7, 0.6, conf=0.6)] if i == 10 else []) for i in range(20)]
    rs = results(frames)
    summary = ObjectsAnalyzer.video_summary(rs)
    assert summary is not None and summary["track_count"] == 1
    assert ObjectsAnalyzer.video_summary(list(reversed(rs))) == summary


def test_summary_without_tracker_degrades(monkeypatch: pytest.MonkeyPatch) -> None:
    """An aggregator without ultralytics still writes the counts and says why there are no tracks."""
    monkeypatch.setitem(sys.modules, "ultralytics.trackers.byte_tracker", None)
    rs = results([[det(0.1)]] * 3)
    for r in rs:
        r.payload["counts"] = {"person": 1}
    summary = ObjectsAnalyzer.video_summary(rs)
    assert summary is not None and summary["tracks"] is None and summary["tracker"].startswith("unavailable")
    assert summary["max_counts"] == {"person": 1}


def test_segment_fields_most_at_once_per_label() -> None:
    fields = ObjectsAnalyzer.segment_fields(
        [
            {"count": 3, "counts": {"person": 2, "cup": 1}},
            {"count": 1, "counts": {"person": 1}},
            {"count": 2, "counts": {"cup": 2}},
        ]
    )
    assert fields == {"count": 2.0, "max_count": 3, "counts": {"cup": 2, "person": 2}}
