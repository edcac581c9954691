"""Pose and hands work not repeated (issue 18), on real MediaPipe models and zidane.jpg panned into a clip.

Pose: each video's own graphs in video mode follow its people (MediaPipe's tracking skips the detector),
made when the shared graph first finds someone;
hands: the palm detector on every 2nd sampled frame, the landmark model alone following each hand in
between. Both are checked against the ungated analyzers run on the same frames, and a cut or a new stream
must start afresh."""

from __future__ import annotations

import numpy as np
import pytest
from reelscope.analyzers.base import FrameItem
from reelscope.analyzers.common import mediapipe_solutions
from reelscope.analyzers.hands import HandsAnalyzer, HandsOptions
from reelscope.analyzers.pose import PoseAnalyzer, PoseOptions

from tests.test_vision_defaults import photo

pytest.importorskip("ai_edge_litert")
if not mediapipe_solutions.available():
    pytest.skip("MediaPipe is not installed", allow_module_level=True)


def panned(base: np.ndarray, shift: int) -> np.ndarray:
    out = np.zeros_like(base)
    out[:, shift:] = base[:, : base.shape[1] - shift]
    return out


def clip(video: str, frames: list[np.ndarray]) -> list[FrameItem]:
    n = len(frames)
    return [FrameItem(video, k, k / 3, f, first=k == 0, final=k == n - 1) for k, f in enumerate(frames)]


def iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union


def landmark_gap(a: dict, b: dict) -> float:
    """Mean distance of two results' landmarks seen in both (frame units)."""
    x, y = np.array(a["landmarks"]), np.array(b["landmarks"])
    seen = (x[:, 2] >= 0.5) & (y[:, 2] >= 0.5) if x.shape[1] == 3 and "keypoints" in a else slice(None)
    return float(np.abs(x[seen, :2] - y[seen, :2]).mean())


def test_hands_followed_between_detections_agree_with_detection_and_a_cut_redetects() -> None:
    base, black = photo("zidane.jpg", 480), np.zeros((270, 480, 3), np.uint8)
    items = clip("v", [panned(base, 4 * k) for k in range(6)] + [black, black])
    gated = HandsAnalyzer(HandsOptions(detect_every=2))
    every = HandsAnalyzer(HandsOptions(detect_every=1))
    gated.load()
    every.load()
    mine, truth = gated.analyze(items), every.analyze(items)
    # frames 0, 2, 4 detected, 1, 3, 5 followed; the cut to black (6) detected, 7 followed (no hand)
    assert (gated.detections, gated.tracked) == (4, 4)
    assert (every.detections, every.tracked) == (8, 0)
    assert [p["count"] for p in mine] == [p["count"] for p in truth] == [1] * 6 + [0, 0]
    for k in (1, 3, 5):
        (a,), (b,) = mine[k]["hands"], truth[k]["hands"]
        assert (
            (a["side"], a["gesture"], a["direction"])
            == (b["side"], b["gesture"], b["direction"])
            == (
                "left",
                "pointing",
                "right",
            )
        )
        assert iou(a["box"], b["box"]) > 0.8, k
        assert landmark_gap(a, b) < 0.01, k  # under 5 px at 480 px
    assert len(gated._memory) == 0  # the final frame forgot the video


def test_hands_each_video_followed_on_its_own() -> None:
    """Interleaved videos (a processor's batch): a hand-less video follows nothing and runs no model."""
    base, black = photo("zidane.jpg", 480), np.zeros((270, 480, 3), np.uint8)
    a = HandsAnalyzer()
    a.load()
    items = [
        FrameItem("a", 0, 0.0, base, first=True),
        FrameItem("b", 0, 0.0, black, first=True),
        FrameItem("a", 1, 1 / 3, panned(base, 4)),
        FrameItem("b", 1, 1 / 3, black, final=True),
    ]
    assert [p["count"] for p in a.analyze(items)] == [1, 0, 1, 0]
    assert (a.detections, a.tracked) == (2, 2) and len(a._memory) == 1


@pytest.mark.parametrize(("follow", "min_iou"), [("landmarks", 0.55), ("graph", 0.6)])
def test_pose_followed_by_mediapipe_tracking_agrees_with_detection_and_a_cut_restarts(
    follow: str, min_iou: float
) -> None:
    """Both ways of following (the landmark model alone, the default; a video-mode graph per pass). The box
    is that of the landmarks seen (visibility 0.5): a wrist crossing that line moves it, so the keypoints
    themselves are held closer in tests/test_pose_follow.py."""
    base, black = photo("zidane.jpg", 480), np.zeros((270, 480, 3), np.uint8)
    frames = [panned(base, 4 * k) for k in range(6)] + [black, base]
    items = clip("v", frames)
    tracked = PoseAnalyzer(PoseOptions(track=True, follow=follow))  # type: ignore[arg-type]
    static = PoseAnalyzer(PoseOptions(track=False))
    tracked.load()
    static.load()
    mine, truth = tracked.analyze(items), static.analyze(items)
    videos = tracked._videos
    assert videos is not None and static._videos is None
    # both people detected on the first frame and followed on the next five (2 passes each); the cut to
    # black is answered by the detector (one pass: nobody), and so is the cut back (two passes)
    assert (videos.detected, videos.followed) == (5, 10)
    assert len(videos) == 0  # the final frame closed the video's graphs
    assert [p["count"] for p in mine] == [2] * 6 + [0, 2]
    compared = 0
    for k, (a, b) in enumerate(zip(mine, truth, strict=True)):
        for person in b["persons"]:  # every person the detector finds is followed, at the same place
            match = max(a["persons"], key=lambda p: iou(p["box"], person["box"]))
            assert iou(match["box"], person["box"]) > min_iou, k
            assert landmark_gap(match, person) < 0.05, k
            compared += 1
    assert compared >= 8


def test_pose_graphs_bounded_and_restarted_per_stream() -> None:
    base = photo("zidane.jpg", 480)
    a = PoseAnalyzer(PoseOptions(max_videos=2))
    a.load()
    a.analyze([FrameItem(v, 0, 0.0, base, first=True) for v in ("a", "b", "c")])
    videos = a._videos
    assert videos is not None and len(videos) == 2  # "a", the least recently seen, was dropped (closed)
    (payload,) = a.analyze([FrameItem("c", 0, 0.0, base, first=True)])  # a replay restarts its stream
    assert payload["count"] == 2 and (videos.detected, videos.followed) == (8, 0)


def test_pose_video_without_people_makes_no_graph() -> None:
    """A graph is made when someone is first found: a video without people costs the detector alone."""
    a = PoseAnalyzer()
    a.load()
    black = np.zeros((270, 480, 3), np.uint8)
    assert [p["count"] for p in a.analyze(clip("empty", [black] * 3)[:-1])] == [0, 0]
    videos = a._videos
    # the second frame is not looked at: the detector found nobody a frame ago (look_every = 2)
    assert videos is not None and (videos.detected, videos.followed, videos.skipped) == (1, 0, 1)
    assert videos._memory.get("empty") is not None and not videos._memory.get("empty").graphs  # type: ignore[union-attr]
