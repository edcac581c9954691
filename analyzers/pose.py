"""Pose: people's 17 COCO keypoints per frame, body cues, and person tracks.

Default: MediaPipe's pose_landmark_full (33 landmarks, one person a frame: the most prominent; packaged in
the mediapipe wheel, analyzers/common/mediapipe_solutions.py), mapped onto the 17 COCO keypoints the cues
read. `REELSCOPE_POSE__MODEL` names an ultralytics YOLO pose checkpoint instead (several people a frame).

Cues come from keypoint geometry alone (model-free functions, so they are unit-tested on synthetic
skeletons): hands raised, arms crossed, pointing, facing the camera or not. `left`/`right` of a hand is the
person's own side; the pointing direction is the frame's (toward the frame's left or right edge).
Waves need motion, so `video_summary` finds them on person tracks (ByteTrack, analyzers/common/yolo.py):
a hand above its elbow whose wrist swings sideways and back. At the 3 fps sampling a fast wave (over about
2.5 swings a second) aliases, but it still shows as large sideways jumps with reversals, which is what
is tested for.

Work not repeated (issue 18, `track`): the person detector runs only when a video's pass follows nobody.
A found person is followed as MediaPipe's own tracking follows it, but by the landmark model alone
(`PoseLandmarks`: pose_landmark_full.tflite run by ai-edge-litert, as hands does; `follow`): it starts on
the region the detector chose (the static graph gives it out) and each next region comes from the previous
frame's two auxiliary points. A person the model no longer sees, or a scene cut, is looked for by the shared
static graph on that very frame (analyzers/common/mediapipe_solutions.VideoGraphs). Following this way
costs the model alone, ~21 ms a person at 2 threads, where a MediaPipe graph in video mode per video and
pass (`follow=graph`, the path before) spent ~29 ms (the graph around the same model: image packets and
conversion, smoothing filters, world landmarks): 63 -> 47 ms a frame on two people. The model itself is
most of what is left: a cost per person. A pass that found nobody looks again on every `look_every`-th
frame (at once on a cut).
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from reelscope.analyzers.base import FrameItem, ItemResult, ModelInfo, Runtime, Sampling, fit_to_side
from reelscope.analyzers.common import mediapipe_solutions
from reelscope.analyzers.common.gestures import oscillations, shot_cues, spans
from reelscope.analyzers.common.yolo import (
    TRACK_LOW_CONF,
    Track,
    YoloAnalyzer,
    YoloOptions,
    frame_rate,
    track_detections,
)
from reelscope.schemas.events import Provenance

NOSE, LEFT_EYE, RIGHT_EYE = 0, 1, 2
LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_ELBOW, RIGHT_ELBOW, LEFT_WRIST, RIGHT_WRIST = 5, 6, 7, 8, 9, 10
LEFT_HIP, RIGHT_HIP = 11, 12
SIDES = {"left": (LEFT_SHOULDER, LEFT_ELBOW, LEFT_WRIST), "right": (RIGHT_SHOULDER, RIGHT_ELBOW, RIGHT_WRIST)}

VISIBLE = 0.5
"""Keypoint confidence from which a joint counts as seen."""
RAISED = 0.6
"""A wrist this many body-scale units above its shoulder is raised (about eye height: a hand at the ear
on a phone stays below it)."""
SIDE_VIEW = 0.45
"""Shoulder width under this share of the torso length: the body is seen from the side."""
CROSS_DEPTH = 0.2
"""How far past the body's midline (in half shoulder widths) each wrist must reach for crossed arms."""
CHEST_SPAN = 1.6
"""Crossed wrists lie between shoulder height and this many body-scale units below it."""
STRAIGHT_ARM_DEG = 150.0
REACH = 0.9
"""A pointing arm reaches at least this many body-scale units from its shoulder."""
MAX_POINT_SLOPE = 1.0
"""A pointing arm rises or falls at most this much per unit sideways (45 degrees): steeper is raised."""
WAVE_STEP = 0.1
"""Sideways wrist moves (body-scale units, relative to the elbow) smaller than this are noise."""
WAVE_REVERSALS = 2
WAVE_AMPLITUDE = 0.3
WAVE_RISE = 0.3
"""A waving wrist is this many body-scale units above its elbow (a raised forearm): a forearm held level,
or another person's arm that the model lends this body where two people overlap, swings no wave."""
MIN_GESTURE_FRAMES = 2
GESTURES = ("hands_raised", "arms_crossed", "pointing")
MIN_FOLLOWED_SIDE = 0.05
"""A followed person's box is at least this share of the frame each way (a region drifting off the frame's
edge shrinks to a sliver while MediaPipe's presence flag may stay high)."""


