"""Scene: hard cuts and transitions (fades, black, flashes, freezes, dissolves) from tiny per-frame signatures.

`analyze` turns every decoded frame into a signature of about 1 KB (global HSV/luma statistics and a 16x16
RGB grid). All temporal reasoning happens in `video_summary`, which sees the whole video and can therefore
look both ways around a candidate cut: that is what keeps fades, flashes, dissolves and global colour
changes from being reported as hard cuts. It first finds the active picture, the part of the frame that
moves: letterbox and pillarbox bars, a caption above a letterboxed film and stickers never change, so
counting them would dilute every cut below the threshold and make two different shots look alike.
No model, numpy only.
"""

from __future__ import annotations

import base64
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from reelscope.analyzers.base import FrameAnalyzer, FrameItem, ItemResult, Sampling

_OPENCV = importlib.util.find_spec("cv2") is not None
_SIDE = 96
"""Longest side of the frames the signatures are taken on: the statistics and the 16x16 grid need no more
(the cut scorecard holds at 64 px too), and each frame costs the producer, the broker and this analyzer
in proportion to its pixels."""
_GRID = 8  # RGB grid cells per side: colour content, compared like PySceneDetect's ContentDetector
_THUMB = 16  # cells per side of the payload's RGB grid; its grey is the layout (same-layout check, freezes)
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_DARK_LUMA = 24.0  # a pixel this dark counts as black (about ffmpeg blackdetect's pix_th=0.10)
_BLACK_SHARE = 0.95  # a frame is black when this share of its pixels is dark (tolerates a small logo)

_CONTENT_THRESHOLD = 27.0  # ContentDetector's default threshold on the HSV delta
_MIN_CONTENT = 15.0  # AdaptiveDetector's min_content_val
_ADAPTIVE_RATIO = 3.0  # AdaptiveDetector's adaptive_threshold (score / neighbours' mean) below the threshold
_SIDE_RATIO = 2.0  # every cut must also stand this far above each side's neighbours taken alone
_ADAPTIVE_WINDOW = 2  # neighbours on each side (AdaptiveDetector's window_width)
_PERSIST_FRAMES = 3  # frames on each side that must all differ for a change to be a cut, not a flash
_SAME_LAYOUT = 0.9  # thumbnail correlation above which a colour jump is a lighting/colour change, not a cut
_FLAT_STD = 2.0  # thumbnail std below which a frame has no layout to correlate
_MIN_SHOT_S = 0.5  # of two cuts closer than this, the weaker goes (PySceneDetect's min_scene_len)
_FLASH_LUMA = 40.0  # luma rise over both neighbours for a flash
_FLASH_MAX_S = 0.15
_FREEZE_MIN_S = 0.5
_FREEZE_MEAN = 0.5  # thumbnail mean abs difference (grey levels) between frozen frames
_FREEZE_MAX = 2.0  # and its largest cell difference
_FADE_MIN_DROP = 20.0  # luma a fade must cover
_FADE_STEP = 0.25  # luma change per frame that still counts as fading
_FADE_MAX_STEP = 0.6  # largest share of a fade's luma change one frame may make
_DISSOLVE_WINDOWS_S = (0.4, 0.8, 1.6, 2.4)
_DISSOLVE_RESIDUAL = 0.2  # largest blend-fit residual, relative to the distance between the two shots
_DISSOLVE_MIN_DIST = 12.0  # mean abs difference of the two shots' 4x4 colour layouts
_DISSOLVE_STEADY = 0.3  # largest change on either side, over the transition's length, relative to it
_DISSOLVE_MAX_STEP = 0.4  # largest share of the change one frame may make: more is a jump, not a blend
_DISSOLVE_DIP = 0.9  # a dissolve's luma std must sag below this share of its ends' (Alattar's variance dip)
_DISSOLVE_BACK = 0.15  # largest step back towards the first picture (noise), so the blend is monotone
_STATIC_LEVEL = 4.0  # grey-level change of a thumbnail cell below which it did not change (codec noise)
_ACTIVE_SHARE = 0.2  # a cell is active picture when it changes at least this share as often as the busiest
_MIN_ACTIVE_AREA = 0.2  # an active rectangle smaller than this share of the frame is an overlay (a counter)


