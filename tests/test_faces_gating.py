"""Faces work not repeated (issue 18): MTCNN on every n-th sampled frame, the face mesh following the
faces in between; a scene cut or a new stream re-detects at once. Real MTCNN and MediaPipe on zidane.jpg."""

from __future__ import annotations

import numpy as np
import pytest
from reelscope.analyzers.base import FrameItem
from reelscope.analyzers.common import mediapipe_solutions
from reelscope.analyzers.common.boxes import box_iou
from reelscope.analyzers.faces import FacesAnalyzer, FacesOptions

from tests.test_faces import asset


def one_face() -> np.ndarray:
    """zidane.jpg's right half: Ancelotti's face, which the face mesh finds (Zidane's, turned down, it does
    not: such a face is carried by the motion of its pixels, see the test below)."""
    return np.ascontiguousarray(asset("zidane.jpg")[:, 360:])


def panned(base: np.ndarray, shift: int) -> np.ndarray:
    out = np.zeros_like(base)
    out[:, shift:] = base[:, : base.shape[1] - shift]
    return out


def analyzer(detect_every: int) -> FacesAnalyzer:
    pytest.importorskip("facenet_pytorch")
    if not mediapipe_solutions.available():
        pytest.skip("MediaPipe (the face mesh that follows faces) is not installed")
    a = FacesAnalyzer(FacesOptions(detector="mtcnn", detect_every=detect_every))
    a.load()
    return a


def test_mesh_follows_faces_between_detections_and_a_cut_redetects() -> None:
    base, black = one_face(), np.zeros((360, 280, 3), np.uint8)
    frames = [panned(base, 4 * k) for k in range(4)] + [black, black]
    items = [FrameItem("v", k, k * 0.5, image, first=k == 0) for k, image in enumerate(frames)]
    gated, every = analyzer(2), analyzer(1)
    payloads = gated.analyze(items)
    # frames 0 and 2 detected, 1 and 3 followed; the cut to black (4) detected, 5 followed (no face)
    assert (gated.detections, gated.tracked) == (3, 3)
    assert [p["face_count"] for p in payloads] == [1, 1, 1, 1, 0, 0]
    # a followed frame's face is where the detector, run on that frame, puts it
    followed = [payloads[1], payloads[3]]
    detected = every.analyze([items[1], items[3]])
    assert (every.detections, every.tracked) == (2, 0)
    for k, (mine, truth) in enumerate(zip(followed, detected, strict=True)):
        assert mine["face_count"] == truth["face_count"], k
        for a, b in zip(
            sorted(mine["faces"], key=lambda f: f["box"][0]),
            sorted(truth["faces"], key=lambda f: f["box"][0]),
            strict=True,
        ):
            assert box_iou(a["box"], b["box"]) > 0.6, (k, a["box"], b["box"])
            assert len(a["landmarks"]) == 5 and "eye_contact" in a


def test_each_video_is_followed_on_its_own() -> None:
    """Interleaved videos (a processor's batch): each keeps its own faces and its own detection count."""
    base, black = one_face(), np.zeros((360, 280, 3), np.uint8)
    a = analyzer(2)
    items = [
        FrameItem("a", 0, 0.0, base, first=True),
        FrameItem("b", 0, 0.0, black, first=True),
        FrameItem("a", 1, 0.5, panned(base, 4)),
        FrameItem("b", 1, 0.5, black, final=True),
    ]
    payloads = a.analyze(items)
    assert (a.detections, a.tracked) == (2, 2)
    assert [p["face_count"] for p in payloads] == [1, 0, 1, 0]
    assert len(a._memory) == 1  # b's final frame forgot it


def test_a_face_the_mesh_cannot_follow_is_carried_by_its_pixels() -> None:
    """zidane.jpg whole: the mesh follows Ancelotti's face, not Zidane's (turned down). Zidane's is carried
    by the motion of its pixels between detections, so the detector still runs on every 3rd frame only
    (it ran on every frame before), and the carried box is where the detector puts it."""
    base = asset("zidane.jpg")
    frames = [panned(base, 6 * k) for k in range(6)]
    items = [FrameItem("v", k, k * 0.5, image, first=k == 0) for k, image in enumerate(frames)]
    gated, every = analyzer(3), analyzer(1)
    payloads, truth = gated.analyze(items), every.analyze(items)
    assert (gated.detections, gated.tracked) == (2, 4)
    for k, (mine, theirs) in enumerate(zip(payloads, truth, strict=True)):
        assert mine["face_count"] == theirs["face_count"] == 2, k
        pairs = zip(
            sorted(mine["faces"], key=lambda f: f["box"][0]),
            sorted(theirs["faces"], key=lambda f: f["box"][0]),
            strict=True,
        )
        for a, b in pairs:
            assert box_iou(a["box"], b["box"]) > 0.6, (k, a["box"], b["box"])
        assert sum("eye_contact" in f for f in mine["faces"]) == 1  # one meshed, one carried
