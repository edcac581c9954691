"""On-screen text: PP-OCR (RapidOCR, ONNX) per frame, merged into timed caption events per video.

Per frame the payload holds the recognised lines and the caption blocks they form (lines stacked one
above the other, overlapping horizontally, of similar height). `video_summary` follows each block across
frames, tolerating OCR noise and a missing frame, so a two-line caption held for three seconds becomes
one event with its whole text, a start and an end.

Sampling: 2 fps at 960 px on the longest side. Captions on short-form video stay up for a second or more,
so 2 fps sees each at least twice (timing resolution 0.5 s). Small print (handles, 2-5 % of the frame
height) is 19-48 px tall at 960 px but 13-32 px at 640 px, where PP-OCR's 48 px line recogniser gets
upsampled blur; counter.mp4's large text reads 30/30 at both. Cost on a 2-core CPU: ~0.15-0.25 s per
960x540 frame, ~0.07 s at 640 px.

Work not repeated (issue 18): detection, most of the cost, runs on the frame reduced to `det_max_side`
(640 px) while each line is still read from the 960 px frame; a line is recognised only when its region
changed since the video's previous reading (cell signatures, analyzers/common/change_gate.py), a frame
that did not change at all reuses the whole previous reading without detection, and a frame whose change
lies wholly inside the lines last detected (a caption changing in place over a still background) reads
those lines again without detection.

Detection every k-th frame (issue 18): when the background moves, every frame changes outside the lines and
the gates above skip nothing. Full-frame detection (62 % of the analyzer on the bench clip) then runs on a
video's every `detect_every`-th sampled frame only, the policy of the faces analyzer; on the frames in
between the lines are detected again only in bands of rows around the last detection's lines (one line
height above and below each, the frame's whole width: 9 % of the bench clip's frame), and those whose pixels
changed are recognised. The bands are there because reading the old boxes again is not enough: a caption
that grows sideways past its box leaves the box's pixels unchanged (measured: `HELLO 123` -> `HELLO 123
WORLD` kept the old reading); and a line cut by its band's edge reads a confident fragment (`123` at 0.997),
hence the edge rule. Full detection runs at once instead on a stream's first frame, on a cut (the frame's
cells moved by more than `cut_threshold` on average since the previous sampled frame), and when a band loses
a line (gone, or moved out of its rows), a line reaches a band's cut edge (moved up or down), or a line
reads empty or under the event floor. A previous detection that found no line is no reason to detect (that
is the saving on text-free video): text that appears elsewhere between detections is found at the next one,
within 1 s at 2 fps with k=2, so its event starts one sampled frame (0.5 s) late
(tests/test_ocr_detect_every.py); text that changes in place or grows in its rows is read on time.

Cheaper passes, same readings: the detector's input is made by table lookups (bit for bit RapidOCR's), and
the detector's and recogniser's scalar steps are folded into their convolutions at load
(analyzers/common/onnx_fold.py): on the bench clip (every frame changes) 0.79-0.81 of the CPU seconds.
"""

from __future__ import annotations

import difflib
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field
from reelscope.analyzers.base import (
    FrameAnalyzer,
    FrameItem,
    ItemResult,
    ModelInfo,
    Runtime,
    Sampling,
    packaged_model,
)
from reelscope.analyzers.common.boxes import box_iou
from reelscope.analyzers.common.change_gate import VideoMemory, changed, signature
from reelscope.analyzers.common.onnx_session import session_options
from reelscope.analyzers.common.text_entities import extract_entities
from reelscope.analyzers.common.torch_device import resolve_device
from reelscope.schemas.events import Provenance

MIN_LINE_CONFIDENCE = 0.5
"""RapidOCR's own default recognition score floor: below it lines are mostly hallucinated glyphs."""
MIN_EVENT_CONFIDENCE = 0.8
"""Mean confidence a text needs to become a text event, a segment's line or a keyword source: rendered
captions and counters read 0.94-1.0 (the sample clip, counter.mp4), while half-read fragments of
background text (signs, labels, blurred print) sit between the line floor and this."""
MAX_LINES = 24
MAX_BLOCKS = 12
MAX_TEXT_CHARS = 200
"""Caps that keep a text-dense frame's payload under ~4 KB."""
SAME_TEXT_RATIO = 0.75
"""difflib ratio above which two readings are taken as the same caption (OCR noise, not new text)."""
MIN_BOX_IOU = 0.2
MAX_MISSING_FRAMES = 1
"""An event survives this many sampled frames in which OCR missed it."""
MAX_EVENTS = 200

