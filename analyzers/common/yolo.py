"""What the ultralytics analyzers (objects, pose, logos) share: options, offline loading, batched
prediction, the detections payload, and ByteTrack replayed over stored detections.

Detect checkpoints (objects, logos) skip ultralytics' predictor: frames of one shape are letterboxed on the
device in one tensor, run in one forward pass, and go through one `batched_nms` for the whole batch (the
predictor loops one NMS per image, which halved detection throughput on an H200: docs/benchmarks.md, GPU
groups). Boxes are scaled back to frame pixels with ultralytics' own letterbox geometry, so payloads equal
the predictor's (tests/test_objects.py compares them). Pose keeps the predictor: its keypoints need Results.

Weights are never downloaded: an analyzer's `model` option names a local checkpoint (a path, or a bare file
name looked up in the working directory and in `<state_dir>/weights`), and ultralytics runs offline (no hub,
no telemetry, no auto-installs). A checkpoint that records no training run (no `train_args`: what
`YOLO("yolo11n.yaml").save(...)` writes) is reported as "random-test"; anything else the user configured
is "configured".

Tracking is not done in `analyze`: ultralytics' trackers keep state per stream, and a processor sees mixed,
restartable batches. `video_summary` replays ultralytics' own BYTETracker over the stored detections in PTS
order instead, so track ids depend only on the stored results. That needs ultralytics and `lap` (its
assignment solver) where the aggregator runs, and the first summary imports torch with them (~3 s once);
without them the summary keeps the counts and says the tracker is unavailable.
"""

from __future__ import annotations

import copy
import os
import statistics
import tempfile
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel
from reelscope.analyzers.base import FrameAnalyzer, FrameItem, ItemResult, Runtime
from reelscope.schemas.events import Provenance

if TYPE_CHECKING:
    import torch

TRACK_LOW_CONF = 0.1
"""Detections down to ByteTrack's track_low_thresh are kept for its second association stage (ultralytics'
own track mode lowers conf to 0.1 for the same reason); `counts` use the configured conf only."""
MAX_TRACKS = 100
TRACK_BUFFER_FPS = 30.0
"""bytetrack.yaml's track_buffer counts frames of a 30 fps stream; it is rescaled to the sampled rate so a
lost track survives the same time (ByteTrack's original frame_rate / 30 scaling)."""


DEFAULT_FPS = 5.0
"""Sampled rate assumed when stored detections do not show one (a single frame)."""


class YoloOptions(BaseModel):
    """An ultralytics model. Weights are never downloaded."""

    model: str = "yolo11n.pt"
    """Checkpoint path, or a bare file name looked up in the working directory and `<state_dir>/weights`."""
    device: str = ""
    """Empty: cuda:0 when available, else cpu."""
    imgsz: int = 640
    conf: float = 0.25
    half: bool = True
    """FP16 inference; applies on CUDA only."""
    max_detections: int = 40
    """Detections kept in a frame's payload (the most confident); counts cover all of them."""


