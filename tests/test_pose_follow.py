"""Pose followed by the landmark model alone (issue 18, sixth step), on MediaPipe's packaged
pose_landmark_full.tflite and real photos (ultralytics' zidane.jpg and bus.jpg): the keypoints agree with
the path before (a MediaPipe graph in video mode per pass) and with the detector on every frame, a person
lost without a cut falls back to the detector on that very frame, and the old path stays when
ai-edge-litert is missing. Plus MediaPipe's region and heatmap rules on synthetic input.

Tolerance: keypoints seen in both runs and inside the frame (the legs below zidane.jpg's edge are the
model's guesses) lie within 0.02 frame units on average (10 px at 480 px); the two tracking paths look at
slightly different regions (the graph smooths the region, the follower does not), and the graph path itself
lies up to 0.025 from the detector's keypoints on these frames."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from reelscope.analyzers import pose
from reelscope.analyzers.common import mediapipe_solutions
from reelscope.analyzers.pose import (
    REGION_SCALE,
    PoseAnalyzer,
    PoseFollower,
    PoseLandmarks,
    PoseOptions,
    refine,
    region,
)
from reelscope.infra.bench import pose_ab

from tests.test_pose_hands_gating import clip, panned
from tests.test_vision_defaults import photo

pytest.importorskip("ai_edge_litert")
if not mediapipe_solutions.available():
    pytest.skip("MediaPipe is not installed", allow_module_level=True)

TOLERANCE = 0.02


def keypoint_gap(a: dict, b: dict) -> float:
    """Mean distance of the COCO keypoints both persons show inside the frame (frame units)."""
    return pose_ab.keypoint_gap(np.array(a["keypoints"]), np.array(b["keypoints"]))


def nearest(persons: list[dict], person: dict) -> dict:
    y = np.array(person["keypoints"])[:, :2]
    return min(persons, key=lambda p: float(np.abs(np.array(p["keypoints"])[:, :2] - y).mean()))


def loaded(**options: object) -> PoseAnalyzer:
    analyzer = PoseAnalyzer(PoseOptions(**options))  # type: ignore[arg-type]
    analyzer.load()
    return analyzer


@pytest.mark.parametrize("name", ["zidane.jpg", "bus.jpg"])
def test_followed_keypoints_agree_with_the_detector_and_the_graph_path(name: str) -> None:
    """Against the detector on every frame: within TOLERANCE on each frame, and on average no farther than
    the graph path is. Against the graph path: within 0.03 (its smoothed region lags the pan by a few px a
    frame, so the two drift apart while each stays near the detector's)."""
    base = photo(name, 480)
    items = clip("v", [panned(base, 4 * k) for k in range(6)])
    after, before, static = loaded(), loaded(follow="graph"), loaded(track=False)
    mine, theirs, truth = after.analyze(items), before.analyze(items), static.analyze(items)
    assert after._videos is not None and after._videos.followed >= 5  # the follower answered
    assert [p["count"] for p in mine] == [p["count"] for p in theirs]
    to_detector: dict[str, list[float]] = {"mine": [], "graph": []}
    for k in range(1, len(items)):  # frame 0 is the detector's in all three
        for person in theirs[k]["persons"]:
            assert keypoint_gap(nearest(mine[k]["persons"], person), person) < 0.03, k
        for person in truth[k]["persons"]:
            to_detector["mine"].append(keypoint_gap(nearest(mine[k]["persons"], person), person))
            to_detector["graph"].append(keypoint_gap(nearest(theirs[k]["persons"], person), person))
            assert to_detector["mine"][-1] < TOLERANCE, k
    assert len(to_detector["mine"]) >= 5
    assert np.mean(to_detector["mine"]) <= np.mean(to_detector["graph"]) + 0.002


@pytest.mark.parametrize(("look_every", "passes"), [(1, (5, 5, 0)), (2, (4, 5, 1))])
def test_a_person_lost_without_a_cut_is_looked_for_by_the_detector_on_that_frame(
    look_every: int, passes: tuple[int, int, int]
) -> None:
    """Cuts off: the black frames are no cut, so only the follower's presence tells that nobody is there."""
    base, black = photo("zidane.jpg", 480), np.zeros((270, 480, 3), np.uint8)
    items = clip("v", [base, panned(base, 4), black, black, panned(base, 8), panned(base, 12)])
    a = loaded(cut_threshold=1e9, look_every=look_every)
    videos = a._videos
    assert videos is not None
    counts = [p["count"] for p in a.analyze(items)]
    assert counts == [2, 2, 0, 0, 2, 2]
    # frame 0: two detector passes (two followers made), 1: both followed, 2: pass 0's follower lost, the
    # detector answers pass 0 (nobody, so no pass 1), 3: the detector again (look_every 1) or not (2: it
    # found nobody a frame ago), 4: the detector finds the first person, pass 1's follower (not run since
    # frame 1) finds the second where it was, 5: both followed
    assert (videos.detected, videos.followed, videos.skipped) == passes


def test_without_ai_edge_litert_the_graph_path_follows(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        pose.importlib.util, "find_spec", lambda n, *a: None if n == "ai_edge_litert" else real(n, *a)
    )
    a = loaded()
    base = photo("zidane.jpg", 480)
    a.analyze(clip("v", [base, panned(base, 4), panned(base, 8)])[:2])
    videos = a._videos
    assert videos is not None and not videos._alone
    assert all(not isinstance(g, PoseFollower) for g in videos._memory.get("v").graphs.values())  # type: ignore[union-attr]


def test_follower_on_the_detectors_region_reads_what_the_graph_read() -> None:
    """The follower's first run is on the region MediaPipe's detector chose: crop, model, heatmap refinement
    and projection must give the static graph's own landmarks (all 33, seen or not)."""
    base = photo("zidane.jpg", 480)
    result = loaded(track=False)._graph.process(base)
    follower = PoseFollower(PoseLandmarks(), result.pose_rect_from_detection)
    first = follower.process(base).pose_landmarks
    assert first is not None
    graph = pose.landmark_array(result.pose_landmarks)
    assert float(np.abs(first[:, :2] - graph[:, :2]).max()) < 0.01  # 5 px at 480 px
    assert float(np.abs(first[:, 2] - graph[:, 2]).max()) < 0.01
    assert follower.process(np.zeros_like(base)).pose_landmarks is None  # nobody in its region: lost
    assert follower.process(base).pose_landmarks is None  # and it does not look again by itself


def test_region_rule_upright_and_lying() -> None:
    _centre, side, rotation = region(np.array([100.0, 200.0]), np.array([100.0, 100.0]))
    assert (side, rotation) == pytest.approx((200 * REGION_SCALE, 0.0))
    # the body's edge point to the right of its centre: lying, the region turned a quarter
    _, side, rotation = region(np.array([100.0, 200.0]), np.array([150.0, 200.0]))
    assert (side, abs(rotation)) == pytest.approx((100 * REGION_SCALE, np.pi / 2))


def test_heatmap_refinement_moves_only_to_a_sure_peak() -> None:
    heatmap = np.full((64, 64, 2), -10.0, np.float32)
    heatmap[20, 30, 0] = 10.0  # a sure peak two cells right and one down of landmark 0
    heatmap[40, 10, 1] = -0.5  # landmark 1's peak is unsure (sigmoid 0.38)
    xy = np.array([[28.5 / 64, 19.5 / 64], [10.5 / 64, 40.5 / 64]])
    out = refine(xy, heatmap)
    assert out[0] * 64 == pytest.approx([30.0, 20.0], abs=0.05)
    assert np.array_equal(out[1], xy[1])