def _cells(image: np.ndarray, n: int) -> np.ndarray:
    """Area-average an H x W (x C) image to n x n cells (rows and columns split as evenly as they go)."""
    h, w = image.shape[:2]
    rows = (np.arange(n) * h) // n
    cols = (np.arange(n) * w) // n
    sums = np.add.reduceat(np.add.reduceat(image, rows, axis=0), cols, axis=1)
    heights = np.diff(np.append(rows, h))
    widths = np.diff(np.append(cols, w))
    area = np.outer(heights, widths)
    return sums / (area[..., None] if image.ndim == 3 else area)


def _hsv(rgb: np.ndarray) -> np.ndarray:
    """RGB (0..255, any leading shape) to OpenCV's 8-bit HSV convention: H in [0, 180), S and V in [0, 255]."""
    r, g, b = (rgb[..., k].astype(np.float32) for k in range(3))
    v = np.maximum(np.maximum(r, g), b)
    c = v - np.minimum(np.minimum(r, g), b)
    h6 = np.where(v == r, g - b, np.where(v == g, b - r + 2.0 * c, r - g + 4.0 * c)) / np.maximum(c, 1e-6)
    h = np.where(c > 0, (h6 * 30.0) % 180.0, 0.0)
    s = 255.0 * c / np.maximum(v, 1e-6)
    return np.stack([h, s, v], axis=-1)


def _hsv_mean(rgb: np.ndarray) -> np.ndarray:
    """Mean H, S, V of an RGB float32 image in `_hsv`'s convention; OpenCV's float conversion (the same
    formula) when it is installed: 0.01 vs 1.3 ms for a 96x170 frame."""
    if _OPENCV:
        import cv2

        h, s, v, _ = cv2.mean(cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV))  # H in degrees, S 0..1
        return np.array([h / 2.0, s * 255.0, v])
    return _hsv(rgb).reshape(-1, 3).mean(axis=0)