def _seen(kp: np.ndarray, *joints: int) -> bool:
    return bool(all(kp[j, 2] >= VISIBLE for j in joints))


def body_scale(kp: np.ndarray) -> float | None:
    """The body's size unit: shoulder width, or 0.8 torso lengths when larger (a side view's shoulders
    narrow, its torso does not). None without both shoulders."""
    if not _seen(kp, LEFT_SHOULDER, RIGHT_SHOULDER):
        return None
    scale = float(np.linalg.norm(kp[LEFT_SHOULDER, :2] - kp[RIGHT_SHOULDER, :2]))
    if _seen(kp, LEFT_HIP, RIGHT_HIP):
        scale = max(scale, 0.8 * _torso(kp))
    return scale if scale > 1e-6 else None


def _torso(kp: np.ndarray) -> float:
    shoulders = (kp[LEFT_SHOULDER, :2] + kp[RIGHT_SHOULDER, :2]) / 2
    hips = (kp[LEFT_HIP, :2] + kp[RIGHT_HIP, :2]) / 2
    return float(np.linalg.norm(shoulders - hips))


def side_view(kp: np.ndarray) -> bool:
    """Shoulders narrow for the torso's length: the body is seen from the side (needs shoulders and hips)."""
    if not _seen(kp, LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_HIP, RIGHT_HIP):
        return False
    return float(np.linalg.norm(kp[LEFT_SHOULDER, :2] - kp[RIGHT_SHOULDER, :2])) < SIDE_VIEW * _torso(kp)


def hands_raised(kp: np.ndarray) -> str | None:
    """ "both", "left", "right" (the person's hands) or "none"; None when no shoulder-wrist pair is seen.

    kp: 17 x 3 (x, y, confidence), x and y in the same unit (pixels), y down."""
    scale = body_scale(kp)
    if scale is None:
        return None
    raised = {}
    for side, (shoulder, _, wrist) in SIDES.items():
        if _seen(kp, wrist):
            raised[side] = kp[wrist, 1] < kp[shoulder, 1] - RAISED * scale
    if not raised:
        return None
    up = [side for side, is_up in raised.items() if is_up]
    return "both" if len(up) == 2 else up[0] if up else "none"


def arms_crossed(kp: np.ndarray) -> bool | None:
    """Each wrist past the body's midline on the other arm's side, at chest height. None when the wrists or
    shoulders are not seen, or the body is seen from the side (the midline is then undefined)."""
    scale = body_scale(kp)
    if scale is None or not _seen(kp, LEFT_WRIST, RIGHT_WRIST) or side_view(kp):
        return None
    axis = kp[LEFT_SHOULDER, :2] - kp[RIGHT_SHOULDER, :2]
    width = float(np.linalg.norm(axis))
    mid = (kp[LEFT_SHOULDER, :2] + kp[RIGHT_SHOULDER, :2]) / 2
    unit = axis / width

    def across(joint: int) -> float:
        """Position along the shoulder line: +1 at the left shoulder, -1 at the right one."""
        return float((kp[joint, :2] - mid) @ unit) / (width / 2)

    def at_chest(joint: int) -> bool:
        return bool(mid[1] <= kp[joint, 1] <= mid[1] + CHEST_SPAN * scale)

    return (
        across(LEFT_WRIST) < -CROSS_DEPTH
        and across(RIGHT_WRIST) > CROSS_DEPTH
        and at_chest(LEFT_WRIST)
        and at_chest(RIGHT_WRIST)
    )


