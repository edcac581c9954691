"""Hands: 21 landmarks per hand and its gesture per frame (pointing, open palm, thumbs up, fist), and
waves over time, on MediaPipe's packaged hand_landmark + palm_detection models
(analyzers/common/mediapipe_solutions.py).

Gestures come from finger geometry alone (model-free functions, unit-tested on synthetic hands): a finger
is extended when it is straight at its middle joint and its tip lies farther from the wrist than that joint.
`side` is the person's own hand: MediaPipe labels hands as if the image were a mirrored selfie, so its label
is swapped for camera footage. Waves need motion: `video_summary` follows each hand (`link_hands`) and finds
an open hand whose wrist swings sideways and back.

Work not repeated (issue 18): the palm detector runs on every `detect_every`-th sampled frame of a video;
in between, each hand is followed as MediaPipe's own hand tracking follows it: the hand landmark model
alone (hand_landmark_full.tflite, run by ai-edge-litert) on the region the previous frame's landmarks give
(`hand_region`, MediaPipe's landmarks-to-ROI rule). A scene cut, a hand the model no longer sees (presence
under 0.5) or a new stream detects at once; a hand that enters between detections is found at the next
one (0.33 s at 3 fps). MediaPipe's legacy graph cannot do this itself: in video mode it still runs the
detector on every frame with fewer than `max_hands` hands.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel
from reelscope.analyzers.base import (
    FrameAnalyzer,
    FrameItem,
    ItemResult,
    ModelInfo,
    Runtime,
    Sampling,
    fit_to_side,
)
from reelscope.analyzers.common import mediapipe_solutions
from reelscope.analyzers.common.change_gate import VideoMemory, signature
from reelscope.analyzers.common.gestures import oscillations, shot_cues, spans
from reelscope.analyzers.common.yolo import frame_rate

WRIST, THUMB_MCP, THUMB_IP, THUMB_TIP, INDEX_MCP = 0, 2, 3, 4, 5
FINGERS = {
    "index": (5, 6, 7, 8),
    "middle": (9, 10, 11, 12),
    "ring": (13, 14, 15, 16),
    "pinky": (17, 18, 19, 20),
}
"""MCP, PIP, DIP and tip landmark of each finger."""
STRAIGHT_DEG = 150.0
"""A finger (or thumb) joint this straight or straighter is extended."""
THUMB_REACH = 1.2
"""An extended thumb's tip is this much farther from the index knuckle than its own middle joint."""
GESTURES = ("pointing", "open_palm", "thumbs_up")
WAVE_STEP = 0.25
"""Sideways wrist moves (hand-size units) smaller than this are noise."""
WAVE_REVERSALS = 2
WAVE_AMPLITUDE = 0.6
MIN_GESTURE_FRAMES = 2
MAX_LINK = 3.0
"""A hand joins a track whose last wrist is within this many hand sizes (wrist to middle knuckle)."""
MAX_GAP_FRAMES = 2
MAX_TRACKS = 50

REGION_LANDMARKS = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)
"""The landmarks MediaPipe takes a hand's next region from: wrist, thumb, each finger's two lowest joints."""
REGION_SCALE = 2.0
REGION_SHIFT = -0.1
"""MediaPipe's region rule: the landmarks' box, rotated upright, squared, shifted this share of its height
toward the fingers and grown this many times."""
LANDMARK_SIDE = 224
MIN_PRESENCE = 0.5
"""The landmark model's hand presence from which a followed hand is still there (MediaPipe's default
min_tracking_confidence)."""
SAME_HAND_IOU = 0.5
"""Two followed hands whose boxes overlap this much converged on one hand: the second is dropped."""
CUT_CELL = 16


def _angle(lm: np.ndarray, a: int, b: int, c: int) -> float:
    u, v = lm[a, :2] - lm[b, :2], lm[c, :2] - lm[b, :2]
    cos = float(u @ v) / max(float(np.linalg.norm(u) * np.linalg.norm(v)), 1e-9)
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def _dist(lm: np.ndarray, a: int, b: int) -> float:
    return float(np.linalg.norm(lm[a, :2] - lm[b, :2]))