def ultralytics_offline(state_dir: Path | None = None) -> None:
    """Keep ultralytics from reaching the network: offline mode (no hub, no telemetry, no downloads), no
    auto-installs, and a writable config dir. Must run before ultralytics is first imported."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "False"
    os.environ.setdefault("YOLO_VERBOSE", "False")
    config = state_dir / "ultralytics" if state_dir else Path(tempfile.gettempdir()) / "reelscope-ultralytics"
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config.resolve()))
    Path(os.environ["YOLO_CONFIG_DIR"]).mkdir(parents=True, exist_ok=True)


def resolve_weights(ref: str, state_dir: Path) -> Path:
    """The local checkpoint file for `ref`; raises when it is not on disk, since nothing is downloaded."""
    path = Path(ref).expanduser()
    candidates = [path]
    if not path.is_absolute() and path.parent == Path("."):
        candidates.append(state_dir / "weights" / path.name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    looked = ", ".join(str(c.resolve()) for c in candidates)
    raise FileNotFoundError(
        f"model weights {ref!r} not found (looked at {looked}); reelscope never downloads weights at run "
        "time: put the checkpoint there or set REELSCOPE_OBJECTS__MODEL / REELSCOPE_POSE__MODEL to its path"
    )


class YoloModel:
    """An ultralytics checkpoint loaded offline, run on frames grouped by shape so each group is letterboxed
    to its own rectangle (ultralytics pads a mixed-shape batch to a square) in one batched forward pass."""

    def __init__(self, options: YoloOptions, task: str, runtime: Runtime) -> None:
        ultralytics_offline(runtime.state_dir)
        import torch
        from ultralytics import YOLO, __version__
        from ultralytics.cfg import DEFAULT_CFG_DICT

        path = resolve_weights(options.model, runtime.state_dir)
        if path.suffix != ".pt":
            raise ValueError(
                f"{path}: only ultralytics .pt checkpoints are supported (their training record "
                "tells a trained model from a random one)"
            )
        model = YOLO(str(path))
        if model.task != task:
            raise ValueError(f"{path} is a {model.task!r} model; this analyzer needs a {task!r} model")
        self.model = model
        self.options = options
        self.device = options.device or ("cuda:0" if torch.cuda.is_available() else "cpu")
        self.half = options.half and self.device.startswith("cuda")
        # ultralytics 8.4 replaced the `half` flag with `quantize` (16: FP16) and warns on every call to `half`
        precision = 16 if self.half else None
        self.precision = {"quantize": precision} if "quantize" in DEFAULT_CFG_DICT else {"half": self.half}
        self.names: dict[int, str] = {int(k): str(v) for k, v in model.names.items()}
        self.provenance: Provenance = "configured" if model.ckpt.get("train_args") else "random-test"
        self.description = f"{path.name} (ultralytics {__version__} {task})"
        self.batched: BatchedDetector | None = None
        """The predictor-free path of `detect`, built at load for detect checkpoints (pose never needs it)."""
        if task == "detect" and not getattr(model.model, "end2end", False):
            self.batched = BatchedDetector(model.model, self.device, self.half, options.imgsz)

    def detect(self, images: Sequence[np.ndarray], conf: float) -> list[FrameDetections]:
        """Detections per RGB image, in order, in frame pixels: a plain detect head (YOLOv8/11 and the like)
        runs `BatchedDetector` (one forward and one NMS per frame shape); an NMS-free end-to-end head
        (YOLO26) or another task goes through the predictor."""
        end2end = bool(getattr(self.model.model, "end2end", False))
        if self.model.task != "detect" or end2end:
            return [FrameDetections.of_result(r) for r in self.predict(images, conf)]
        if self.batched is None:
            self.batched = BatchedDetector(self.model.model, self.device, self.half, self.options.imgsz)
        by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, image in enumerate(images):
            by_shape[image.shape].append(i)
        out: list[FrameDetections | None] = [None] * len(images)
        for indices in by_shape.values():
            for i, found in zip(indices, self.batched([images[i] for i in indices], conf), strict=True):
                out[i] = found
        return [d for d in out if d is not None]

    def predict(self, images: Sequence[np.ndarray], conf: float) -> list[Any]:
        """ultralytics Results per RGB image, in order: one predict call per distinct frame shape."""
        by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, image in enumerate(images):
            by_shape[image.shape].append(i)
        out: list[Any] = [None] * len(images)
        for indices in by_shape.values():
            results = self.model.predict(
                [np.ascontiguousarray(images[i][..., ::-1]) for i in indices],  # ultralytics takes BGR arrays
                imgsz=self.options.imgsz,
                conf=conf,
                **self.precision,
                device=self.device,
                batch=len(indices),
                rect=True,
                verbose=False,
            )
            for i, result in zip(indices, results, strict=True):
                out[i] = result
        return out


@dataclass(frozen=True)
class FrameDetections:
    """One frame's detections in its own pixels: xyxy (n, 4), conf (n,), cls (n,); size is (width, height)."""

    xyxy: np.ndarray
    conf: np.ndarray
    cls: np.ndarray
    size: tuple[int, int]

    @classmethod
    def of_result(cls, result: Any) -> FrameDetections:
        """From an ultralytics Results (the predictor's path)."""
        boxes = result.boxes
        h, w = result.orig_shape
        return cls(
            boxes.xyxy.cpu().numpy().astype(np.float32),
            boxes.conf.cpu().numpy().astype(np.float32),
            boxes.cls.cpu().numpy().astype(np.int64),
            (int(w), int(h)),
        )