def _elbow_angle(kp: np.ndarray, shoulder: int, elbow: int, wrist: int) -> float:
    a, b = kp[shoulder, :2] - kp[elbow, :2], kp[wrist, :2] - kp[elbow, :2]
    cos = float(a @ b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-9)
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def pointing(kp: np.ndarray) -> str | None:
    """ "left" or "right" (toward that edge of the frame) when an arm is stretched out sideways: straight at
    the elbow, reaching far from the shoulder, no steeper than 45 degrees. Arms stretched both ways (a T)
    point nowhere. None when no arm points."""
    scale = body_scale(kp)
    if scale is None:
        return None
    directions = set()
    for shoulder, elbow, wrist in SIDES.values():
        if not _seen(kp, elbow, wrist):
            continue
        dx, dy = kp[wrist, :2] - kp[shoulder, :2]
        if (
            _elbow_angle(kp, shoulder, elbow, wrist) >= STRAIGHT_ARM_DEG
            and float(np.hypot(dx, dy)) >= REACH * scale
            and abs(dy) <= MAX_POINT_SLOPE * abs(dx)
        ):
            directions.add("left" if dx < 0 else "right")
    return directions.pop() if len(directions) == 1 else None


def facing(kp: np.ndarray) -> str | None:
    """ "camera", "side" or "away": a body whose shoulders are narrow for its torso is seen from the side; a
    face with the nose and both eyes looks at the camera, one eye only is a profile; shoulders without a
    face are a back. None when neither face nor shoulders are seen."""
    if side_view(kp):
        return "side"
    if _seen(kp, NOSE, LEFT_EYE, RIGHT_EYE):
        return "camera"
    if _seen(kp, NOSE) and (_seen(kp, LEFT_EYE) or _seen(kp, RIGHT_EYE)):
        return "side"
    return "away" if _seen(kp, LEFT_SHOULDER, RIGHT_SHOULDER) else None


def body_cues(kp: np.ndarray) -> dict[str, Any]:
    return {
        "hands_raised": hands_raised(kp),
        "arms_crossed": arms_crossed(kp),
        "pointing": pointing(kp),
        "facing": facing(kp),
    }


def pixel_keypoints(person: dict[str, Any], size: Sequence[int]) -> np.ndarray:
    """A stored person's normalised keypoints back in pixels (17 x 3), so geometry is not stretched."""
    kp = np.array(person["keypoints"], dtype=np.float64).reshape(-1, 3)
    kp[:, 0] *= size[0]
    kp[:, 1] *= size[1]
    return kp


MEDIAPIPE_TO_COCO = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
"""MediaPipe's 33 pose landmarks that are the 17 COCO keypoints, in COCO order."""


def mediapipe_person(landmarks: np.ndarray, size: Sequence[int]) -> dict[str, Any]:
    """A person from MediaPipe's 33 normalised landmarks (x, y, visibility): COCO keypoints with the
    visibility as their confidence, the box around the visible landmarks, the mean keypoint visibility as
    the person's confidence, and the cues from the keypoints in pixels."""
    coco = landmarks[list(MEDIAPIPE_TO_COCO)]
    seen = landmarks[landmarks[:, 2] >= VISIBLE]
    seen = seen if len(seen) else landmarks
    box = [*seen[:, :2].min(axis=0).clip(0.0, 1.0), *seen[:, :2].max(axis=0).clip(0.0, 1.0)]
    kp = coco.copy()
    kp[:, 0] *= size[0]
    kp[:, 1] *= size[1]
    return {
        "conf": round(float(coco[:, 2].mean()), 4),
        "box": [round(float(v), 4) for v in box],
        "keypoints": [[round(float(x), 4), round(float(y), 4), round(float(c), 3)] for x, y, c in coco],
        "landmarks": [[round(float(x), 4), round(float(y), 4), round(float(c), 3)] for x, y, c in landmarks],
        **body_cues(kp),
    }


def landmark_array(landmarks: Any) -> np.ndarray:
    """33 x 3 normalised (x, y, visibility) from a MediaPipe landmark list, or a follower's array as is."""
    if isinstance(landmarks, np.ndarray):
        return landmarks
    return np.array([[p.x, p.y, p.visibility] for p in landmarks.landmark], dtype=np.float64)