MODEL_FILES = (
    "ch_PP-OCRv4_det_infer.onnx",
    "ch_PP-OCRv4_rec_infer.onnx",
    "ch_ppocr_mobile_v2.0_cls_infer.onnx",
)
"""RapidOCR's packaged models: detection, recognition, angle classifier (in its `models` folder)."""

REGION_CELL = 4
"""A text line's signature: the frame's pixels under its box, in cells of this many pixels."""
FRAME_CELL = 8
BAND_MIN = 48
BAND_EDGE = 2
"""Between detections lines are detected again in bands of rows at least this high; a line reaching within
BAND_EDGE pixels of its band's cut edge may go on beyond it (moved up or down): full detection runs."""
SAME_REGION_IOU = 0.7
"""A line's box overlaps the previous reading's box this much to be compared with it."""


class OcrTextOptions(BaseModel):
    """On-screen text reading (REELSCOPE_OCR_TEXT__*)."""

    det_max_side: int = 640
    """Text detection runs on the frame reduced to this longest side (0: the frame's own size); lines are
    read from the full frame. Detection is ~85 % of the cost at 960 px; at 640 px it costs 0.44x."""
    reuse_unchanged: bool = True
    """Recognise a line only when its region changed since the video's previous sampled frame; a frame
    with no change at all reuses the previous reading whole, without detection."""
    reread_in_place: bool = True
    """With `reuse_unchanged`: a frame whose change since the last detection lies wholly inside the boxes of
    the lines then found (a caption or counter changing in place over a still background) skips detection
    and reads those lines again; detection runs when anything changed elsewhere (new text may be there)
    or a line read again comes out faint or empty (its text may have gone or moved)."""
    detect_every: int = Field(default=2, ge=1)
    """Detect lines in the whole frame on every k-th sampled frame of a video and, in between, only in bands
    of rows around the last detection's lines (1: the whole frame on every frame that changed outside the
    lines). 2: 0.67-0.70 of the analyzer's CPU seconds on the bench clip (a caption over a pan; the same
    texts but PP-OCR's optional spaces), 0.51-0.52 on a text-free pan (docs/benchmarks.md); text that appears
    outside the known lines' rows is found at the next full detection (0.5 s later at 2 fps); a cut, or a
    line gone, moved out of its rows or faint detects the whole frame at once."""
    cut_threshold: float = 28.0
    """Mean grey-level move of the frame's 8 px cells (960 px frame) since the previous sampled frame above
    which the frame is a new scene and detection runs at once. Measured at 2 fps: hard cuts 27-64 on
    full-frame generated footage and 29.6-29.8 on the bench clip; moves without a cut 3-10 on slowly panned
    footage, 18.4 on a panned photo, 22-26 on the bench clip's blocky random texture panning a block a
    frame (each frame a new random picture: the worst case). Cuts in letterboxed layouts (14-19: the
    picture is half the frame) stay under it; there the lines are read again and new text is found at the
    next detection, as text that appears without a cut."""
    change_threshold: float = 16.0
    """Grey levels a cell's mean may move with the region still unchanged (one changed character moves
    its cells by 60-250; JPEG re-encoding by a few)."""
    threads: int = Field(default=1, ge=0)
    """onnxruntime intra-op threads of the three sessions (0: the process's budget). One: 15-20 % fewer CPU
    seconds than two on the shared 2-core machine for the same readings (no thread waits for a core or
    synchronises between operators); the wall time of one frame is longer."""
    spin: bool = False
    """Let onnxruntime's intra-op threads spin-wait for work between operators (its default, and
    RapidOCR's). Off: they sleep, which halves the process CPU of a 2-thread session on a shared 2-core
    machine (the spinning burns cycles other processors' groups need) for the same readings."""
    fold_graphs: bool = True
    """Fold the detector's and recogniser's per-convolution scalar multiply/add and spelt-out hard-swish
    into the convolutions at load (analyzers/common/onnx_fold.py): detection and recognition ~20 % fewer
    CPU seconds, outputs within float rounding (~1e-6), the same readings (tests/test_ocr_cost.py)."""
    engine: Literal["auto", "onnxruntime", "torch"] = "auto"
    """`onnxruntime`: RapidOCR's sessions, on the CPU. `torch`: the same packaged models converted to torch
    at load (analyzers/common/onnx_torch.py), on `device`: the GPU path (onnxruntime's CUDA build is not
    installed). `auto`: torch where `device` is a GPU, else onnxruntime."""
    device: str = "auto"
    """The torch engine's device: `auto` (cuda when available, else cpu) or a torch device name."""