def batched_nms(
    preds: torch.Tensor, conf: float = 0.25, iou: float = 0.7, max_det: int = 100
) -> list[torch.Tensor]:
    """NMS for a whole batch in one torchvision call: candidates of every image are offset by image and
    class (batched_nms), instead of ultralytics' loop of one NMS per image; the result is split per image
    on the host after a single transfer. preds: (B, 4 + classes, N), boxes as centre xywh (a detect head's
    output). Rows per image, most confident first: x0, y0, x1, y1, score, class. Candidates are those whose
    best class scores above `conf`, as in ultralytics' non_max_suppression."""
    import torch
    import torchvision

    batch = preds.shape[0]
    scores, classes = preds[:, 4:].max(dim=1)  # B, N (no transpose of the whole tensor)
    image, anchor = (scores > conf).nonzero(as_tuple=True)
    boxes = preds[image, :4, anchor]
    xyxy = torch.cat([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], dim=1).float()
    chosen_scores, chosen_classes = scores[image, anchor].float(), classes[image, anchor]
    kept = torchvision.ops.batched_nms(xyxy, chosen_scores, image * preds.shape[1] + chosen_classes, iou)
    kept = kept[torch.argsort(image[kept], stable=True)]
    rows = torch.cat([xyxy[kept], chosen_scores[kept, None], chosen_classes[kept, None].float()], 1).cpu()
    counts = torch.bincount(image[kept], minlength=batch).cpu().tolist()
    return [part[:max_det] for part in torch.split(rows, counts)]


class BatchedDetector:
    """A detect network run without ultralytics' predictor: frames of one shape are uploaded as uint8,
    letterboxed on the device (the predictor's rectangle: ultralytics' LetterBox geometry, grey 114 padding),
    run in one forward pass, and NMS'd once for the batch (`batched_nms`); boxes go back to frame pixels with
    ultralytics' scale_boxes. The network is a fused copy, as the predictor's AutoBackend fuses its own."""

    def __init__(self, network: Any, device: str, half: bool, imgsz: int) -> None:
        import torch
        from ultralytics.cfg import DEFAULT_CFG_DICT
        from ultralytics.utils.checks import check_imgsz

        net = copy.deepcopy(network).float().eval()
        net = net.fuse(verbose=False) if hasattr(net, "fuse") else net
        self.device = torch.device(device)
        self.dtype = torch.float16 if half else torch.float32
        self.net = net.to(self.device, self.dtype)
        self.stride = max(int(network.stride.max()), 32)
        self.imgsz: list[int] = check_imgsz(imgsz, stride=self.stride, min_dim=2)
        self.iou = float(DEFAULT_CFG_DICT["iou"])
        self.max_det = int(DEFAULT_CFG_DICT["max_det"])

    def __call__(self, images: Sequence[np.ndarray], conf: float) -> list[FrameDetections]:
        """Detections for RGB frames that all have one shape."""
        import cv2
        import torch
        from ultralytics.data.augment import LetterBox
        from ultralytics.utils.ops import scale_boxes

        letterbox = LetterBox(self.imgsz, auto=True, stride=self.stride)
        geometry = letterbox.get_params({"img": images[0]})
        h0, w0 = images[0].shape[:2]
        if geometry["new_unpad"] != (
            w0,
            h0,
        ):  # frames larger (or smaller) than imgsz: resized as ultralytics does
            images = [
                cv2.resize(im, geometry["new_unpad"], interpolation=letterbox.interpolation) for im in images
            ]
        batch = torch.from_numpy(np.stack(images)).to(self.device).permute(0, 3, 1, 2)  # B, 3, h, w uint8 RGB
        padding = (geometry["left"], geometry["right"], geometry["top"], geometry["bottom"])
        x = torch.nn.functional.pad(batch, padding, value=114).to(self.dtype).div_(255)
        with torch.inference_mode():
            preds = self.net(x)
        preds = preds[0] if isinstance(preds, tuple | list) else preds
        out = []
        for rows in batched_nms(preds, conf, self.iou, self.max_det):
            xyxy = scale_boxes(tuple(x.shape[2:]), rows[:, :4].clone(), (h0, w0))
            out.append(
                FrameDetections(
                    xyxy.numpy().astype(np.float32),
                    rows[:, 4].numpy().astype(np.float32),
                    rows[:, 5].numpy().astype(np.int64),
                    (w0, h0),
                )
            )
        return out


def detections_payload(result: Any, names: Mapping[int, str], options: YoloOptions) -> dict[str, Any]:
    """One frame's payload from an ultralytics Results (see `frame_payload`)."""
    return frame_payload(FrameDetections.of_result(result), names, options)