LANDMARK_SIDE = 256
REGION_SCALE = 1.25
"""A followed region's side: twice the distance of the model's two auxiliary points (the hips' centre and
the edge of a circle around the body) grown this much, as MediaPipe 0.10.21's tracking graph does (its
`pose_rect_from_landmarks` is within 1% of this rule's region on zidane.jpg)."""
MIN_PRESENCE = 0.5
"""The model's pose presence from which a followed person is still there (MediaPipe's
min_tracking_confidence default)."""
HEATMAP_KERNEL = 7
MIN_REFINE = 0.5
"""MediaPipe's heatmap refinement: a landmark moves to the weighted mean of its heatmap's kernel around it
when the kernel's peak is this sure."""
AUX_CENTRE, AUX_EDGE = 33, 34

Region = tuple[np.ndarray, float, float]
"""(centre, side, rotation) in pixels of the square the landmark model sees."""


def region(centre: np.ndarray, edge: np.ndarray) -> Region:
    """MediaPipe's landmarks-to-region rule: centred on the body's centre, rotated so that the line to the
    edge point points up, its side REGION_SCALE times the circle's diameter."""
    rotation = np.pi / 2 - np.arctan2(-(edge[1] - centre[1]), edge[0] - centre[0])
    rotation = float((rotation + np.pi) % (2 * np.pi) - np.pi)
    return centre, 2 * float(np.linalg.norm(edge - centre)) * REGION_SCALE, rotation


def detector_region(rect: Any, size: Sequence[int]) -> Region:
    """The region MediaPipe's detector gave the landmark model (a NormalizedRect), in pixels."""
    return np.array([rect.x_center * size[0], rect.y_center * size[1]]), rect.width * size[0], rect.rotation


class PoseLandmarks:
    """MediaPipe's packaged pose_landmark_full.tflite on a region, without the person detector and the
    graph around it (run by ai-edge-litert, as hands' HandLandmarks): crop, model, heatmap refinement and
    projection back, as MediaPipe's PoseLandmarkByRoiCpu does them."""

    def __init__(self, threads: int = 0) -> None:
        self._model = mediapipe_solutions.tflite("pose_landmark", "pose_landmark_full.tflite", threads)
        self.runs = 0

    def run(self, image: np.ndarray, where: Region) -> tuple[np.ndarray, Region] | None:
        """(33 x 3 normalised landmarks: x, y, visibility; the next frame's region), or None when the model
        sees no person in `where` of the RGB image."""
        centre, side, rotation = where
        if side < 8:
            return None
        self.runs += 1
        h, w = image.shape[:2]
        to_image = self._model.run_on_region(image, centre, side, rotation)
        get = self._model.output
        if float(get("Identity_1")[0, 0]) < MIN_PRESENCE:
            return None
        raw = get("Identity")[0].reshape(39, 5).astype(np.float64)
        xy = refine(raw[:, :2] / LANDMARK_SIDE, get("Identity_3")[0])
        px = (xy * LANDMARK_SIDE) @ to_image[:, :2].T + to_image[:, 2]
        visibility = 1.0 / (1.0 + np.exp(-raw[:33, 3]))
        lm = np.column_stack([px[:33, 0] / w, px[:33, 1] / h, visibility])
        return lm, region(px[AUX_CENTRE], px[AUX_EDGE])