def reduced(image: np.ndarray, side: int = _SIDE) -> np.ndarray:
    """A frame larger than the signature needs (one another analyzer sampled at its own size) area-reduced
    by the whole factor that keeps its longest side at `side` or more, so every frame's statistics are
    taken at about the same scale (and a 960 px frame costs no more than a small one)."""
    k = max(image.shape[:2]) // side
    if k < 2:
        return image
    h, w = image.shape[0] // k * k, image.shape[1] // k * k
    if _OPENCV:
        import cv2

        return cv2.resize(np.ascontiguousarray(image[:h, :w]), (w // k, h // k), interpolation=cv2.INTER_AREA)
    return image[:h, :w].reshape(h // k, k, w // k, k, -1).mean(axis=(1, 3), dtype=np.float32)


def frame_signature(image: np.ndarray) -> dict[str, Any]:
    """The per-frame payload: global HSV and luma statistics plus the two tiny descriptors, base64-packed."""
    rgb = np.ascontiguousarray(image, dtype=np.float32)
    luma = rgb @ _LUMA
    hsv = _hsv_mean(rgb)
    dark_share = float((luma < _DARK_LUMA).mean())
    grid = np.clip(np.rint(_cells(rgb, _THUMB)), 0, 255).astype(np.uint8)
    return {
        "h": round(float(hsv[0]), 2),
        "s": round(float(hsv[1]), 2),
        "v": round(float(hsv[2]), 2),
        "luma": round(float(luma.mean()), 2),
        "luma_std": round(float(luma.std()), 2),
        "dark_share": round(dark_share, 4),
        "black": dark_share >= _BLACK_SHARE,
        "grid": base64.b64encode(grid.tobytes()).decode("ascii"),
    }


def active_picture(thumb: np.ndarray) -> np.ndarray:
    """Weights (16 x 16, 0 or 1) of the cells inside the active picture: the rectangle of rows and columns
    whose cells change from frame to frame at least a fifth as often as the busiest cell.

    Bars, a static caption or sticker around the picture never change, so they fall outside; all ones when
    nothing moves, or when what moves is a small overlay (a counter, a ticker) rather than the picture."""
    ones = np.ones((_THUMB, _THUMB))
    if len(thumb) < 3:
        return ones
    changes = (np.abs(np.diff(thumb, axis=0)) > _STATIC_LEVEL).mean(axis=0).reshape(_THUMB, _THUMB)
    if changes.max() <= 0:
        return ones
    active = changes >= _ACTIVE_SHARE * changes.max()
    rows, cols = np.flatnonzero(active.any(axis=1)), np.flatnonzero(active.any(axis=0))
    box = np.zeros((_THUMB, _THUMB))
    box[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = 1.0
    return box if box.mean() >= _MIN_ACTIVE_AREA else ones


@dataclass
class _Frames:
    """The decoded signatures of one video, as arrays indexed by frame."""

    t: np.ndarray  # PTS, seconds
    luma: np.ndarray
    luma_std: np.ndarray
    black: np.ndarray
    hsv: np.ndarray  # N x 64 x 3, HSV of the 8x8 RGB grid cells
    weight: np.ndarray  # 64, share of each 8x8 cell inside the active picture
    thumb: np.ndarray  # N x 256 float, grey of the 16x16 grid
    active: np.ndarray  # 256 bool, the 16x16 cells inside the active picture
    coarse: np.ndarray  # N x 48, the RGB grid pooled to 4x4 cells: colour layout that motion barely moves
    frame_s: float  # typical frame duration

    @classmethod
    def from_results(cls, results: list[ItemResult]) -> _Frames:
        p = [r.payload for r in results]
        n = len(p)
        fine = np.stack([np.frombuffer(base64.b64decode(x["grid"]), np.uint8) for x in p]).astype(np.float64)
        fine = fine.reshape(n, _THUMB, _THUMB, 3)
        thumb = (fine @ _LUMA.astype(np.float64)).reshape(n, -1)
        box = active_picture(thumb)
        k = _THUMB // _GRID
        grid = fine.reshape(n, _GRID, k, _GRID, k, 3).mean(axis=(2, 4)).reshape(n, -1, 3)
        half = _GRID // 2
        t = np.array([r.start_s for r in results], dtype=np.float64)
        steps = np.diff(t)
        steps = steps[steps > 0]
        return cls(
            t=t,
            luma=np.array([x["luma"] for x in p], dtype=np.float64),
            luma_std=np.array([x["luma_std"] for x in p], dtype=np.float64),
            black=np.array([bool(x["black"]) for x in p]),
            hsv=_hsv(grid.astype(np.float32)),
            weight=box.reshape(_GRID, k, _GRID, k).mean(axis=(1, 3)).reshape(-1),
            thumb=thumb,
            active=box.reshape(-1) > 0,
            coarse=grid.reshape(n, half, 2, half, 2, 3).mean(axis=(2, 4)).reshape(n, -1),
            frame_s=float(np.median(steps)) if steps.size else 0.04,
        )

    def __len__(self) -> int:
        return len(self.t)

    def end_of(self, i: int) -> float:
        """When frame i stops being shown: the next frame's PTS, or one frame duration after the last."""
        return float(self.t[i + 1]) if i + 1 < len(self) else float(self.t[i]) + self.frame_s

    def frames(self, seconds: float) -> int:
        return max(1, round(seconds / self.frame_s))

    def content(self, a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
        """ContentDetector-style HSV delta between frames a and b on the grid's active picture.

        Hue distance is circular and counted only where both cells carry colour: on grey cells hue is noise.
        """
        ha, hb = self.hsv[a], self.hsv[b]
        dh = np.abs(ha[..., 0] - hb[..., 0])
        dh = np.minimum(dh, 180.0 - dh) * np.minimum(1.0, np.minimum(ha[..., 1], hb[..., 1]) / 64.0)
        ds = np.abs(ha[..., 1] - hb[..., 1])
        dv = np.abs(ha[..., 2] - hb[..., 2])
        return ((dh + ds + dv) / 3.0) @ self.weight / float(self.weight.sum())

    def layout_corr(self, a: int, b: int) -> float | None:
        """Pearson correlation of two grey thumbnails' active pictures, or None when either is too flat to
        have a layout."""
        ta, tb = self.thumb[a][self.active], self.thumb[b][self.active]
        x, y = ta - ta.mean(), tb - tb.mean()
        sx, sy = float(np.sqrt((x * x).mean())), float(np.sqrt((y * y).mean()))
        if sx < _FLAT_STD or sy < _FLAT_STD:
            return None
        return float((x * y).mean() / (sx * sy))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (start, end) index pairs of the True runs of a boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True))


def _event(kind: str, start_s: float, end_s: float, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "start_s": round(float(start_s), 3), "end_s": round(float(end_s), 3), **extra}


def _new_shot(f: _Frames, before: int, after: int) -> bool | None:
    """Whether the picture after a transition is another shot than the one before (None at the video's ends).

    Transitions are never cuts, so this is how a black dip or a flash between two shots shows the change.
    """
    if before < 0 or after >= len(f):
        return None
    corr = f.layout_corr(before, after)
    return bool(f.content(before, after) >= _CONTENT_THRESHOLD and (corr is None or corr < _SAME_LAYOUT))


def _ramp(f: _Frames, edge: int, step: int) -> int:
    """Walk away from black frame `edge` (step -1: back, +1: forward) while the luma keeps rising.

    One frame against the trend is skipped when the next one continues it: a moving picture's luma wobbles.
    """
    j = edge
    while 0 <= j + step < len(f) and not f.black[j + step]:
        one, two = j + step, j + 2 * step
        rising_two = 0 <= two < len(f) and not f.black[two] and f.luma[two] > f.luma[j] + _FADE_STEP
        if f.luma[one] > f.luma[j] + _FADE_STEP:
            j = one
        elif rising_two and f.luma[two] > f.luma[one]:
            j = two
        else:
            break
    return j


def _fades(f: _Frames) -> list[tuple[str, int, int]]:
    """Fade-outs into and fade-ins out of each black run: the gradual luma ramp next to it.

    Returns (kind, first frame, last frame) of each ramp. A ramp needs two frames or more, and no single step
    may make most of its change: a picture that drops to black at once is a cut to black, not a fade.
    """
    out: list[tuple[str, int, int]] = []
    for b0, b1 in _runs(f.black):
        for kind, edge, step in (("fade_out", int(b0), -1), ("fade_in", int(b1), 1)):
            far = _ramp(f, edge, step)
            lo, hi = min(edge, far), max(edge, far)
            total = f.luma[far] - f.luma[edge]
            if hi - lo < 2 or total < _FADE_MIN_DROP:
                continue
            if np.abs(np.diff(f.luma[lo : hi + 1])).max() > _FADE_MAX_STEP * total:
                continue
            out.append((kind, lo, hi - 1) if step < 0 else (kind, lo + 1, hi))
    return out


def _flashes(f: _Frames) -> list[tuple[int, int]]:
    """Runs of at most ~0.15 s whose luma rises well above the frames on both sides."""
    out: list[tuple[int, int]] = []
    longest = f.frames(_FLASH_MAX_S)
    i = 1
    while i < len(f) - 1:
        for after in range(i + 1, min(i + longest, len(f) - 1) + 1):
            if f.luma[i:after].min() - max(f.luma[i - 1], f.luma[after]) >= _FLASH_LUMA:
                out.append((i, after - 1))
                i = after
                break
        else:
            i += 1
    return out


def _freezes(f: _Frames) -> list[tuple[int, int]]:
    """Runs of non-black frames whose thumbnails do not change, lasting at least 0.5 s."""
    diff = np.abs(np.diff(f.thumb, axis=0))
    still = (diff.mean(axis=1) <= _FREEZE_MEAN) & (diff.max(axis=1) <= _FREEZE_MAX)
    still &= ~f.black[1:] & ~f.black[:-1]
    out = []
    for a, b in _runs(still):
        first, last = int(a), int(b) + 1  # pair k joins frames k and k+1
        if f.end_of(last) - f.t[first] >= _FREEZE_MIN_S:
            out.append((first, last))
    return out


def _cuts(f: _Frames, blocked: np.ndarray) -> list[dict[str, Any]]:
    """Hard cuts: ContentDetector score, AdaptiveDetector ratio, persistence both ways, layout change.

    `blocked[i]` marks frames inside fades, black runs and flashes, where no cut may start.
    """
    n = len(f)
    if n < 2:
        return []
    score = np.zeros(n)
    score[1:] = f.content(np.arange(n - 1), np.arange(1, n))
    candidates: list[tuple[float, int]] = []
    for i in range(1, n):
        c = float(score[i])
        if c < _MIN_CONTENT or blocked[i] or blocked[i - 1]:
            continue
        before = score[max(1, i - _ADAPTIVE_WINDOW) : i]
        after = score[i + 1 : i + 1 + _ADAPTIVE_WINDOW]
        sides = [float(x.mean()) for x in (before, after) if x.size]
        if not (c >= _CONTENT_THRESHOLD or c >= _ADAPTIVE_RATIO * max(float(np.mean(sides or [0.0])), 1.0)):
            continue
        if c < _SIDE_RATIO * max([*sides, 1.0]):
            continue  # change goes on at a similar rate on one side: motion starting or stopping
        frames_before = np.arange(max(0, i - _PERSIST_FRAMES), i)
        frames_after = np.arange(i, min(n, i + _PERSIST_FRAMES))
        pairs_a, pairs_b = np.meshgrid(frames_before, frames_after)
        if float(f.content(pairs_a.ravel(), pairs_b.ravel()).min()) < _MIN_CONTENT:
            continue  # the picture comes back: a flash or a glitch, not a new shot
        corr = f.layout_corr(i - 1, i)
        if corr is not None and corr >= _SAME_LAYOUT:
            continue  # same layout, new colours: lighting or grading change
        candidates.append((c, i))
    kept: list[int] = []
    for _, i in sorted(candidates, reverse=True):
        if all(abs(f.t[i] - f.t[k]) >= _MIN_SHOT_S for k in kept):
            kept.append(i)
    return [
        {"time_s": round(float(f.t[i]), 3), "frame_index": i, "score": round(float(score[i]), 2)}
        for i in sorted(kept)
    ]


def _dissolves(f: _Frames, blocked: np.ndarray, cuts: list[int]) -> list[tuple[int, int]]:
    """Gradual changes between two different, steady pictures where every frame between is a blend of them.

    For a window [a, b] whose end frames differ, each frame k is fitted as b + alpha_k * (a - b) on the 4x4
    colour layout (coarse enough to stay put while the pictures move, and mixed linearly by a dissolve);
    a dissolve has small residuals, alpha falling from 1 to 0 through intermediate values, and
    the pictures on both sides steady over the transition's own duration (a pan fails that).
    """
    n = len(f)
    candidates: list[tuple[float, int, int]] = []
    cut_at = np.zeros(n, dtype=bool)
    cut_at[cuts] = True
    for w in {f.frames(s) for s in _DISSOLVE_WINDOWS_S}:
        if w < 4:
            continue
        for a in range(0, n - w):
            b = a + w
            if blocked[a : b + 1].any() or cut_at[a + 1 : b + 1].any():
                continue
            span = f.coarse[a] - f.coarse[b]
            dist = float(np.abs(span).mean())
            if dist < _DISSOLVE_MIN_DIST or f.content(a, b) < _MIN_CONTENT:
                continue
            gain = float(f.coarse[a] @ f.coarse[b]) / max(float(f.coarse[a] @ f.coarse[a]), 1.0)
            if np.abs(f.coarse[b] - gain * f.coarse[a]).mean() < _DISSOLVE_RESIDUAL * dist:
                continue  # the same picture, brighter or darker: lighting or a partial fade
            rel = f.coarse[a : b + 1] - f.coarse[b]
            alpha = rel @ span / float(span @ span)
            resid = np.abs(rel - alpha[:, None] * span[None, :]).mean(axis=1) / dist
            steps = np.diff(alpha)
            jumpy = steps.max() > _DISSOLVE_BACK or steps.min() < -_DISSOLVE_MAX_STEP
            if resid.max() > _DISSOLVE_RESIDUAL or jumpy:
                continue  # not a blend, not monotone, or a jump (a cut or a colour change) inside
            core = np.flatnonzero((alpha < 0.9) & (alpha > 0.1))
            if core.size < 2:
                continue
            # where the straight line through the core's alphas leaves 1 and reaches 0
            slope, icept = np.polyfit(core, alpha[core], 1)
            if slope >= 0:
                continue
            s = a + int(np.clip(np.floor((1.0 - icept) / slope), 0, w))
            e = a + int(np.clip(np.ceil(-icept / slope), 0, w))
            span_n = e - s + 1
            if s - 2 < 0 or e + 2 >= n:
                continue  # no steady picture on one side
            before = np.abs(f.coarse[max(0, s - 1 - span_n)] - f.coarse[s - 1]).mean()
            after = np.abs(f.coarse[min(n - 1, e + 1 + span_n)] - f.coarse[e + 1]).mean()
            if max(before, after) > _DISSOLVE_STEADY * dist:
                continue  # the pictures keep changing as fast outside: motion, not a dissolve
            if f.luma[s : e + 1].min() < 0.5 * min(f.luma[a], f.luma[b]) - 5.0:
                continue  # dips towards black: a fade, not a dissolve
            expected = np.linspace(f.luma_std[s - 1], f.luma_std[e + 1], span_n + 2)[1:-1]
            if (f.luma_std[s : e + 1] / np.maximum(expected, 1e-6)).min() > _DISSOLVE_DIP:
                continue  # contrast holds up: a moving picture, while two mixed pictures wash each other out
            candidates.append((dist, s, e))
    found: list[tuple[int, int]] = []
    for _, s, e in sorted(candidates, reverse=True):  # a window inside a dissolve sees less of its change
        if all(e < s0 or e0 < s for s0, e0 in found):
            found.append((s, e))
    return sorted(found)


class SceneAnalyzer(FrameAnalyzer):
    """Shot boundaries and transitions; per-frame signatures here, the reasoning in `video_summary`."""

    name = "scene"
    group = "light"
    sampling = Sampling(fps=None, max_side=_SIDE)
    summary_promoted = True

    def analyze(self, items: Sequence[FrameItem]) -> list[dict[str, Any]]:
        return [frame_signature(reduced(item.image)) for item in items]

    @classmethod
    def segment_fields(cls, payloads: list[dict[str, Any]]) -> dict[str, Any]:
        """Brightness, contrast and saturation means plus the share of black frames in the segment."""
        if not payloads:
            return {}
        return {
            "brightness": round(float(np.mean([p["luma"] for p in payloads])), 2),
            "contrast": round(float(np.mean([p["luma_std"] for p in payloads])), 2),
            "saturation": round(float(np.mean([p["s"] for p in payloads])), 2),
            "black_share": round(float(np.mean([bool(p["black"]) for p in payloads])), 4),
        }

    @classmethod
    def video_summary(cls, results: list[ItemResult]) -> dict[str, Any] | None:
        """Cuts and transitions of the whole video, from the signatures in PTS order.

        `cuts`: {time_s (PTS of the new shot's first frame), frame_index (in PTS order), score}.
        `transitions`: {kind, start_s, end_s}, end_s exclusive; kinds fade_out / fade_in (ramps into and out of
        black), black, flash (a bright spike of at most 0.15 s), freeze (no visible change for 0.5 s or more:
        a still, a paused picture or a perfectly static shot) and dissolve. A change of shot through black,
        a flash or a dissolve is never a cut; `new_shot` on those says whether the picture changed across.
        """
        if not results:
            return None
        f = _Frames.from_results(sorted(results, key=lambda r: r.start_s))
        blocked = f.black.copy()
        events: list[dict[str, Any]] = []
        fades = _fades(f)
        for kind, s, e in fades:
            blocked[s : e + 1] = True
            events.append(_event(kind, f.t[s], f.end_of(e)))
        for s, e in _runs(f.black):
            # the pictures around the whole dip: before its fade-out, after its fade-in
            before = min([s] + [a for k, a, b in fades if k == "fade_out" and b == s - 1]) - 1
            after = max([e] + [b for k, a, b in fades if k == "fade_in" and a == e + 1]) + 1
            events.append(_event("black", f.t[s], f.end_of(e), new_shot=_new_shot(f, before, after)))
        for s, e in _flashes(f):
            blocked[s : e + 1] = True
            events.append(_event("flash", f.t[s], f.end_of(e), new_shot=_new_shot(f, s - 1, e + 1)))
        cuts = _cuts(f, blocked)
        for s, e in _dissolves(f, blocked, [c["frame_index"] for c in cuts]):
            events.append(_event("dissolve", f.t[s], f.end_of(e), new_shot=True))
        for s, e in _freezes(f):
            events.append(_event("freeze", f.t[s], f.end_of(e)))
        return {
            "frames": len(f),
            "cuts": cuts,
            "transitions": sorted(events, key=lambda ev: ev["start_s"]),
        }

    @classmethod
    def document_fields(cls, summary: dict[str, Any]) -> dict[str, Any]:
        """The cuts (which make the document's shots) and the transitions."""
        return {"cuts": summary.get("cuts", []), "transitions": summary.get("transitions", [])}