def frame_payload(found: FrameDetections, names: Mapping[int, str], options: YoloOptions) -> dict[str, Any]:
    """One frame's payload: the most confident detections (xyxy boxes normalised by the frame size, as
    ultralytics' xyxyn) and the counts by label of those at or above the configured confidence."""
    conf = found.conf.astype(float)
    cls = found.cls.astype(int)
    w, h = found.size
    xyxyn = (found.xyxy.astype(float) / np.array([w, h, w, h], dtype=float)).reshape(-1, 4).clip(0.0, 1.0)
    order = np.argsort(-conf, kind="stable")
    confident = conf >= options.conf
    counts = Counter(names.get(int(c), str(c)) for c in cls[confident])
    return {
        "size": [int(w), int(h)],
        "count": int(confident.sum()),
        "counts": dict(counts.most_common()),
        "detections": [
            {
                "cls": int(cls[i]),
                "label": names.get(int(cls[i]), str(cls[i])),
                "conf": round(float(conf[i]), 4),
                "box": [round(float(v), 4) for v in xyxyn[i]],
            }
            for i in order[: options.max_detections]
        ],
    }


class YoloAnalyzer(FrameAnalyzer):
    """An ultralytics checkpoint on frames (objects, pose, logos derive from it): detections per frame,
    counts per segment, ByteTrack tracks in `video_summary`; subclasses name it and its options."""

    group = "vision"
    requires = ("ultralytics", "torch")
    provenance = "configured"
    task: ClassVar[str] = "detect"
    options_model: ClassVar[type[BaseModel] | None] = YoloOptions
    options: YoloOptions

    def __init__(self, options: YoloOptions | None = None, runtime: Runtime | None = None) -> None:
        super().__init__(options, runtime)
        self._yolo: YoloModel | None = None

    @classmethod
    def configured(cls, options: YoloOptions, runtime: Runtime | None = None) -> bool:
        """Only when its checkpoint is on disk: nothing is downloaded, so `auto` skips it otherwise."""
        try:
            resolve_weights(options.model, (runtime or Runtime()).state_dir)
        except FileNotFoundError:
            return False
        return True

    def load(self) -> None:
        self._yolo = YoloModel(self.options, self.task, self.runtime)

    def describe_model(self) -> tuple[str, Provenance]:
        if self._yolo is None:
            return self.model_name, self.provenance
        return self._yolo.description, self._yolo.provenance

    def analyze(self, items: Sequence[FrameItem]) -> list[dict[str, Any]]:
        if self._yolo is None:
            raise RuntimeError("load() was not called")
        found = self._yolo.detect([f.image for f in items], min(self.options.conf, TRACK_LOW_CONF))
        return [frame_payload(d, self._yolo.names, self.options) for d in found]

    @classmethod
    def segment_fields(cls, payloads: list[dict[str, Any]]) -> dict[str, Any]:
        """Mean and largest object count, and per label the most seen at once in the segment."""
        if not payloads:
            return {}
        most: dict[str, int] = {}
        for p in payloads:
            for label, n in p.get("counts", {}).items():
                most[label] = max(most.get(label, 0), int(n))
        counts = [int(p.get("count", 0)) for p in payloads]
        return {
            "count": round(sum(counts) / len(counts), 3),
            "max_count": max(counts),
            "counts": dict(sorted(most.items(), key=lambda kv: (-kv[1], kv[0]))),
        }

    @classmethod
    def video_summary(cls, results: list[ItemResult]) -> dict[str, Any] | None:
        """ByteTrack tracks over the whole video, and per label the number of tracks and the most at once."""
        if not results:
            return None
        frames = sorted(results, key=lambda r: r.start_s)
        most: dict[str, int] = {}
        for r in frames:
            for label, n in r.payload.get("counts", {}).items():
                most[label] = max(most.get(label, 0), int(n))
        summary: dict[str, Any] = {
            "frames": len(frames),
            "max_counts": dict(sorted(most.items(), key=lambda kv: (-kv[1], kv[0]))),
        }
        try:
            tracks = track_detections([(r.start_s, r.payload.get("detections", [])) for r in frames])
        except ImportError as missing:  # an aggregator installed without the vision extra
            return {**summary, "tracker": f"unavailable: {missing}", "tracks": None}
        per_label = Counter(t.label for t in tracks)
        kept = sorted(sorted(tracks, key=lambda t: -len(t.times))[:MAX_TRACKS], key=lambda t: t.track_id)
        return {
            **summary,
            "tracker": "bytetrack (ultralytics)",
            "track_count": len(tracks),
            "tracks_by_label": dict(per_label.most_common()),
            "tracks": [t.summary() for t in kept],
        }


