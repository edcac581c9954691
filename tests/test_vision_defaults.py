"""The packaged CPU vision defaults on real photos (ultralytics' bus.jpg and zidane.jpg, in its wheel):
objects (SSD MobileNet v2 COCO), pose, hands, segmentation (MediaPipe) and the faces' mesh cues and emotion.

What the photos show, which the expectations come from: bus.jpg, a blue city bus with four people in front
of it (three whole, one cut by the right edge); zidane.jpg, two men in suits: Zidane on the left, bent
forward, shouting (mouth wide open, head turned toward the frame's right) and pointing with his stretched
arm and index finger toward the frame's right edge, his hand in front of Ancelotti's chest; Ancelotti on
the right, upright, mouth closed, eyes glancing sideways, not into the camera.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from reelscope.analyzers.base import FrameItem, ItemResult
from reelscope.analyzers.common.compose_caption import compose_caption
from reelscope.analyzers.common.face_mesh import EMOTIONS
from reelscope.analyzers.faces import FacesAnalyzer
from reelscope.analyzers.hands import HandsAnalyzer, gesture, hand_record
from reelscope.analyzers.objects import ObjectsAnalyzer
from reelscope.analyzers.pose import PoseAnalyzer
from reelscope.analyzers.segmentation import SegmentationAnalyzer
from reelscope.infra.cli_summary import vision_lines

pytest.importorskip("mediapipe")
pytest.importorskip("cv2")
pytest.importorskip("ultralytics")  # the photos


def photo(name: str, max_side: int) -> np.ndarray:
    """An ultralytics sample photo (RGB) resized as the producer would for an analyzer's sampling."""
    spec = importlib.util.find_spec("ultralytics")
    assert spec is not None and spec.submodule_search_locations
    img = Image.open(Path(spec.submodule_search_locations[0]) / "assets" / name).convert("RGB")
    scale = max_side / max(img.size)
    return np.asarray(img.resize((round(img.width * scale), round(img.height * scale))))


def run(analyzer_cls: type, name: str) -> dict:
    a = analyzer_cls()
    a.load()
    assert a.describe_model()[1] == "packaged"
    (payload,) = a.analyze([FrameItem("v", 0, 0.0, photo(name, analyzer_cls.sampling.max_side))])
    return payload


def test_packaged_ssd_finds_the_people_and_the_bus_and_names_its_licence() -> None:
    a = ObjectsAnalyzer()
    assert a.configured(a.options)
    a.load()
    model, provenance = a.describe_model()
    assert provenance == "packaged" and "Apache-2.0" in model and "ssd_mobilenet_v2_coco" in model
    bus, zidane = a.analyze(
        [FrameItem("v", 0, 0.0, photo("bus.jpg", 640)), FrameItem("w", 0, 0.0, photo("zidane.jpg", 640))]
    )
    assert bus["counts"].get("person", 0) >= 3 and bus["counts"].get("bus") == 1
    assert zidane["counts"].get("person") == 2
    people = sorted([d["box"] for d in zidane["detections"] if d["label"] == "person"][:2])
    assert people[0][0] < 0.3 and people[1][0] > 0.5  # Zidane from the left, Ancelotti on the right


def test_pose_finds_both_men_on_zidane_and_people_on_bus() -> None:
    zidane = run(PoseAnalyzer, "zidane.jpg")
    assert zidane["count"] == 2
    centres = sorted((p["box"][0] + p["box"][2]) / 2 for p in zidane["persons"])
    assert centres[0] < 0.5 < centres[1]
    for person in zidane["persons"]:
        assert len(person["keypoints"]) == 17 and len(person["landmarks"]) == 33
    bus = run(PoseAnalyzer, "bus.jpg")
    assert bus["count"] >= 1
    box = bus["persons"][0]["box"]
    assert box[3] - box[1] > 0.2  # a standing person, most of their height in view


def test_hands_find_zidanes_pointing_hand() -> None:
    payload = run(HandsAnalyzer, "zidane.jpg")
    pointing = [h for h in payload["hands"] if h["gesture"] == "pointing"]
    assert len(pointing) == 1
    hand = pointing[0]
    assert hand["direction"] == "right" and len(hand["landmarks"]) == 21
    x0, y0, x1, y1 = hand["box"]
    assert 0.6 < (x0 + x1) / 2 < 0.95 and 0.4 < (y0 + y1) / 2 < 0.8  # in front of Ancelotti's chest


def test_gestures_from_finger_geometry() -> None:
    """Synthetic hands, y down: wrist at the bottom, each finger a straight or folded chain of joints."""
    lm = np.zeros((21, 2))
    lm[0] = (0, 0)
    lm[1:5] = [(-20, -10), (-35, -25), (-45, -35), (-50, -45)]  # thumb out sideways
    for k, x in enumerate((-15, -5, 5, 15)):
        base = 5 + 4 * k
        lm[base : base + 4] = [(x, -40), (x, -60), (x, -75), (x, -90)]  # all four straight up
    assert gesture(lm) == ("open_palm", None)
    folded = lm.copy()
    for k in range(1, 4):
        base = 5 + 4 * k
        x = lm[base, 0]
        folded[base + 1 : base + 4] = [(x, -55), (x, -45), (x, -38)]  # curls back toward the palm
    assert gesture(folded) == ("pointing", "up")


