"""Pose analyzer: body cues on synthetic skeletons, gestures and waves on synthetic tracks, and the loading
and payload path with a random yolo11n-pose built from ultralytics' YAML (its keypoints are noise).

The synthetic person stands facing the camera in a 1000 x 1000 frame: shoulders 160 px apart at y=300, hips
at y=550 (torso 250 px, so the body scale is 200 px), arms hanging. COCO's left joints are the person's
left, which a person facing the camera shows on the frame's right.
Measured on this 2-core CPU, batch of 8 frames of 640x360: ~55 ms per frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reelscope.analyzers import pose
from reelscope.analyzers.base import FrameItem, ItemResult
from reelscope.analyzers.common import yolo
from reelscope.analyzers.pose import (
    LEFT_ELBOW,
    LEFT_EYE,
    LEFT_SHOULDER,
    LEFT_WRIST,
    NOSE,
    RIGHT_ELBOW,
    RIGHT_EYE,
    RIGHT_SHOULDER,
    RIGHT_WRIST,
    PoseAnalyzer,
    PoseOptions,
    arms_crossed,
    body_scale,
    facing,
    hands_raised,
    pointing,
)

from tests.test_objects import asset, random_checkpoint

STANDING = {
    0: (500, 200),  # nose
    1: (520, 185),  # left eye
    2: (480, 185),
    3: (540, 195),  # left ear
    4: (460, 195),
    5: (580, 300),  # left shoulder
    6: (420, 300),
    7: (600, 420),  # left elbow
    8: (400, 420),
    9: (610, 530),  # left wrist
    10: (390, 530),
    11: (560, 550),  # left hip
    12: (440, 550),
    13: (560, 750),  # left knee
    14: (440, 750),
    15: (560, 950),  # left ankle
    16: (440, 950),
}


def skeleton(hidden: tuple[int, ...] = (), **moved: tuple[float, float]) -> np.ndarray:
    """17 x 3 pixel keypoints of the standing person, joints moved by COCO index (j5=(x, y)) or hidden."""
    kp = np.array([[x, y, 0.9] for x, y in STANDING.values()], dtype=np.float64)
    for key, (x, y) in moved.items():
        kp[int(key[1:])] = (x, y, 0.9)
    for j in hidden:
        kp[j, 2] = 0.1
    return kp


def joints(**named: tuple[float, float]) -> dict[str, tuple[float, float]]:
    index = {
        "le": LEFT_ELBOW,
        "re": RIGHT_ELBOW,
        "lw": LEFT_WRIST,
        "rw": RIGHT_WRIST,
        "ls": LEFT_SHOULDER,
        "rs": RIGHT_SHOULDER,
    }
    return {f"j{index[k]}": v for k, v in named.items()}


def test_standing_person_shows_no_gesture_and_faces_the_camera() -> None:
    kp = skeleton()
    assert body_scale(kp) == pytest.approx(200.0)
    assert (hands_raised(kp), arms_crossed(kp), pointing(kp), facing(kp)) == ("none", False, None, "camera")


def test_hands_raised() -> None:
    left_up = skeleton(**joints(le=(620, 220), lw=(630, 110)))
    assert hands_raised(left_up) == "left"
    both = skeleton(**joints(le=(620, 220), lw=(630, 110), re=(380, 220), rw=(370, 110)))
    assert hands_raised(both) == "both"
    # a hand at the ear (a phone call) is below eye height: not raised
    assert hands_raised(skeleton(**joints(le=(590, 330), lw=(545, 215)))) == "none"
    assert hands_raised(skeleton(hidden=(LEFT_SHOULDER,))) is None
    # an arm straight up is raised, not pointing
    assert pointing(both) is None


def test_arms_crossed() -> None:
    crossed = skeleton(**joints(lw=(450, 400), rw=(550, 400)))
    assert arms_crossed(crossed) is True
    # hands together at the belly without crossing the midline
    assert arms_crossed(skeleton(**joints(lw=(530, 420), rw=(470, 420)))) is False
    # wrists crossed above the head are not crossed arms
    assert arms_crossed(skeleton(**joints(lw=(450, 100), rw=(550, 100)))) is False
    assert arms_crossed(skeleton(hidden=(RIGHT_WRIST,))) is None


def test_pointing_toward_the_frame_edges() -> None:
    assert pointing(skeleton(**joints(le=(680, 300), lw=(780, 290)))) == "right"
    assert pointing(skeleton(**joints(re=(320, 300), rw=(220, 250)))) == "left"
    # bent elbow, short reach, or both arms out (a T): no pointing
    assert pointing(skeleton(**joints(le=(680, 300), lw=(690, 200)))) is None
    assert pointing(skeleton(**joints(le=(650, 300), lw=(700, 300)))) is None
    assert pointing(skeleton(**joints(le=(680, 300), lw=(780, 300), re=(320, 300), rw=(220, 300)))) is None


def test_facing() -> None:
    assert facing(skeleton()) == "camera"
    assert facing(skeleton(hidden=(NOSE, LEFT_EYE, RIGHT_EYE, 3, 4))) == "away"
    assert facing(skeleton(hidden=(RIGHT_EYE,))) == "side"  # a profile shows one eye
    narrow = skeleton(**joints(ls=(510, 300), rs=(490, 300)))  # shoulders 20 px apart for a 250 px torso
    assert facing(narrow) == "side"
    assert arms_crossed(narrow) is None
    assert facing(skeleton(hidden=tuple(range(17)))) is None


SIZE = (1000, 1000)


def person(kp: np.ndarray, dx: float = 0.0) -> dict[str, Any]:
    """A stored person (normalised keypoints, cues) for a skeleton shifted right by dx pixels."""
    kp = kp.copy()
    kp[:, 0] += dx
    seen = kp[kp[:, 2] >= 0.5, :2]
    box = [seen[:, 0].min() - 40, seen[:, 1].min() - 60, seen[:, 0].max() + 40, seen[:, 1].max() + 20]
    return {
        "conf": 0.9,
        "box": [round(v / SIZE[i % 2], 4) for i, v in enumerate(box)],
        "keypoints": [[x / SIZE[0], y / SIZE[1], c] for x, y, c in kp],
        **pose.body_cues(kp),
    }


def results(frames: list[list[dict[str, Any]]], fps: float = 5.0) -> list[ItemResult]:
    return [
        ItemResult(f"{i:06d}", i / fps, i / fps, {"size": list(SIZE), "count": len(p), "persons": p})
        for i, p in enumerate(frames)
    ]


def waving(i: int, swing: float) -> np.ndarray:
    """Left forearm up (wrist above the elbow), the wrist swinging sideways by +-swing body-scale units."""
    offset = swing * 200 * (1 if i % 2 else -1)
    return skeleton(**joints(le=(660, 330), lw=(660 + offset, 200)))


def test_wave_found_on_a_track_and_not_for_a_still_raised_hand() -> None:
    frames = [[person(waving(i, 0.4) if 5 <= i < 12 else skeleton(), dx=0.0)] for i in range(20)]
    summary = PoseAnalyzer.video_summary(results(frames))
    assert summary is not None and summary["track_count"] == 1
    waves = [g for g in summary["gestures"] if g["kind"] == "wave"]
    assert waves == [{"kind": "wave", "track_id": 1, "start_s": 1.0, "end_s": 2.4, "hand": "left"}]
    still = [[person(waving(i, 0.0) if 5 <= i < 12 else skeleton())] for i in range(20)]
    summary = PoseAnalyzer.video_summary(results(still))
    assert summary is not None and not [g for g in summary["gestures"] if g["kind"] == "wave"]
    # a small tremor is no wave either
    shaky = [[person(waving(i, 0.04) if 5 <= i < 12 else skeleton())] for i in range(20)]
    summary = PoseAnalyzer.video_summary(results(shaky))
    assert summary is not None and not [g for g in summary["gestures"] if g["kind"] == "wave"]


def test_two_people_two_tracks_with_their_own_gestures() -> None:
    """The person on the left crosses arms from 1.0 s to 2.0 s; the one on the right points right for 1 s."""
    crossed = skeleton(**joints(lw=(450, 400), rw=(550, 400)))
    points = skeleton(**joints(le=(680, 300), lw=(780, 290)))
    frames = [
        [
            person(crossed if 5 <= i < 10 else skeleton(), dx=-300),
            person(points if 10 <= i < 15 else skeleton(), dx=150),
        ]
        for i in range(20)
    ]
    summary = PoseAnalyzer.video_summary(results(frames))
    assert summary is not None and summary["track_count"] == 2 and summary["max_count"] == 2
    left, right = sorted(summary["tracks"], key=lambda t: t["mean_box"][0])
    assert left["arms_crossed_share"] == 0.25 and right["pointing_share"] == 0.25
    assert left["facing"] == right["facing"] == "camera"
    gestures = [(g["kind"], g["track_id"], g["start_s"], g["end_s"]) for g in summary["gestures"]]
    assert gestures == [
        ("arms_crossed", left["track_id"], 1.0, 2.0),
        ("pointing", right["track_id"], 2.0, 3.0),
    ]
    assert summary["gestures"][1]["direction"] == "right"


def test_pose_tracks_reuse_the_objects_tracker() -> None:
    assert pose.track_detections is yolo.track_detections


def test_segment_fields_shares() -> None:
    fields = PoseAnalyzer.segment_fields(
        [
            {"count": 2, "hands_raised": True, "arms_crossed": False, "pointing": False, "facing_camera": 2},
            {"count": 1, "hands_raised": False, "arms_crossed": False, "pointing": True, "facing_camera": 0},
        ]
    )
    assert fields == {
        "count": 1.5,
        "max_count": 2,
        "hands_raised_share": 0.5,
        "arms_crossed_share": 0.0,
        "pointing_share": 0.5,
        "facing_camera": 1.0,
    }


@pytest.fixture(scope="module")
def pose_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("ultralytics")
    pytest.importorskip("torch")
    return random_checkpoint(tmp_path_factory.mktemp("weights") / "random-pose.pt", "yolo11n-pose.yaml")


def test_random_pose_model_loads_and_stores_its_keypoints(pose_weights: Path) -> None:
    a = PoseAnalyzer(PoseOptions(model=str(pose_weights), conf=1e-6, half=False))
    a.load()
    name, provenance = a.describe_model()
    assert provenance == "random-test" and name.endswith(" pose)")
    image = asset("zidane.jpg")
    payloads = a.analyze([FrameItem("v", 0, 0.0, image), FrameItem("w", 0, 0.0, asset("bus.jpg"))])
    assert [p["size"] for p in payloads] == [[640, 360], [480, 640]]
    first = payloads[0]
    assert len(first["persons"]) == 6  # capped at max_detections
    direct = a._yolo.model.predict(np.ascontiguousarray(image[..., ::-1]), conf=1e-6, verbose=False)[0]
    top = int(np.argmax(direct.boxes.conf.cpu().numpy()))
    stored = np.array(first["persons"][0]["keypoints"])
    np.testing.assert_allclose(stored[:, :2], direct.keypoints.xyn.cpu().numpy()[top], atol=1e-4)
    np.testing.assert_allclose(stored[:, 2], direct.keypoints.conf.cpu().numpy()[top], atol=1e-3)
    kp = direct.keypoints.data.cpu().numpy()[top]
    assert {k: first["persons"][0][k] for k in ("hands_raised", "facing")} == {
        "hands_raised": hands_raised(kp),
        "facing": facing(kp),
    }


def test_detection_weights_are_refused_for_pose(tmp_path: Path) -> None:
    pytest.importorskip("ultralytics")
    weights = random_checkpoint(tmp_path / "detect.pt", "yolo11n.yaml")
    a = PoseAnalyzer(PoseOptions(model=str(weights)))
    with pytest.raises(ValueError, match="'detect' model; this analyzer needs a 'pose' model"):
        a.load()