def extended_fingers(lm: np.ndarray) -> dict[str, bool]:
    """Which fingers are stretched out. lm: 21 x 2+ landmarks in pixels (x, y; y down)."""
    out = {
        finger: _angle(lm, mcp, pip, dip) >= STRAIGHT_DEG and _dist(lm, WRIST, tip) > _dist(lm, WRIST, pip)
        for finger, (mcp, pip, dip, tip) in FINGERS.items()
    }
    out["thumb"] = _angle(lm, THUMB_MCP, THUMB_IP, THUMB_TIP) >= STRAIGHT_DEG and _dist(
        lm, THUMB_TIP, INDEX_MCP
    ) > THUMB_REACH * _dist(lm, THUMB_IP, INDEX_MCP)
    return out


def hand_size(lm: np.ndarray) -> float:
    """The hand's size unit: wrist to middle knuckle."""
    return max(_dist(lm, WRIST, 9), 1e-6)


def direction(vector: np.ndarray) -> str:
    """'left', 'right', 'up' or 'down' of the frame (y down)."""
    dx, dy = float(vector[0]), float(vector[1])
    if abs(dx) >= abs(dy):
        return "left" if dx < 0 else "right"
    return "up" if dy < 0 else "down"


def gesture(lm: np.ndarray) -> tuple[str | None, str | None]:
    """(gesture, direction): pointing (index out alone; where it points), open_palm (four fingers out),
    thumbs_up (thumb out upward, fingers curled), fist (nothing out); (None, None) otherwise."""
    out = extended_fingers(lm)
    fingers = [out[f] for f in FINGERS]
    if out["index"] and not any(fingers[1:]):
        return "pointing", direction(lm[8, :2] - lm[INDEX_MCP, :2])
    if all(fingers):
        return "open_palm", None
    if not any(fingers):
        if out["thumb"] and direction(lm[THUMB_TIP, :2] - lm[THUMB_MCP, :2]) == "up":
            return "thumbs_up", None
        return "fist", None
    return None, None


def hand_record(lm: np.ndarray, handedness: str, score: float, size: Sequence[int]) -> dict[str, Any]:
    """One hand's payload from its normalised landmarks (21 x 3: x, y, z) and MediaPipe's handedness."""
    px = lm[:, :2] * np.array(size, dtype=np.float64)
    kind, where = gesture(px)
    box = [*lm[:, :2].min(axis=0).clip(0.0, 1.0), *lm[:, :2].max(axis=0).clip(0.0, 1.0)]
    return {
        "side": {"Left": "right", "Right": "left"}.get(handedness, handedness.lower()),
        "conf": round(float(score), 4),
        "box": [round(float(v), 4) for v in box],
        "landmarks": [[round(float(x), 4), round(float(y), 4), round(float(z), 4)] for x, y, z in lm],
        "extended": [f for f, out in extended_fingers(px).items() if out],
        "gesture": kind,
        "direction": where,
    }


class HandsOptions(BaseModel):
    """Hand landmarks (REELSCOPE_HANDS__*)."""

    max_hands: int = 4
    min_detection_confidence: float = 0.5
    detect_every: int = 2
    """Run the palm detector on every n-th sampled frame of a video and follow the hands with the landmark
    model in between (needs ai-edge-litert); 1: detect on every frame."""
    cut_threshold: float = 24.0
    """Mean grey-level move of the frame's 16 px cells from which a frame is a scene cut (detects)."""