@dataclass
class Track:
    """One confirmed track: the stored detections (payload dicts) it matched, in time order."""

    track_id: int
    times: list[float] = field(default_factory=list)
    detections: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The label with the largest summed confidence over the track (ByteTrack itself ignores classes)."""
        votes: Counter[str] = Counter()
        for d in self.detections:
            votes[str(d.get("label", d.get("cls", 0)))] += float(d["conf"])
        return votes.most_common(1)[0][0]

    def summary(self) -> dict[str, Any]:
        n = len(self.detections)
        return {
            "track_id": self.track_id,
            "label": self.label,
            "first_s": round(self.times[0], 4),
            "last_s": round(self.times[-1], 4),
            "frames": n,
            "mean_conf": round(sum(float(d["conf"]) for d in self.detections) / n, 4),
            "mean_box": [round(sum(d["box"][k] for d in self.detections) / n, 4) for k in range(4)],
        }


class _Boxes:
    """The slice of ultralytics' Boxes that BYTETracker reads: conf, cls, xywh, len() and mask indexing."""

    def __init__(self, xywh: np.ndarray, conf: np.ndarray, cls: np.ndarray) -> None:
        self.xywh, self.conf, self.cls = xywh, conf, cls

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, index: Any) -> _Boxes:
        return _Boxes(self.xywh[index], self.conf[index], self.cls[index])

    @classmethod
    def of(cls, detections: Sequence[Mapping[str, Any]]) -> _Boxes:
        xyxy = np.array([d["box"] for d in detections], dtype=np.float32).reshape(-1, 4)
        xywh = np.concatenate([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], axis=1)
        conf = np.array([float(d["conf"]) for d in detections], dtype=np.float32)
        return cls(xywh, conf, np.array([float(d.get("cls", 0)) for d in detections], dtype=np.float32))


def frame_rate(times: Sequence[float], default: float) -> float:
    """Sampled frames per second from the median PTS step."""
    steps = [b - a for a, b in pairwise(times) if b - a > 1e-6]
    return 1.0 / statistics.median(steps) if steps else default


def track_detections(
    frames: Sequence[tuple[float, Sequence[Mapping[str, Any]]]], fps: float | None = None
) -> list[Track]:
    """Run ultralytics' BYTETracker (bytetrack.yaml defaults) over stored detections in PTS order.

    Each detection needs a normalised `box` (xyxy) and a `conf`; IoU and ByteTrack's Kalman state are
    scale-free, so normalised boxes track like pixels. A frame without detections still advances the
    tracker, so lost tracks age. Only confirmed tracks are returned (ByteTrack drops a new box that is not
    matched again on the next frame), each with every detection it matched, including the first one.
    Track ids count 1, 2, ... in order of first appearance.
    """
    ultralytics_offline()
    from ultralytics.trackers.byte_tracker import BYTETracker
    from ultralytics.utils import ROOT, YAML, IterableSimpleNamespace

    rate = fps or frame_rate([t for t, _ in frames], DEFAULT_FPS)
    args = IterableSimpleNamespace(**YAML.load(ROOT / "cfg" / "trackers" / "bytetrack.yaml"))
    args.track_buffer = max(1, round(args.track_buffer * rate / TRACK_BUFFER_FPS))
    tracker = BYTETracker(args)
    seen: dict[int, tuple[Any, Track]] = {}  # ByteTrack id -> (its STrack, what it matched)
    for t, detections in frames:
        tracker.update(_Boxes.of(detections))
        for strack in tracker.tracked_stracks:  # every one of them was matched or started in this frame
            _, track = seen.setdefault(strack.track_id, (strack, Track(0)))
            track.times.append(float(t))
            track.detections.append(dict(detections[int(strack.idx)]))
    confirmed = [track for strack, track in seen.values() if strack.is_activated]
    confirmed.sort(key=lambda track: track.times[0])
    for i, track in enumerate(confirmed, start=1):
        track.track_id = i
    return confirmed
