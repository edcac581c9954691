"""Work not repeated: tell whether an image (a whole frame, a text region) changed since it was last
analysed, and keep per-video memory of what was seen.

A signature is the image in grey, reduced to the mean of each small cell (cv2's area filter): two images
are the same when no cell's mean moved more than a threshold in grey levels. A cell is a few pixels, so
one changed character or digit of a caption moves its cells by tens of levels, while JPEG noise and
re-encoding move them by a few. Comparing cells, not the whole mean, keeps a small change from being
averaged away.

`VideoMemory` holds the last state per video, keyed by video id (a processor's batches mix videos): a
stream's first item starts it afresh (a replay restarts there), its final item forgets it, and the least
recently used videos are dropped past a bound. Losing the memory only costs recomputation: analyzers keep
in it nothing their payloads depend on beyond what a recomputation would give again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


def signature(image: np.ndarray, cell: int = 8) -> np.ndarray:
    """Grey cell means of an RGB or grey uint8 image: one value per `cell` x `cell` pixels."""
    import cv2

    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape[:2]
    size = (max(1, w // cell), max(1, h // cell))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA).astype(np.float32)


def changed(a: np.ndarray | None, b: np.ndarray, threshold: float) -> bool:
    """True unless both signatures have the same shape and no cell differs by more than `threshold`."""
    if a is None or a.shape != b.shape:
        return True
    return bool(np.abs(a - b).max() > threshold)


class VideoMemory(Generic[T]):
    """Per-video state of a stateless-by-contract analyzer, bounded to the `max_videos` most recent."""

    def __init__(self, max_videos: int = 256, drop: Callable[[T], None] | None = None) -> None:
        self.max_videos = max_videos
        self._state: OrderedDict[str, T] = OrderedDict()
        self._drop = drop
        """Called with a state the memory lets go of (restarted, forgotten or evicted): states that hold
        resources (MediaPipe graphs) release them there."""

    def _release(self, state: T | None) -> None:
        if state is not None and self._drop is not None:
            self._drop(state)

    def get(self, video_id: str, first: bool = False) -> T | None:
        """The video's state, None when unknown or when this item starts its stream."""
        if first:
            self._release(self._state.pop(video_id, None))
            return None
        state = self._state.get(video_id)
        if state is not None:
            self._state.move_to_end(video_id)
        return state

    def put(self, video_id: str, state: T, final: bool = False) -> None:
        """Remember the video's state; a final item forgets the video instead."""
        if final:
            old = self._state.pop(video_id, None)
            self._release(old if old is not None and old is not state else None)
            self._release(state)
            return
        old = self._state.get(video_id)
        if old is not None and old is not state:
            self._release(old)
        self._state[video_id] = state
        self._state.move_to_end(video_id)
        while len(self._state) > self.max_videos:
            self._release(self._state.popitem(last=False)[1])

    def __len__(self) -> int:
        return len(self._state)