class HandsAnalyzer(FrameAnalyzer):
    """Hands, their landmarks and gestures per frame; hand tracks, gesture spans and waves per video.

    Sampling: 3 fps at 480 px, as pose: the palm detector sees 192x192 and the landmark model a 224x224
    crop, so more pixels buy little, and a wave still gets several samples.
    """

    name = "hands"
    group = "vision"
    sampling = Sampling(fps=3.0, max_side=480)
    requires = ("mediapipe",)
    model_name = mediapipe_solutions.describe("hand_landmark_full.tflite + palm_detection_full.tflite")
    provenance = "packaged"
    options_model = HandsOptions
    options: HandsOptions

    def __init__(self, options: HandsOptions | None = None, runtime: Runtime | None = None) -> None:
        super().__init__(options, runtime)
        self._graph: Any = None
        self._landmarks: HandLandmarks | None = None
        self._memory: VideoMemory[_Seen] = VideoMemory()
        self.detections = self.tracked = 0
        """Frames the palm detector ran on, frames whose hands the landmark model followed."""

    @classmethod
    def models(cls, options: Any, runtime: Runtime | None = None) -> list[ModelInfo]:
        return [
            mediapipe_solutions.packaged(
                ("hand_landmark_full.tflite", "palm_detection_full.tflite"), cls.name, True
            )
        ]

    def load(self) -> None:
        self._graph = mediapipe_solutions.solutions().hands.Hands(
            static_image_mode=True,
            max_num_hands=self.options.max_hands,
            model_complexity=1,
            min_detection_confidence=self.options.min_detection_confidence,
        )
        if self.options.detect_every > 1 and importlib.util.find_spec("ai_edge_litert"):
            self._landmarks = HandLandmarks(self.runtime.threads)

    def analyze(self, items: Sequence[FrameItem]) -> list[dict[str, Any]]:
        if self._graph is None:
            raise RuntimeError("load() was not called")
        payloads = []
        for item in items:
            h, w = item.image.shape[:2]
            hands = [
                hand_record(lm, label, score, (w, h))
                for lm, label, score in self._hands(item, fit_to_side(item.image, self.sampling.max_side))
            ]
            gestures = Counter(hand["gesture"] for hand in hands if hand["gesture"])
            payloads.append({"size": [w, h], "count": len(hands), "gestures": dict(gestures), "hands": hands})
        return payloads

    def _hands(self, item: FrameItem, image: np.ndarray) -> list[Found]:
        """The frame's hands: followed from the video's previous frame when allowed and all still seen,
        else detected."""
        seen = self._memory.get(item.video_id, item.first)
        frame = signature(image, CUT_CELL)
        found = self._followed(image, frame, seen)
        if found is None:
            self.detections += 1
            result = self._graph.process(image)
            found = [
                (
                    np.array([[p.x, p.y, p.z] for p in marks.landmark], dtype=np.float64),
                    side.classification[0].label,
                    side.classification[0].score,
                )
                for marks, side in zip(
                    result.multi_hand_landmarks or [], result.multi_handedness or [], strict=True
                )
            ]
            since = 0
        else:
            self.tracked += 1
            since = seen.since_detection + 1  # type: ignore[union-attr]
        size = np.array(image.shape[1::-1], dtype=np.float64)
        self._memory.put(
            item.video_id, _Seen(frame, [lm[:, :2] * size for lm, _, _ in found], since), item.final
        )
        return found

    def _followed(self, image: np.ndarray, frame: np.ndarray, seen: _Seen | None) -> list[Found] | None:
        """The previous frame's hands found again by the landmark model; None when the detector must run."""
        if (
            self._landmarks is None
            or seen is None
            or seen.since_detection + 1 >= self.options.detect_every
            or seen.frame.shape != frame.shape
            or float(np.abs(seen.frame - frame).mean()) > self.options.cut_threshold
        ):
            return None
        found: list[Found] = []
        for previous in seen.hands:
            hand = self._landmarks.follow(image, hand_region(previous))
            if hand is None:
                return None
            if not any(_box_iou(hand[0], other[0]) > SAME_HAND_IOU for other in found):
                found.append(hand)
        return found

    @classmethod
    def segment_fields(cls, payloads: list[dict[str, Any]]) -> dict[str, Any]:
        """Hands seen (mean, most at once) and the share of frames showing each gesture."""
        if not payloads:
            return {}
        n = len(payloads)
        counts = [int(p.get("count", 0)) for p in payloads]
        out: dict[str, Any] = {"count": round(sum(counts) / n, 3), "max_count": max(counts)}
        for kind in GESTURES:
            out[f"{kind}_share"] = round(sum(kind in p.get("gestures", {}) for p in payloads) / n, 3)
        return out

    @classmethod
    def video_summary(cls, results: list[ItemResult]) -> dict[str, Any] | None:
        """Hand tracks, and gesture spans (pointing, open palm, thumbs up, waves) per track."""
        if not results:
            return None
        frames = sorted(results, key=lambda r: r.start_s)
        summary: dict[str, Any] = {
            "frames": len(frames),
            "max_count": max(int(r.payload.get("count", 0)) for r in frames),
            "hand_share": round(sum(int(r.payload.get("count", 0)) > 0 for r in frames) / len(frames), 4),
        }
        fps = frame_rate([r.start_s for r in frames], cls.sampling.fps or 3.0)
        sized = [[{**h, "size": r.payload["size"]} for h in r.payload.get("hands", [])] for r in frames]
        tracks = link_hands([(r.start_s, h) for r, h in zip(frames, sized, strict=True)], 1.0 / fps)
        found = []
        for track in tracks:
            kinds = [h.get("gesture") if h.get("gesture") in GESTURES else None for h in track.hands]
            for start, end, kind in spans(track.times, kinds, 1.0 / fps, MIN_GESTURE_FRAMES):
                found.append(_span(kind, track.track_id, start, end))
            for i, j in hand_waves(track.hands):
                found.append(_span("wave", track.track_id, track.times[i], track.times[j] + 1.0 / fps))
        return {
            **summary,
            "tracker": "nearest wrist, same hand",
            "track_count": len(tracks),
            "tracks": [t.summary() for t in tracks[:MAX_TRACKS]],
            "gestures": sorted(found, key=lambda g: (g["start_s"], g["track_id"])),
        }

    @classmethod
    def shot_context(cls, fields: list[dict[str, Any]]) -> dict[str, Any]:
        """`gestures`: the hand gestures seen in the shot (gestures.SHOT_CUE_SHARE of its frames)."""
        return {"gestures": shot_cues(fields, GESTURES)}