def refine(xy: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """Landmarks (n x 2, crop units) moved to their heatmaps' weighted means (MediaPipe's
    RefineLandmarksFromHeatmapCalculator: a kernel around each, sigmoid weights, only when its peak is sure)."""
    out = xy.copy()
    rows, cols = heatmap.shape[:2]
    half = (HEATMAP_KERNEL - 1) // 2
    for i, (x, y) in enumerate(xy):
        col, row = int(x * cols), int(y * rows)
        if not (0 <= col < cols and 0 <= row < rows):
            continue
        r0, r1, c0, c1 = (
            max(0, row - half),
            min(rows, row + half + 1),
            max(0, col - half),
            min(cols, col + half + 1),
        )
        weight = 1.0 / (1.0 + np.exp(-heatmap[r0:r1, c0:c1, i].astype(np.float64)))
        total = float(weight.sum())
        if float(weight.max()) >= MIN_REFINE and total > 0:
            out[i, 0] = float(weight.sum(axis=0) @ np.arange(c0, c1)) / total / cols
            out[i, 1] = float(weight.sum(axis=1) @ np.arange(r0, r1)) / total / rows
    return out


@dataclass
class _Found:
    pose_landmarks: np.ndarray | None


class PoseFollower:
    """One video's pass followed by the landmark model alone: starts on the region MediaPipe's detector
    gave the person it found, then each frame's region comes from the previous frame's auxiliary points
    (MediaPipe's tracking rule, without its smoothing). Quacks like a MediaPipe graph (`process`, `close`)
    for mediapipe_solutions.VideoGraphs."""

    def __init__(self, model: PoseLandmarks, start: Any) -> None:
        self._model = model
        self._start = start
        self._region: Region | None = None

    def process(self, image: np.ndarray) -> _Found:
        if self._region is None and self._start is None:
            return _Found(None)
        where = self._region or detector_region(self._start, image.shape[1::-1])
        self._start = None
        out = self._model.run(image, where)
        if out is None:
            self._region = None
            return _Found(None)
        lm, self._region = out
        return _Found(lm)

    def close(self) -> None:
        """Nothing to free: the model is the analyzer's, shared by every follower."""


class PoseOptions(YoloOptions):
    """Pose keypoints (REELSCOPE_POSE__*): empty `model` runs MediaPipe's packaged pose_landmark_full;
    else an ultralytics pose checkpoint."""

    model: str = ""
    max_detections: int = 6
    min_detection_confidence: float = 0.5
    """MediaPipe's person detector floor."""
    people: int = 2
    """MediaPipe: most people looked for in a frame (one graph pass each)."""
    track: bool = True
    """MediaPipe: follow each video's people (`follow`), skipping the person detector while the previous
    frame's landmarks give the region (mediapipe_solutions.VideoGraphs); false: the detector on every frame
    (static-image mode)."""
    follow: Literal["landmarks", "graph"] = "landmarks"
    """MediaPipe tracking: "landmarks" runs the landmark model alone (ai-edge-litert) on the region the
    previous frame's landmarks give, as the graph's tracking does (~21 ms a person instead of ~29: the graph
    also converts, smooths and passes packets); "graph": a MediaPipe graph in video mode per video and
    pass (the path before; also taken when ai-edge-litert is missing)."""
    look_every: int = 2
    """Tracking: a pass (a person) the detector found nobody for is looked for again on every n-th sampled
    frame of the video, at once on a cut: someone who enters is found up to n-1 frames late (0.33 s at
    3 fps, as hands' `detect_every`); 1: on every frame."""
    cut_threshold: float = 24.0
    """Mean grey-level move of the frame's 16 px cells from which a frame is a scene cut: the detector
    answers there, not the followed regions."""
    max_videos: int = 16
    """Videos whose followers are kept (a few numbers each; with `follow=graph` two graphs, ~10 MB); the least
    recently seen is dropped."""


class PoseAnalyzer(YoloAnalyzer):
    """People's keypoints and body cues per frame; person tracks, gestures and waves in `video_summary`.

    Sampling: 3 fps at 480 px keeps MediaPipe near 15 ms a frame without people (the detector) and ~23 ms
    a followed person on the CPU (its landmark model sees a 256x256 crop of the person, so more pixels buy
    nothing) while a wave still gets several samples.
    """

    name = "pose"
    sampling = Sampling(fps=3.0, max_side=480)
    requires = ()  # per backend: MediaPipe, or ultralytics and torch (`configured` checks which)
    model_name = mediapipe_solutions.describe("pose_landmark_full.tflite + pose_detection.tflite")
    provenance = "packaged"
    task = "pose"
    options_model = PoseOptions
    options: PoseOptions

    def __init__(self, options: PoseOptions | None = None, runtime: Runtime | None = None) -> None:
        super().__init__(options, runtime)
        self._graph: Any = None
        self._videos: mediapipe_solutions.VideoGraphs | None = None

    @classmethod
    def configured(cls, options: PoseOptions, runtime: Runtime | None = None) -> bool:
        if not options.model:
            return mediapipe_solutions.available()
        return all(importlib.util.find_spec(m) for m in ("ultralytics", "torch")) and super().configured(
            options, runtime
        )

    @classmethod
    def models(cls, options: PoseOptions, runtime: Runtime | None = None) -> list[ModelInfo]:
        """MediaPipe's packaged pose graph, and the configured YOLO pose checkpoint that replaces it."""
        mediapipe = mediapipe_solutions.packaged(
            ("pose_landmark_full.tflite", "pose_detection.tflite"), cls.name, not options.model
        )
        return [mediapipe, *super().models(options, runtime)] if options.model else [mediapipe]

    def load(self) -> None:
        if self.options.model:
            super().load()
            return
        self._graph = self._pose_graph(static=True)
        if not self.options.track:
            return
        alone = self.options.follow == "landmarks" and importlib.util.find_spec("ai_edge_litert") is not None
        if alone:
            model = PoseLandmarks(self.runtime.threads)
            make: Callable[[Any], Any] = lambda result: PoseFollower(model, result.pose_rect_from_detection)  # noqa: E731
        else:
            make = lambda _: self._pose_graph(static=False)  # noqa: E731
        self._videos = mediapipe_solutions.VideoGraphs(
            self._graph,
            make,
            lambda result: result.pose_landmarks,
            self._followable,
            self.options.cut_threshold,
            self.options.max_videos,
            alone=alone,
            look_every=self.options.look_every,
        )

    def _followable(self, landmarks: Any) -> bool:
        """A person worth following: as confident as a counted one, and a body, not a sliver at the edge."""
        person = mediapipe_person(landmark_array(landmarks), (1, 1))
        x0, y0, x1, y1 = person["box"]
        return person["conf"] >= self.options.conf and min(x1 - x0, y1 - y0) >= MIN_FOLLOWED_SIDE

    def _pose_graph(self, static: bool) -> Any:
        if static:
            return _static_pose_graph(self.options.min_detection_confidence)
        return mediapipe_solutions.solutions().pose.Pose(
            static_image_mode=static,
            model_complexity=1,  # pose_landmark_full
            smooth_landmarks=False,  # a frame's landmarks are its own, as a detection would give them
            min_detection_confidence=self.options.min_detection_confidence,
        )

    def describe_model(self) -> tuple[str, Provenance]:
        if self.options.model:
            return super().describe_model()
        return self.model_name, self.provenance

    def analyze(self, items: Sequence[FrameItem]) -> list[dict[str, Any]]:
        if self._graph is not None:
            return [self._mediapipe_payload(item) for item in items]
        if self._yolo is None:
            raise RuntimeError("load() was not called")
        results = self._yolo.predict([f.image for f in items], min(self.options.conf, TRACK_LOW_CONF))
        return [self._payload(r) for r in results]

    def _mediapipe_payload(self, item: FrameItem) -> dict[str, Any]:
        """MediaPipe finds one person a pass: each found person's box is greyed out and the graph run again,
        up to `people` persons, so a second person is not hidden behind the most prominent one. Tracking,
        pass k has its own graph per video, which follows the person it found on the previous frame."""
        h, w = item.image.shape[:2]
        work = fit_to_side(item.image, self.sampling.max_side)
        video = self._videos.begin(item, work) if self._videos is not None else None
        persons = []
        for k in range(self.options.people):
            if self._videos is not None and video is not None:
                found = self._videos.run(video, k, work)
            else:
                found = self._graph.process(work).pose_landmarks
            if found is None:
                break
            person = mediapipe_person(landmark_array(found), (w, h))
            persons.append(person)
            x0, y0, x1, y1 = person["box"]
            work = work.copy()
            wh, ww = work.shape[:2]
            work[int(y0 * wh) : int(np.ceil(y1 * wh)), int(x0 * ww) : int(np.ceil(x1 * ww))] = 128
        if self._videos is not None:
            self._videos.end(item)
        return self._summarised(persons, (w, h), sum(p["conf"] >= self.options.conf for p in persons))

    def _payload(self, result: Any) -> dict[str, Any]:
        """Every person down to the tracker's low confidence (the most confident first, capped), with
        normalised keypoints and cues; the counts and flags cover the confident ones only."""
        h, w = result.orig_shape
        conf = result.boxes.conf.cpu().numpy().astype(float)
        boxes = result.boxes.xyxyn.cpu().numpy().astype(float).clip(0.0, 1.0)
        kps = result.keypoints.data.cpu().numpy().astype(float)  # N x 17 x 3, pixels
        persons = []
        for i in np.argsort(-conf, kind="stable")[: self.options.max_detections]:
            kp = kps[i]
            persons.append(
                {
                    "conf": round(float(conf[i]), 4),
                    "box": [round(float(v), 4) for v in boxes[i]],
                    "keypoints": [
                        [round(float(x) / w, 4), round(float(y) / h, 4), round(float(c), 3)] for x, y, c in kp
                    ],
                    **body_cues(kp),
                }
            )
        return self._summarised(persons, (w, h), int((conf >= self.options.conf).sum()))

    def _summarised(self, persons: list[dict[str, Any]], size: tuple[int, int], count: int) -> dict[str, Any]:
        """The frame's payload; `count` is the people at or above the configured confidence."""
        sure = [p for p in persons if p["conf"] >= self.options.conf]
        return {
            "size": [int(size[0]), int(size[1])],
            "count": count,
            "hands_raised": any(p["hands_raised"] not in (None, "none") for p in sure),
            "arms_crossed": any(p["arms_crossed"] for p in sure),
            "pointing": any(p["pointing"] for p in sure),
            "facing_camera": sum(p["facing"] == "camera" for p in sure),
            "persons": persons,
        }

    @classmethod
    def segment_fields(cls, payloads: list[dict[str, Any]]) -> dict[str, Any]:
        """People seen (mean, most at once) and the share of frames showing each cue."""
        if not payloads:
            return {}
        n = len(payloads)
        counts = [int(p.get("count", 0)) for p in payloads]
        out: dict[str, Any] = {"count": round(sum(counts) / n, 3), "max_count": max(counts)}
        for cue in GESTURES:
            out[f"{cue}_share"] = round(sum(bool(p.get(cue)) for p in payloads) / n, 3)
        out["facing_camera"] = round(sum(int(p.get("facing_camera", 0)) for p in payloads) / n, 3)
        return out

    @classmethod
    def shot_context(cls, fields: list[dict[str, Any]]) -> dict[str, Any]:
        """`body`: the body cues seen in the shot (gestures.SHOT_CUE_SHARE of its frames)."""
        return {"body": shot_cues(fields, GESTURES)}

    @classmethod
    def video_summary(cls, results: list[ItemResult]) -> dict[str, Any] | None:
        """Person tracks with their cues over time, and gesture spans (raised hands, crossed arms, pointing,
        waves) per track."""
        if not results:
            return None
        frames = sorted(results, key=lambda r: r.start_s)
        summary: dict[str, Any] = {
            "frames": len(frames),
            "max_count": max(int(r.payload.get("count", 0)) for r in frames),
        }
        fps = frame_rate([r.start_s for r in frames], cls.sampling.fps or 3.0)
        sized = [[{**p, "size": r.payload["size"]} for p in r.payload.get("persons", [])] for r in frames]
        try:
            tracks = track_detections(
                [(r.start_s, people) for r, people in zip(frames, sized, strict=True)], fps
            )
        except ImportError as missing:  # an aggregator installed without the vision extra
            return {**summary, "tracker": f"unavailable: {missing}", "tracks": None, "gestures": None}
        gestures = [g for track in tracks for g in track_gestures(track, 1.0 / fps)]
        return {
            **summary,
            "tracker": "bytetrack (ultralytics)",
            "track_count": len(tracks),
            "tracks": [_track_summary(t) for t in tracks],
            "gestures": sorted(gestures, key=lambda g: (g["start_s"], g["track_id"])),
        }


def _static_pose_graph(min_detection_confidence: float) -> Any:
    """MediaPipe's Pose in static-image mode (model_complexity 1, no smoothing), built as `Pose` builds it
    (mediapipe 0.10.21) but also giving out the region its detector chose (`pose_rect_from_detection`),
    where a follower starts."""
    from mediapipe.python.solution_base import SolutionBase

    mp_pose = mediapipe_solutions.solutions().pose
    return SolutionBase(
        binary_graph_path=mp_pose._BINARYPB_FILE_PATH,
        side_inputs={
            "model_complexity": 1,
            "smooth_landmarks": False,
            "enable_segmentation": False,
            "smooth_segmentation": False,
            "use_prev_landmarks": False,
        },
        calculator_params={
            "posedetectioncpu__TensorsToDetectionsCalculator.min_score_thresh": min_detection_confidence,
            "poselandmarkbyroicpu__tensorstoposelandmarksandsegmentation__ThresholdingCalculator.threshold": 0.5,
        },
        outputs=["pose_landmarks", "pose_rect_from_detection"],
    )


def _track_summary(track: Track) -> dict[str, Any]:
    out = {k: v for k, v in track.summary().items() if k != "label"}
    people = track.detections
    n = len(people)
    facings = Counter(p["facing"] for p in people if p.get("facing"))
    out["facing"] = facings.most_common(1)[0][0] if facings else None
    out["hands_raised_share"] = round(sum(p.get("hands_raised") not in (None, "none") for p in people) / n, 3)
    out["arms_crossed_share"] = round(sum(bool(p.get("arms_crossed")) for p in people) / n, 3)
    out["pointing_share"] = round(sum(bool(p.get("pointing")) for p in people) / n, 3)
    return out


def _gesture(kind: str, track: Track, start: float, end: float, **extra: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "track_id": track.track_id,
        "start_s": round(start, 4),
        "end_s": round(end, 4),
        **extra,
    }


def track_gestures(track: Track, frame_s: float) -> list[dict[str, Any]]:
    """Spans of one person's raised hands, crossed arms, pointing, and waves."""
    people = track.detections
    raised = [p.get("hands_raised") if p.get("hands_raised") != "none" else None for p in people]
    out = [
        _gesture("hands_raised", track, s, e, hand=v)
        for s, e, v in spans(track.times, raised, frame_s, MIN_GESTURE_FRAMES)
    ]
    crossed = [bool(p.get("arms_crossed")) for p in people]
    out += [
        _gesture("arms_crossed", track, s, e)
        for s, e, _ in spans(track.times, crossed, frame_s, MIN_GESTURE_FRAMES)
    ]
    pointed = [p.get("pointing") for p in people]
    out += [
        _gesture("pointing", track, s, e, direction=v)
        for s, e, v in spans(track.times, pointed, frame_s, MIN_GESTURE_FRAMES)
    ]
    out += waves(track, frame_s)
    return out


def waves(track: Track, frame_s: float) -> list[dict[str, Any]]:
    """Waves of each hand: runs of frames with the forearm raised (WAVE_RISE) in which the wrist's sideways
    position relative to the elbow (in body-scale units) reverses direction WAVE_REVERSALS times or more
    over a range of WAVE_AMPLITUDE or more."""
    out = []
    kps = [pixel_keypoints(p, p["size"]) for p in track.detections]
    scales = [body_scale(kp) for kp in kps]
    for hand, (_, elbow, wrist) in SIDES.items():
        offsets: list[float | None] = [
            (float(kp[wrist, 0] - kp[elbow, 0]) / scale)
            if scale and _seen(kp, elbow, wrist) and kp[wrist, 1] < kp[elbow, 1] - WAVE_RISE * scale
            else None
            for kp, scale in zip(kps, scales, strict=True)
        ]
        for i, j in oscillations(offsets, WAVE_STEP, WAVE_REVERSALS, WAVE_AMPLITUDE):
            out.append(_gesture("wave", track, track.times[i], track.times[j] + frame_s, hand=hand))
    return out