@dataclass
class _Region:
    quad: np.ndarray
    """4 x 2 pixel corners, as the detector gives them."""
    rect: tuple[int, int, int, int]
    """x0, y0, x1, y1: where the line was when it was recognised. A later frame is compared under this
    same rectangle (the detector's boxes jitter by pixels from frame to frame; the pixels under a fixed
    rectangle do not, unless the content changed)."""
    signature: np.ndarray
    """Of the frame that was recognised under `rect`: reuse is always against the image actually read."""
    text: str
    score: float


@dataclass
class _Seen:
    """What the analyzer read last in one video: the frame's signature when it was read, its lines, and
    the frame's signature when the lines were last detected."""

    frame: np.ndarray
    regions: list[_Region]
    detected: np.ndarray
    since: int = 0
    """Sampled frames since the lines were last detected (`detect_every`)."""


_NUMBER = re.compile(r"(?<![^\W\d_])\d+(?:[.,:]\d+)*")
"""Numbers not glued to letters: `HELL0` has none, `1.2s` has `1.2`."""
_DIGITS = re.compile(r"\d+")


def _norm_text(text: str) -> str:
    return " ".join(text.split())


def _numbers(text: str) -> list[str]:
    return _NUMBER.findall(text)


def same_text(a: str, b: str) -> bool:
    """Two readings of one caption: fuzzy-equal letters and identical numbers.

    Numbers must match exactly because a changing number (counter, price, timer) is new content, while OCR
    noise mostly swaps letters; a digit glued to letters counts too once both readings have digits (OCR
    drops spaces: `frame0`, `frame30`), while one reading's `0` for the other's `O` stays noise. A reading
    that caught only part of a caption (one of its lines) still matches when it is a near-exact part of
    the other.
    """
    a, b = _norm_text(a).lower(), _norm_text(b).lower()
    if a == b:
        return True
    if not a or not b or _numbers(a) != _numbers(b):
        return False
    digits_a, digits_b = _DIGITS.findall(a), _DIGITS.findall(b)
    if digits_a and digits_b and digits_a != digits_b:
        return False  # `frame0` and `frame30`: digits both read, glued or not, and different: new content
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    if matcher.ratio() >= SAME_TEXT_RATIO:
        return True
    short = min(len(a), len(b))
    matched = sum(block.size for block in matcher.get_matching_blocks())
    return short >= 8 and matched / short >= 0.9


def _same_place(a: Sequence[float], b: Sequence[float]) -> bool:
    """Overlapping boxes, or one box's centre inside the other (a line missing changes the block's size)."""
    if box_iou(a, b) >= MIN_BOX_IOU:
        return True
    for outer, inner in ((a, b), (b, a)):
        cx, cy = (inner[0] + inner[2]) / 2, (inner[1] + inner[3]) / 2
        if outer[0] <= cx <= outer[2] and outer[1] <= cy <= outer[3]:
            return True
    return False


def _union(boxes: Sequence[Sequence[float]]) -> list[float]:
    return [
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    ]