def hand_waves(hands: Sequence[dict[str, Any]]) -> list[tuple[int, int]]:
    """Runs of one tracked hand, open (three or more fingers out), whose wrist swings sideways and back
    (in hand-size units, so the distance to the camera does not matter)."""
    offsets: list[float | None] = []
    for hand in hands:
        lm = np.array(hand["landmarks"], dtype=np.float64)[:, :2] * np.array(hand["size"], dtype=np.float64)
        fingers_out = sum(f in hand.get("extended", []) for f in FINGERS)
        offsets.append(float(lm[WRIST, 0]) / hand_size(lm) if fingers_out >= 3 else None)
    return oscillations(offsets, WAVE_STEP, WAVE_REVERSALS, WAVE_AMPLITUDE)


@dataclass
class HandTrack:
    """One hand followed over sampled frames: its times and stored hand payloads (with the frame size)."""

    track_id: int
    times: list[float] = field(default_factory=list)
    hands: list[dict[str, Any]] = field(default_factory=list)

    def wrist(self, i: int = -1) -> tuple[np.ndarray, float]:
        """Wrist position and hand size (frame heights) of its i-th hand."""
        return _wrist(self.hands[i])

    def summary(self) -> dict[str, Any]:
        n = len(self.hands)
        gestures = Counter(h["gesture"] for h in self.hands if h.get("gesture"))
        return {
            "track_id": self.track_id,
            "side": self.hands[0].get("side"),
            "first_s": round(self.times[0], 4),
            "last_s": round(self.times[-1], 4),
            "frames": n,
            "mean_box": [round(sum(h["box"][k] for h in self.hands) / n, 4) for k in range(4)],
            "gestures": dict(gestures.most_common()),
        }


def _wrist(hand: dict[str, Any]) -> tuple[np.ndarray, float]:
    """Wrist position and hand size in frame heights: frames of one video reach an analyzer at several
    sizes (the producer encodes a frame at the largest size any analyzer sampling it wants)."""
    width, height = hand["size"]
    lm = np.array(hand["landmarks"], dtype=np.float64)[:, :2] * np.array([width / height, 1.0])
    return lm[WRIST], hand_size(lm)


def link_hands(frames: Sequence[tuple[float, Sequence[dict[str, Any]]]], frame_s: float) -> list[HandTrack]:
    """Follow hands frame to frame: each hand joins the track of the same side (the person's left or right
    hand) whose last wrist is nearest, within MAX_LINK hand sizes and MAX_GAP_FRAMES missed frames; nearest
    pairs first. A waving hand moves about a hand width between samples at 3 fps, too far for box overlap
    (IoU) trackers, which is why hands are linked by distance. Ids follow first appearance."""
    tracks: list[HandTrack] = []
    for t, hands in frames:
        active = [k for k in tracks if t - k.times[-1] <= (MAX_GAP_FRAMES + 1) * frame_s + 1e-6]
        pairs = []
        for ti, track in enumerate(active):
            last, scale = track.wrist()
            for hi, hand in enumerate(hands):
                if hand.get("side") != track.hands[-1].get("side"):
                    continue
                wrist, size = _wrist(hand)
                distance = float(np.linalg.norm(wrist - last)) / max(scale, size)
                if distance <= MAX_LINK:
                    pairs.append((distance, ti, hi))
        used_t: set[int] = set()
        used_h: set[int] = set()
        for _, ti, hi in sorted(pairs):
            if ti not in used_t and hi not in used_h:
                used_t.add(ti)
                used_h.add(hi)
                active[ti].times.append(t)
                active[ti].hands.append(hands[hi])
        for hi, hand in enumerate(hands):
            if hi not in used_h:
                tracks.append(HandTrack(len(tracks) + 1, [t], [hand]))
    return tracks


