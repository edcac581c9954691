"""The one interface every analyzer implements. Analyzers know nothing of Kafka.

A processor (stream_processors/) calls `load()` once per process, then `analyze(items)` with batches that mix
videos; it returns one payload dict per item. The aggregator (sinks/) calls the model-free class methods
`segment_fields` (merge the payloads that fall in one timeline segment) and `video_summary` (temporal
reasoning over a whole video, such as cuts from per-frame signatures), so per-item work stays stateless
and a processor killed mid-video loses nothing.

Heavy imports belong inside `load()`, so the aggregator and the producer can import every analyzer class
cheaply.
"""

from __future__ import annotations

import importlib.util
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from reelscope.schemas.events import Provenance

InputKind = Literal["frame", "audio", "shot"]

RANDOM_TEST_MARKER = "reelscope_provenance"
"""A model directory whose config.json carries `"reelscope_provenance": "random-test"` is a tiny random model
(the tests build them): every analyzer reports its output as `random-test`. The marker can only lower trust."""


def cpu_threads() -> int:
    """The thread budget this process was given (OMP_NUM_THREADS, set per processor group by `reelscope up`),
    for libraries that size their own pools (onnxruntime sessions); 0 when unset (the library decides)."""
    try:
        return max(0, int(os.environ.get("OMP_NUM_THREADS", "0")))
    except ValueError:
        return 0


@dataclass(frozen=True)
class Sampling:
    """What an analyzer needs from the producer.

    fps None means every decoded frame; max_side is the longest side, in pixels, it wants frames resized to.
    Audio analyzers take every chunk.
    """

    fps: float | None = 1.0
    max_side: int = 640
    audio_channels: Literal["mix", "split"] = "mix"
    """Audio: `split` takes one chunk stream per channel when a stereo source's channels carry different
    content (two microphones), else the mono mix; `mix` always takes the mono mix."""


@dataclass(frozen=True)
class FrameItem:
    video_id: str
    index: int
    pts_s: float
    image: np.ndarray
    """RGB uint8, H x W x 3, already rotated upright."""
    final: bool = False
    first: bool = False


@dataclass(frozen=True)
class AudioItem:
    video_id: str
    index: int
    start_s: float
    end_s: float
    samples: np.ndarray
    """float32 mono in [-1, 1]."""
    sample_rate: int
    channel: int = -1
    final: bool = False
    """Last chunk of this channel of the video: flush any window held for it."""
    hotwords: tuple[str, ...] = ()
    first: bool = False
    """First chunk of this channel: a stateful analyzer starts the stream afresh (a replay restarts here)."""


@dataclass(frozen=True)
class ShotItem:
    """One shot of a video, for analyzers that look at a whole shot (captioning): K frames sampled across
    it, and what the other analyzers found in it (`context`: objects, on-screen text, words, camera ...)."""

    video_id: str
    index: int
    start_s: float
    end_s: float
    frames: tuple[np.ndarray, ...]
    """RGB uint8 keyframes in time order."""
    frame_times: tuple[float, ...]
    context: dict[str, Any]


Item = FrameItem | AudioItem | ShotItem


@dataclass(frozen=True)
class ItemResult:
    """One stored result, as the aggregator hands it back to `video_summary`."""

    item_key: str
    start_s: float
    end_s: float
    payload: dict[str, Any]


class Analyzer(ABC):
    """Base class; subclasses set the class attributes and implement `analyze`."""

    name: ClassVar[str]
    input: ClassVar[InputKind]
    group: ClassVar[str]
    """Processor group that runs it: analyzers of one group share a process, its batches and its device."""
    sampling: ClassVar[Sampling] = Sampling()
    model_name: ClassVar[str] = "algorithm"
    provenance: ClassVar[Provenance] = "algorithm"
    stateful: ClassVar[bool] = False
    """Holds per-video state across items (windows, buffers). Its processor then commits offsets only up to
    the first item of each unfinished video, and after a restart ignores streams it did not see begin, so a
    killed process replays whole open videos and never a tail."""
    requires: ClassVar[tuple[str, ...]] = ()
    """Importable modules it needs (from an extra such as `[audio]`); `auto` enables it only if present."""

    def __init__(self, settings: Any = None) -> None:
        self.settings = settings

    @classmethod
    def available(cls) -> bool:
        """True when every module it requires can be imported here."""
        return all(importlib.util.find_spec(module) is not None for module in cls.requires)

    @classmethod
    def configured(cls, settings: Any) -> bool:
        """False when it needs weights that are not configured here (then `auto` leaves it out)."""
        return True

    def load(self) -> None:  # noqa: B027 - optional hook: model-free analyzers load nothing
        """Load models; called once per process before the first batch."""

    def describe_model(self) -> tuple[str, Provenance]:
        """The model actually loaded and where its weights came from (may differ per configuration)."""
        return self.model_name, self.provenance

    @abstractmethod
    def analyze(self, items: Sequence[Item]) -> list[dict[str, Any]]:
        """One JSON-able payload per item, in order. Raise to fail the batch; the runtime retries per item."""

    @classmethod
    def segment_fields(cls, payloads: list[dict[str, Any]]) -> dict[str, Any]:
        """Merge the payloads that fall in one segment into that segment's fields (default: numeric means)."""
        return mean_numeric(payloads)

    @classmethod
    def timeline_results(cls, results: list[ItemResult], segment_s: float) -> list[ItemResult]:
        """The results to place on the per-segment timeline; override when a payload speaks of other times
        than its item's (a transcription window's words ride on the chunk that closed the window)."""
        return results

    @classmethod
    def video_summary(cls, results: list[ItemResult]) -> dict[str, Any] | None:
        """Whole-video reduction written into the reconstruction under the analyzer's name; None for none."""
        return None


def mean_numeric(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean of every numeric (non-bool) top-level field; booleans become the share that was true."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for p in payloads:
        for k, v in p.items():
            if isinstance(v, bool):
                v = 1.0 if v else 0.0
                k = f"{k}_share"
            elif not isinstance(v, int | float):
                continue
            sums[k] = sums.get(k, 0.0) + float(v)
            counts[k] = counts.get(k, 0) + 1
    return {k: round(sums[k] / counts[k], 4) for k in sums}