def test_segmentation_person_share_and_green_screen() -> None:
    a = SegmentationAnalyzer()
    a.load()
    image = photo("zidane.jpg", SegmentationAnalyzer.sampling.max_side)
    (plain,) = a.analyze([FrameItem("v", 0, 0.0, image)])
    assert 0.3 < plain["person_share"] < 0.75 and not plain["green_screen"]
    mask = a._graph.process(np.ascontiguousarray(image)).segmentation_mask >= 0.5
    keyed = image.copy()
    keyed[~mask] = (0, 177, 64)  # the two men in front of a chroma-key green
    (green,) = a.analyze([FrameItem("v", 1, 1.0, keyed)])
    assert green["green_screen"] and abs(green["person_share"] - plain["person_share"]) < 0.15
    summary = SegmentationAnalyzer.video_summary(
        [ItemResult("0", 0.0, 1.0, plain), ItemResult("1", 1.0, 2.0, green)]
    )
    assert summary is not None and [c["at_s"] for c in summary["background_changes"]] == [1.0]


def test_faces_mesh_gaze_mouth_and_emotion_on_zidane() -> None:
    payload = run(FacesAnalyzer, "zidane.jpg")
    assert payload["face_count"] == 2 and payload["attributes"]["emotion"] == "packaged"
    for face in payload["faces"]:
        assert face["emotion"]["label"] in EMOTIONS and 0 < face["emotion"]["score"] <= 1
    ancelotti = max(payload["faces"], key=lambda f: f["box"][0])
    assert len(ancelotti["mesh"]) == 478
    assert ancelotti["mouth_open"] is False and ancelotti["eye_contact"] is False


def test_composed_caption_uses_gaze_gestures_and_emotion() -> None:
    seen = {"objects": {"person": 1}, "eye_contact": True, "gestures": ["pointing"], "speech": "look here"}
    caption = compose_caption(3.0, {**seen, "speaker_on_screen": True})
    assert caption == "3.0 s shot: a person; a person talks to the camera, pointing; speech: 'look here'."
    # talking only when the speech was placed on the visible face
    assert compose_caption(3.0, seen) == (
        "3.0 s shot: a person; a person looks into the camera, pointing; speech: 'look here'."
    )
    fields = [{"counts": {"person": 1}}, {"counts": {"person": 1}}, {"counts": {"person": 1, "cat": 1}}]
    context = ObjectsAnalyzer.shot_context(fields)
    assert context == {"objects": {"person": 1, "cat": 1}, "appearing": {"cat": 0.667}}
    assert compose_caption(3.0, context) == "3.0 s shot: a person and a cat; a cat appears 2.0 s in."
    # a gesture is told of a shot when seen in a quarter of its frames or more
    assert HandsAnalyzer.shot_context([{"pointing_share": 0.5}, {"pointing_share": 0.0}]) == {
        "gestures": ["pointing"]
    }
    assert HandsAnalyzer.shot_context([{"pointing_share": 0.2}, {"open_palm_share": 0.0}]) == {"gestures": []}


def test_a_held_pointing_hand_becomes_a_gesture_span_in_the_summary_lines() -> None:
    """Zidane's photo held for three sampled frames, the middle one at twice the size (the producer encodes a
    frame at the largest size any analyzer sampling it wants): one hand, pointing for the whole span, which
    the CLI's summary names."""
    a = HandsAnalyzer()
    a.load()
    sides = (480, 960, 480)
    payloads = a.analyze(
        [FrameItem("v", i, i / 3, photo("zidane.jpg", side)) for i, side in enumerate(sides)]
    )
    results = [ItemResult(str(i), i / 3, i / 3, p) for i, p in enumerate(payloads)]
    summary = HandsAnalyzer.video_summary(results)
    assert summary is not None and summary["track_count"] == 1
    assert [(g["kind"], g["start_s"], g["end_s"]) for g in summary["gestures"]] == [("pointing", 0.0, 1.0)]
    lines = vision_lines({"summaries": {"hands": summary}})
    assert lines == ["  hands: up to 1 at once, in 100% of frames; gestures: pointing 0.0-1.0s"]


def test_an_open_hand_swinging_sideways_is_a_wave() -> None:
    """Synthetic open hands (all fingers straight up) whose wrist moves +-0.8 hand sizes frame to frame."""
    lm = np.zeros((21, 3))
    lm[1:5, :2] = [(-20, -10), (-35, -25), (-45, -35), (-50, -45)]
    for k, x in enumerate((-15, -5, 5, 15)):
        lm[5 + 4 * k : 9 + 4 * k, :2] = [(x, -40), (x, -60), (x, -75), (x, -90)]
    size = (1000, 1000)

    def at(dx: float) -> dict:
        moved = lm.copy()
        moved[:, 0] += 500 + dx
        moved[:, 1] += 500
        return hand_record(moved / 1000, "Right", 0.9, size)

    swings = [0, 30, -30, 30, -30, 30, 0]  # +-30 px, a hand size is 40 px (wrist to middle knuckle)
    frames = [[at(dx)] for dx in swings]
    results = [
        ItemResult(str(i), i / 3, i / 3, {"size": list(size), "count": 1, "gestures": {}, "hands": h})
        for i, h in enumerate(frames)
    ]
    summary = HandsAnalyzer.video_summary(results)
    assert summary is not None
    assert [g["kind"] for g in summary["gestures"]] == ["open_palm", "wave"]
    still = [
        ItemResult(str(i), i / 3, i / 3, {"size": list(size), "count": 1, "gestures": {}, "hands": [at(0)]})
        for i in range(7)
    ]
    assert [g["kind"] for g in HandsAnalyzer.video_summary(still)["gestures"]] == ["open_palm"]