def _span(kind: str, track_id: int, start: float, end: float) -> dict[str, Any]:
    return {"kind": kind, "track_id": track_id, "start_s": round(start, 4), "end_s": round(end, 4)}


Found = tuple[np.ndarray, str, float]
"""A hand: 21 x 3 normalised landmarks (x, y, z), MediaPipe's handedness label and its score."""


@dataclass
class _Seen:
    """A video's last frame: its signature (to tell a cut), its hands' landmarks in the pixels of the frame
    the models saw, and how many frames ago the detector ran."""

    frame: np.ndarray
    hands: list[np.ndarray]
    since_detection: int


def hand_region(px: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(centre, side, rotation) in pixels of the square region the next frame's landmark model looks at,
    from this frame's landmarks (21 x 2+, pixels), by MediaPipe's rule: rotated so the wrist-to-middle-finger
    line points up, the box of REGION_LANDMARKS in that rotated frame, shifted and grown."""
    p = px[list(REGION_LANDMARKS), :2]
    wrist = p[0]
    knuckles = ((p[4] + p[8]) / 2 + p[6]) / 2
    rotation = np.pi / 2 - np.arctan2(-(knuckles[1] - wrist[1]), knuckles[0] - wrist[0])
    rotation = float((rotation + np.pi) % (2 * np.pi) - np.pi)
    middle = (p.min(axis=0) + p.max(axis=0)) / 2
    cos, sin = np.cos(rotation), np.sin(rotation)
    q = p - middle
    upright = np.stack([q[:, 0] * cos + q[:, 1] * sin, -q[:, 0] * sin + q[:, 1] * cos], axis=1)
    low, high = upright.min(axis=0), upright.max(axis=0)
    c = (low + high) / 2
    width, height = high - low
    centre = middle + np.array([c[0] * cos - c[1] * sin, c[0] * sin + c[1] * cos])
    centre += np.array([-height * REGION_SHIFT * sin, height * REGION_SHIFT * cos])
    return centre, float(max(width, height) * REGION_SCALE), rotation


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of the boxes around two hands' normalised landmarks."""
    (a0, a1), (b0, b1) = _extent(a), _extent(b)
    inter = float(np.prod(np.clip(np.minimum(a1, b1) - np.maximum(a0, b0), 0.0, None)))
    union = float(np.prod(a1 - a0)) + float(np.prod(b1 - b0)) - inter
    return inter / union if union > 0 else 0.0


def _extent(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return lm[:, :2].min(axis=0), lm[:, :2].max(axis=0)


class HandLandmarks:
    """MediaPipe's packaged hand_landmark_full.tflite on a hand's region, without the palm detector."""

    def __init__(self, threads: int = 0) -> None:
        self._model = mediapipe_solutions.tflite("hand_landmark", "hand_landmark_full.tflite", threads)

    def follow(self, image: np.ndarray, region: tuple[np.ndarray, float, float]) -> Found | None:
        """The hand in `region` of the RGB image, or None when the model sees no hand there."""
        centre, side, rotation = region
        if side < 4:
            return None
        h, w = image.shape[:2]
        k = side / LANDMARK_SIDE
        to_image = self._model.run_on_region(image, centre, side, rotation)
        presence = float(self._model.output("Identity_1")[0, 0])
        if presence < MIN_PRESENCE:
            return None
        raw = self._model.output("Identity")[0].reshape(21, 3).astype(np.float64)
        left = float(self._model.output("Identity_2")[0, 0])
        px = raw[:, :2] @ to_image[:, :2].T + to_image[:, 2]
        lm = np.column_stack([px[:, 0] / w, px[:, 1] / h, raw[:, 2] * k / w])
        label, score = ("Left", left) if left >= 0.5 else ("Right", 1.0 - left)
        return lm, label, score