def group_blocks(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Join lines into caption blocks: consecutive rows close vertically, overlapping horizontally, of
    similar height; pieces of one row close horizontally. Reading order: top to bottom, left to right."""
    n = len(lines)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        a = lines[i]["box"]
        ha = a[3] - a[1]
        for j in range(i + 1, n):
            b = lines[j]["box"]
            hb = b[3] - b[1]
            if min(ha, hb) <= 0 or max(ha, hb) / min(ha, hb) > 1.6:
                continue
            h = min(ha, hb)
            v_overlap = min(a[3], b[3]) - max(a[1], b[1])
            h_overlap = min(a[2], b[2]) - max(a[0], b[0])
            same_row = v_overlap >= 0.5 * h and h_overlap > -1.0 * h
            stacked = -0.7 * h <= v_overlap < 0.5 * h and h_overlap > 0
            if same_row or stacked:
                parent[find(i)] = find(j)

    groups: dict[int, list[dict[str, Any]]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(lines[i])
    blocks = []
    for members in groups.values():
        rows = _rows(members)
        text = " ".join(" ".join(m["text"] for m in row) for row in rows)[:MAX_TEXT_CHARS]
        weights = [max(1, len(m["text"])) for m in members]
        conf = sum(m["conf"] * w for m, w in zip(members, weights, strict=True)) / sum(weights)
        blocks.append(
            {
                "text": text,
                "box": [round(v, 4) for v in _union([m["box"] for m in members])],
                "conf": round(conf, 4),
            }
        )
    blocks.sort(key=lambda b: (b["box"][1], b["box"][0]))
    return blocks


def _rows(members: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Lines of one block in rows (vertical centres within half a line height), each row left to right."""
    rows: list[list[dict[str, Any]]] = []
    for m in sorted(members, key=lambda m: (m["box"][1] + m["box"][3]) / 2):
        cy = (m["box"][1] + m["box"][3]) / 2
        if rows:
            last = rows[-1][0]["box"]
            if abs(cy - (last[1] + last[3]) / 2) < 0.5 * (last[3] - last[1]):
                rows[-1].append(m)
                continue
        rows.append([m])
    return [sorted(row, key=lambda m: m["box"][0]) for row in rows]


def frame_interval(times: Sequence[float], default: float) -> float:
    """Median spacing of the sampled frames' PTS: how long one sampled frame stands for."""
    diffs = [b - a for a, b in pairwise(times) if b - a > 1e-6]
    return statistics.median(diffs) if diffs else default


@dataclass
class _Event:
    start: float
    last: float
    box: list[float]
    variants: dict[str, list[float]] = field(default_factory=dict)
    """text variant -> confidences of the frames that read it."""
    boxes: list[list[float]] = field(default_factory=list)

    def add(self, pts: float, block: dict[str, Any]) -> None:
        self.last = pts
        self.box = block["box"]
        self.boxes.append(block["box"])
        self.variants.setdefault(_norm_text(block["text"]), []).append(float(block["conf"]))

    def best_text(self) -> str:
        """Most frequent variant; ties go to the more confident, then the longer (a complete reading)."""
        return max(self.variants.items(), key=lambda kv: (len(kv[1]), sum(kv[1]) / len(kv[1]), len(kv[0])))[0]

    def matches(self, block: dict[str, Any]) -> bool:
        return _same_place(self.box, block["box"]) and any(same_text(t, block["text"]) for t in self.variants)


def _bounds(quad: np.ndarray) -> list[float]:
    return [
        float(quad[:, 0].min()),
        float(quad[:, 1].min()),
        float(quad[:, 0].max()),
        float(quad[:, 1].max()),
    ]


def _bands(rects: Sequence[tuple[int, int, int, int]], height: int) -> list[tuple[int, int]]:
    """Rows to detect lines in between detections: each line's rows widened by its height above and below
    (at least BAND_MIN pixels high), overlapping bands merged, top to bottom."""
    spans = []
    for _, y0, _, y1 in rects:
        pad = max(y1 - y0, (BAND_MIN - (y1 - y0) + 1) // 2)
        spans.append((max(0, y0 - pad), min(height, y1 + pad)))
    bands: list[tuple[int, int]] = []
    for top, bottom in sorted(spans):
        if bands and top <= bands[-1][1]:
            bands[-1] = (bands[-1][0], max(bands[-1][1], bottom))
        else:
            bands.append((top, bottom))
    return bands


def _rect(quad: np.ndarray) -> tuple[int, int, int, int]:
    """The quad's pixel bounds, at least one cell wide and high."""
    x0, y0, x1, y1 = _bounds(quad)
    left, top = int(x0), int(y0)
    return left, top, max(left + REGION_CELL, int(np.ceil(x1))), max(top + REGION_CELL, int(np.ceil(y1)))


def _payload(result: Sequence[tuple[Any, str, float]], w: int, h: int) -> dict[str, Any]:
    """A frame's payload from its (quad, text, score) readings: the lines, and the blocks they form."""
    lines = []
    for quad, text, score in result:
        text = _norm_text(str(text))
        if not text:
            continue
        pts = np.asarray(quad, dtype=np.float64)
        box = [
            float(np.clip(pts[:, 0].min() / w, 0, 1)),
            float(np.clip(pts[:, 1].min() / h, 0, 1)),
            float(np.clip(pts[:, 0].max() / w, 0, 1)),
            float(np.clip(pts[:, 1].max() / h, 0, 1)),
        ]
        lines.append(
            {
                "text": text[:MAX_TEXT_CHARS],
                "box": [round(v, 4) for v in box],
                "conf": round(float(score), 4),
            }
        )
    blocks = group_blocks(lines)
    return {
        "lines": lines[:MAX_LINES],
        "blocks": blocks[:MAX_BLOCKS],
        "text_count": len(lines),
        "truncated": len(lines) > MAX_LINES or len(blocks) > MAX_BLOCKS,
    }


def det_table(mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """256 x channels float32: RapidOCR's detection normalisation of each uint8 value, computed as it computes
    it (float32 times 1/255, float64 mean and std, cast to float32), so a lookup gives its values bit for bit."""
    values = np.arange(256, dtype=np.float32)[:, None] * (1 / 255.0)
    return ((values - np.asarray(mean, np.float64)) / np.asarray(std, np.float64)).astype(np.float32)


def det_tensor(image: np.ndarray, table: np.ndarray) -> np.ndarray:
    """1 x C x H x W float32 detection input of an H x W x C uint8 image: one table lookup per channel
    plane (cv2.LUT), instead of float64 arithmetic over the whole image and a transposing copy."""
    import cv2

    planes = cv2.split(image)
    out = np.empty((1, len(planes), *image.shape[:2]), np.float32)
    for c, plane in enumerate(planes):
        out[0, c] = cv2.LUT(plane, np.ascontiguousarray(table[:, c]))
    return out


def _without_spinning(engine: Any, threads: int, fold: bool = False, spin: bool = False) -> dict[str, int]:
    """Rebuild RapidOCR's three onnxruntime sessions (detection, angle, recognition) with the same model
    and options as RapidOCR's own, but intra-op threads that sleep instead of spinning between operators
    (unless `spin`), and with `fold` the models' scalar steps folded into their convolutions
    (analyzers/common/onnx_fold.py). RapidOCR exposes only thread counts, so the sessions are replaced
    after it made them. Returns how many folds were made, per kind (none without `onnx`)."""
    import onnxruntime as ort

    made: dict[str, int] = {}
    for holder, path in _sessions(engine):
        opts = session_options(threads)
        if spin:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "1")
        opts.enable_cpu_mem_arena = False
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        model: str | bytes = str(path)
        if fold:
            model, counts = _folded(path)
            for kind, n in counts.items():
                made[kind] = made.get(kind, 0) + n
        holder.session = ort.InferenceSession(
            model, sess_options=opts, providers=holder.session.get_providers()
        )
    return made


def _sessions(engine: Any) -> list[tuple[Any, Path]]:
    """RapidOCR's three session holders (detection, recognition, angle), each with its packaged model file."""
    import rapidocr_onnxruntime

    models = Path(rapidocr_onnxruntime.__file__).parent / "models"
    holders = (engine.text_det.infer, engine.text_rec.session, engine.text_cls.infer)
    return [(holder, models / file) for holder, file in zip(holders, MODEL_FILES, strict=True)]


def _on_torch(engine: Any, device: Any) -> None:
    """Replace RapidOCR's three onnxruntime sessions by the same models run by torch on `device`."""
    from reelscope.analyzers.common.onnx_torch import TorchSession

    for holder, path in _sessions(engine):
        holder.session = TorchSession(path, device, holder.session)


def _folded(path: Path) -> tuple[str | bytes, dict[str, int]]:
    """The model with its scalar steps folded into its convolutions, serialised; the file itself when the
    `onnx` package (which reads and writes the graph) is absent."""
    try:
        import onnx
    except ImportError:
        return str(path), {}
    from reelscope.analyzers.common.onnx_fold import fold_model

    model = onnx.load(str(path))
    counts = fold_model(model)
    return model.SerializeToString(), counts


class OcrTextAnalyzer(FrameAnalyzer):
    """PP-OCRv4 detection + recognition through RapidOCR's ONNX runtime (models ship in its wheel)."""

    name = "ocr_text"
    group = "vision"
    sampling = Sampling(fps=2.0, max_side=960)
    model_name = "rapidocr-onnxruntime PP-OCRv4 det/rec + mobile v2 cls"
    provenance = "packaged"
    options_model = OcrTextOptions
    options: OcrTextOptions

    _engine: Any = None
    _det_table: np.ndarray
    folds: dict[str, int] | None = None
    """Per kind, the scalar steps folded into the models' convolutions at load (`fold_graphs`)."""
    torch_device: str | None = None
    """Where the torch engine runs the models; None on onnxruntime."""

    def __init__(self, options: BaseModel | None = None, runtime: Runtime | None = None) -> None:
        super().__init__(options, runtime)
        self._memory: VideoMemory[_Seen] = VideoMemory()
        self.recognised = self.reused = self.frames_reused = self.detections_skipped = 0
        """Lines recognised and lines reused, frames reused whole, frames read without detection (their
        change inside known lines, or between two detections): what gating saved."""
        self.detections = self.detections_deferred = 0
        """Detections run; frames read again without detection because the next is due only on the
        `detect_every`-th frame (a part of `detections_skipped`)."""

    @classmethod
    def models(cls, options: Any, runtime: Runtime | None = None) -> list[ModelInfo]:
        return [
            packaged_model(cls.model_name, cls.name, "rapidocr-onnxruntime", MODEL_FILES, "Apache-2.0", True)
        ]

    def describe_model(self) -> tuple[str, Provenance]:
        if self.torch_device is None:
            return self.model_name, self.provenance
        return f"{self.model_name}, run by torch on {self.torch_device} (onnx2torch)", self.provenance

    def load(self) -> None:
        from rapidocr_onnxruntime import RapidOCR

        count = self.options.threads or self.runtime.threads
        threads = {"intra_op_num_threads": count} if count else {}
        # "max": never upsample before detection (the default, min side 736, takes a 960x540 frame to
        # 1308x736, 40 % slower for no gain on caption-sized text); _detect sizes the frame itself.
        self._engine = RapidOCR(det_limit_type="max", text_score=MIN_LINE_CONFIDENCE, **threads)
        engine = self.options.engine
        if engine != "onnxruntime":
            device = resolve_device(self.options.device, self.name)
            if engine == "torch" or device.type != "cpu":
                self.torch_device = str(device)
                _on_torch(self._engine, device)
        if self.torch_device is None and (not self.options.spin or self.options.fold_graphs):
            self.folds = _without_spinning(self._engine, count, self.options.fold_graphs, self.options.spin)
        self._det_table = det_table(self._engine.text_det.mean, self._engine.text_det.std)

    def analyze(self, items: Sequence[FrameItem]) -> list[dict[str, Any]]:
        if self._engine is None:
            raise RuntimeError("load() was not called")
        return [self._frame(item) for item in items]

    def _frame(self, item: FrameItem) -> dict[str, Any]:
        image = item.image
        h, w = image.shape[:2]
        gate = self.options.reuse_unchanged
        seen = self._memory.get(item.video_id, item.first) if gate else None
        frame_sig = signature(image, FRAME_CELL) if gate else np.zeros(0, np.float32)
        detected = frame_sig
        since = 0
        if seen is not None and not changed(seen.frame, frame_sig, self.options.change_threshold):
            regions, frame_sig, detected, since = seen.regions, seen.frame, seen.detected, seen.since + 1
            self.frames_reused += 1
        elif seen is not None and (in_place := self._reread_in_place(image, seen, frame_sig)) is not None:
            regions, detected, since = in_place, seen.detected, seen.since + 1
        elif seen is not None and (rows := self._between(image, seen, frame_sig)) is not None:
            regions, detected, since = rows, seen.detected, seen.since + 1
        else:
            regions = self._read(image, seen)
            self.detections += 1
        if gate:
            self._memory.put(item.video_id, _Seen(frame_sig, regions, detected, since), item.final)
        read = [r for r in regions if r.score >= MIN_LINE_CONFIDENCE]
        return _payload([(r.quad, r.text, r.score) for r in read], w, h)

    def _read(self, image: np.ndarray, seen: _Seen | None) -> list[_Region]:
        """Detect the lines; recognise those whose region is new or changed, reuse the others."""
        import cv2

        # RapidOCR treats a 3-channel array as BGR (cv2's swap: a third of numpy's copy of a reversed view).
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        return self._regions(image, bgr, seen, self._detect(bgr))[0]

    def _regions(
        self, image: np.ndarray, bgr: np.ndarray, seen: _Seen | None, quads: list[np.ndarray]
    ) -> tuple[list[_Region], list[int]]:
        """The detected lines: those whose region is new or changed recognised (their indices), the others
        reused."""
        regions: list[_Region] = []
        todo: list[int] = []
        for i, quad in enumerate(quads):
            previous = self._same_region(seen, quad, image)
            if previous is None:
                todo.append(i)
                rect = _rect(quad)
                sig = signature(image[rect[1] : rect[3], rect[0] : rect[2]], REGION_CELL)
                regions.append(_Region(quad, rect, sig, "", 0.0))
            else:
                regions.append(replace(previous, quad=quad))
        for i, (text, score) in zip(todo, self._recognise(bgr, [quads[i] for i in todo]), strict=True):
            regions[i].text, regions[i].score = text, score
        self.recognised += len(todo)
        self.reused += len(quads) - len(todo)
        return regions, todo

    def _recognise(self, bgr: np.ndarray, quads: list[np.ndarray]) -> list[tuple[str, float]]:
        """(text, score) of each quad's crop: angle classifier, then the recogniser (batched by RapidOCR)."""
        if not quads:
            return []
        rotated, _, _ = self._engine.text_cls(self._engine.get_crop_img_list(bgr, quads))
        recognised, _ = self._engine.text_rec(rotated)
        return [(_norm_text(str(text)), float(score)) for text, score in recognised]

    def _reread_in_place(self, image: np.ndarray, seen: _Seen, frame_sig: np.ndarray) -> list[_Region] | None:
        """The lines of the last detection, those whose pixels changed read again, when every cell that
        changed since that detection lies inside one of their rectangles; None when detection must run."""
        if not self.options.reread_in_place or not seen.regions:
            return None
        if seen.detected.shape != frame_sig.shape:
            return None
        threshold = self.options.change_threshold
        moved = np.abs(seen.detected - frame_sig) > threshold
        inside = np.zeros_like(moved)
        rows, cols = moved.shape
        sy, sx = image.shape[0] / rows, image.shape[1] / cols
        for r in seen.regions:
            x0, y0, x1, y1 = r.rect
            inside[int(np.ceil(y0 / sy)) : int(y1 // sy), int(np.ceil(x0 / sx)) : int(x1 // sx)] = True
        if (moved & ~inside).any():
            return None
        todo = []
        for i, r in enumerate(seen.regions):
            x0, y0, x1, y1 = r.rect
            if changed(r.signature, signature(image[y0:y1, x0:x1], REGION_CELL), threshold):
                todo.append(i)
        if not todo:
            return None  # changes too small for any line's cells: let detection look again
        import cv2

        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        read = self._recognise(bgr, [seen.regions[i].quad for i in todo])
        if any(not text or score < MIN_EVENT_CONFIDENCE for text, score in read):
            return None  # a line gone, moved or half there: detection finds what is there now
        regions = list(seen.regions)
        for i, (text, score) in zip(todo, read, strict=True):
            x0, y0, x1, y1 = regions[i].rect
            sig = signature(image[y0:y1, x0:x1], REGION_CELL)
            regions[i] = replace(regions[i], signature=sig, text=text, score=score)
        self.recognised += len(todo)
        self.reused += len(regions) - len(todo)
        self.detections_skipped += 1
        return regions

    def _between(self, image: np.ndarray, seen: _Seen, frame_sig: np.ndarray) -> list[_Region] | None:
        """A frame between two detections (`detect_every`): the lines detected again only within the rows
        of the last detection's lines (a band one line high above and below each, the frame's whole width,
        so a caption that grew or slid sideways is found whole), those whose pixels changed recognised;
        None when full detection must run: the frame is a cut or detection is due, a line is cut by its
        band's edge (moved up or down), fewer lines than before (one gone), or one reads empty or under
        the event floor (half there, or not a caption)."""
        if not self._deferred(seen, frame_sig):
            return None
        self.detections_deferred += 1
        if not seen.regions:
            self.detections_skipped += 1
            return []  # nothing was there: text that appears waits for the next detection
        import cv2

        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        height = image.shape[0]
        quads: list[np.ndarray] = []
        for top, bottom in _bands([r.rect for r in seen.regions], height):
            found = self._detect(bgr, (top, bottom))
            for q in found:
                ys = q[:, 1]
                if (top > 0 and ys.min() <= top + BAND_EDGE) or (
                    bottom < height and ys.max() >= bottom - BAND_EDGE
                ):
                    return self._undeferred()
            quads += found
        if len(quads) < len(seen.regions):
            return self._undeferred()
        quads = list(self._engine.sorted_boxes(np.asarray(quads)))
        regions, todo = self._regions(image, bgr, seen, quads)
        if any(not regions[i].text or regions[i].score < MIN_EVENT_CONFIDENCE for i in todo):
            return self._undeferred()
        self.detections_skipped += 1
        return regions

    def _undeferred(self) -> None:
        self.detections_deferred -= 1
        return None

    def _deferred(self, seen: _Seen, frame_sig: np.ndarray) -> bool:
        """Detection may wait: the video's next is due on a later sampled frame and this one is no cut."""
        return (
            seen.since + 1 < self.options.detect_every
            and seen.frame.shape == frame_sig.shape
            and float(np.abs(seen.frame - frame_sig).mean()) <= self.options.cut_threshold
        )

    def _same_region(self, seen: _Seen | None, quad: np.ndarray, image: np.ndarray) -> _Region | None:
        """The previous reading of this line: a box at the same place, and the same pixels under it."""
        if seen is None:
            return None
        bounds = _bounds(quad)
        best = max(seen.regions, key=lambda r: box_iou(r.rect, bounds), default=None)
        if best is None or box_iou(best.rect, bounds) < SAME_REGION_IOU:
            return None
        x0, y0, x1, y1 = best.rect
        now = signature(image[y0:y1, x0:x1], REGION_CELL)
        return None if changed(best.signature, now, self.options.change_threshold) else best

    def _detect(self, bgr: np.ndarray, rows: tuple[int, int] | None = None) -> list[np.ndarray]:
        """Line quads in the frame's pixels, top to bottom, detected on the frame reduced to det_max_side
        (or on its band of `rows`, at the same scale)."""
        import cv2

        frame_h, w = bgr.shape[:2]
        side = self.options.det_max_side
        scale = min(1.0, side / max(frame_h, w)) if side > 0 else 1.0
        top = 0
        if rows is not None:
            top, bgr = rows[0], bgr[rows[0] : rows[1]]
        h = bgr.shape[0]
        small = bgr
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        boxes = self._det_boxes(small)
        if boxes is None or len(boxes) == 0:
            return []
        limits = np.array([w - 1, frame_h - 1], np.float32)
        factor, offset = np.array([w / small.shape[1], h / small.shape[0]]), np.array([0, top])
        return [
            np.clip(np.asarray(b, np.float32) * factor + offset, 0, limits).astype(np.float32)
            for b in self._engine.sorted_boxes(boxes)
        ]

    def _det_boxes(self, bgr: np.ndarray) -> np.ndarray | None:
        """RapidOCR's text detection (`text_det(bgr)`), the same boxes, with its input made by `det_tensor`:
        its own normalisation, in float64 numpy math, cost more than a third of detection outside the
        model (5 of 13 ms a frame)."""
        det = self._engine.text_det
        sized = det.get_preprocess(max(bgr.shape[:2])).resize(bgr)
        if sized is None:
            return None
        preds = det.infer(det_tensor(sized, self._det_table))[0]
        boxes, _ = det.postprocess_op(preds, bgr.shape[:2])
        return det.filter_tag_det_res(boxes, bgr.shape[:2])

    @classmethod
    def segment_fields(cls, payloads: list[dict[str, Any]]) -> dict[str, Any]:
        """The distinct texts visible in the segment, in order of appearance: `lines`, one text each (read
        these: a text may itself contain ' | '), and `text`, the same joined with ' | ' for display."""
        seen: list[str] = []
        for p in payloads:
            for block in p.get("blocks", []):
                if float(block.get("conf", 1.0)) < MIN_EVENT_CONFIDENCE:
                    continue
                text = _norm_text(block["text"])
                if text and not any(same_text(text, s) for s in seen):
                    seen.append(text)
        return {"text": " | ".join(seen), "lines": seen, "text_blocks": len(seen), "has_text": bool(seen)}

    @classmethod
    def document_fields(cls, summary: dict[str, Any]) -> dict[str, Any]:
        """`text_events`: each event's text, times and box (the summary keeps confidence and frames)."""
        return {
            "text_events": [
                {k: e[k] for k in ("text", "start_s", "end_s", "box")} for e in summary.get("events", [])
            ]
        }

    @classmethod
    def shot_context(cls, fields: list[dict[str, Any]]) -> dict[str, Any]:
        """`text`: the shot's distinct lines in order of first appearance."""
        texts: list[str] = []
        for f in fields:
            for line in f.get("lines", []):
                if line not in texts:
                    texts.append(line)
        return {"text": texts}

    @classmethod
    def video_summary(cls, results: list[ItemResult]) -> dict[str, Any] | None:
        if not results:
            return None
        frames = sorted(results, key=lambda r: r.start_s)
        default = 1.0 / cls.sampling.fps if cls.sampling.fps else 0.1
        dt = frame_interval([r.start_s for r in frames], default)
        open_events: list[_Event] = []
        closed: list[_Event] = []
        for r in frames:
            pts = r.start_s
            still_open = []
            for ev in open_events:
                (still_open if pts - ev.last <= (MAX_MISSING_FRAMES + 1) * dt + 1e-6 else closed).append(ev)
            open_events = still_open
            taken: set[int] = set()
            for block in r.payload.get("blocks", []):
                match = next((ev for ev in open_events if id(ev) not in taken and ev.matches(block)), None)
                if match is None:
                    match = _Event(start=pts, last=pts, box=block["box"])
                    open_events.append(match)
                match.add(pts, block)
                taken.add(id(match))
        closed.extend(open_events)
        closed.sort(key=lambda ev: (ev.start, ev.box[1]))
        events = []
        faint = 0
        for ev in closed:
            confs = [c for cs in ev.variants.values() for c in cs]
            if sum(confs) / len(confs) < MIN_EVENT_CONFIDENCE:
                faint += 1
                continue
            if len(events) == MAX_EVENTS:
                break
            events.append(
                {
                    "text": ev.best_text(),
                    "start_s": round(ev.start, 4),
                    "end_s": round(ev.last + dt, 4),
                    "box": [round(sum(b[i] for b in ev.boxes) / len(ev.boxes), 4) for i in range(4)],
                    "conf": round(sum(confs) / len(confs), 4),
                    "frames": len(confs),
                }
            )
        return {
            "events": events,
            "faint_texts_dropped": faint,
            "frame_interval_s": round(dt, 4),
            **extract_entities([e["text"] for e in events]),
        }
