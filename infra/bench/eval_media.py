"""Generated clips with known truth for `reelscope eval`: the layouts users post, and test sounds.

Every clip goes through a real H.264 encode, so codec noise is part of every measurement. Footage is a
smooth colour field per shot with a moving object and a slow pan, so shots differ as real shots do (in
colour layout) and every shot moves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from reelscope.infra.sample_media import write_video

FPS = 25
FRAMES = 150
CUTS = (38, 80, 117)
"""Hard cuts of the layout clips: the frames where shots 1, 2 and 3 begin after shot 0."""

Frame = Callable[[int], np.ndarray]


@dataclass(frozen=True)
class Clip:
    """One generated video and its truth: hard cut frames and shot changes through transitions."""

    name: str
    frame_at: Frame
    size: tuple[int, int]
    cuts: tuple[int, ...]
    joins: tuple[tuple[int, int], ...] = ()
    """Transitions into another shot: (first, last) frame of each; a shot boundary must fall inside."""
    shots: int = field(default=0)
    """Shots in the clip (cuts + joins + 1 unless set)."""

    def path(self, folder: Path) -> Path:
        target = folder / f"{self.name}.mp4"
        if not target.exists():
            write_video(target, FRAMES, FPS, self.frame_at)
        return target

    @property
    def shot_count(self) -> int:
        return self.shots or len(self.cuts) + len(self.joins) + 1


@cache
def _field(seed: int, width: int, height: int) -> np.ndarray:
    """A shot's picture, twice the frame's size: a smooth field of 4x3 random colours with a few blocks."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(20, 236, size=(3, 4, 3), dtype=np.uint8)
    big = np.asarray(Image.fromarray(colours).resize((2 * width, 2 * height), Image.BILINEAR)).copy()
    for _ in range(6):
        x, y = rng.integers(0, 2 * width - 40), rng.integers(0, 2 * height - 40)
        big[y : y + rng.integers(10, 40), x : x + rng.integers(10, 40)] = rng.integers(0, 256, 3)
    return big


def footage(seed: int, t: int, width: int, height: int, zoom: float = 0.0) -> np.ndarray:
    """Frame t of shot `seed`: a slow pan over its field and a bright ball crossing it; `zoom` per frame
    enlarges the picture (a zoom-in)."""
    big = _field(seed, width, height)
    scale = 1.0 + zoom * t
    w, h = round(width / scale), round(height / scale)
    x0, y0 = t * width // (2 * FRAMES) + (width - w) // 2, height // 4 + (height - h) // 2
    crop = Image.fromarray(big[y0 : y0 + h, x0 : x0 + w]).resize((width, height), Image.BILINEAR)
    draw = ImageDraw.Draw(crop)
    r = max(3, min(width, height) // 10)
    bounce = abs((t * 4 + seed * 37) % (2 * (width - 2 * r)) - (width - 2 * r))  # to and fro, no jump
    cx, cy = r + bounce, height // 2 + round(height / 4 * np.sin(t / 6))
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(250, 240, 200))
    return np.asarray(crop)


def _shot(t: int, cuts: tuple[int, ...] = CUTS) -> int:
    """The shot (0, 1, ...) that frame t belongs to."""
    return sum(t >= c for c in cuts)


def film(t: int, width: int, height: int, seeds: tuple[int, ...] = (11, 12, 13, 14)) -> np.ndarray:
    return footage(seeds[_shot(t)], t, width, height)


def _text(canvas: np.ndarray, lines: list[str], top: int, colour: tuple[int, int, int]) -> None:
    pil = Image.fromarray(canvas)
    draw = ImageDraw.Draw(pil)
    font = ImageFont.load_default(size=max(12, canvas.shape[1] // 12))
    for k, line in enumerate(lines):
        left = (canvas.shape[1] - draw.textlength(line, font=font)) / 2
        draw.text((left, top + k * (font.size + 4)), line, fill=colour, font=font)
    canvas[:] = np.asarray(pil)


def _sticker(canvas: np.ndarray, x: int, y: int, r: int) -> None:
    yy, xx = np.ogrid[: canvas.shape[0], : canvas.shape[1]]
    canvas[(yy - y) ** 2 + (xx - x) ** 2 <= r * r] = (255, 200, 0)
    canvas[(yy - y + r // 3) ** 2 + (xx - x) ** 2 <= (r // 5) ** 2] = (40, 20, 0)


def letterboxed(t: int, bar: int = 0) -> np.ndarray:
    """A 16:9 film in a 9:16 frame, a two-line caption above it and a sticker below (bar: bar grey)."""
    w, h = 180, 320
    canvas = np.full((h, w, 3), bar, np.uint8)
    fh = w * 9 // 16
    top = (h - fh) // 2
    canvas[top : top + fh] = film(t, w, fh)
    ink = (0, 0, 0) if bar > 128 else (255, 255, 255)
    _text(canvas, ["when the beat", "drops"], 40, ink)
    _sticker(canvas, w - 40, top + fh + 50, 22)
    return canvas


def pillarboxed(t: int) -> np.ndarray:
    """A 9:16 film in a 16:9 frame with black bars and a sticker on one bar."""
    w, h = 320, 180
    canvas = np.zeros((h, w, 3), np.uint8)
    fw = h * 9 // 16
    left = (w - fw) // 2
    canvas[:, left : left + fw] = film(t, fw, h)
    _sticker(canvas, 50, 60, 25)
    return canvas


def split_screen(t: int) -> np.ndarray:
    """Top half: the edited film; bottom half: one continuous reaction shot."""
    w, h = 180, 320
    return np.concatenate([film(t, w, h // 2), footage(99, t, w, h // 2)], axis=0)


def picture_in_picture(t: int) -> np.ndarray:
    """The edited film full frame with a continuous inset in the top right corner."""
    canvas = film(t, 320, 180).copy()
    canvas[10:55, 230:310] = footage(98, t, 80, 45)
    return canvas


def zooming(t: int) -> np.ndarray:
    """Every shot zooms in steadily (1 % a frame): motion that is no cut."""
    start = max([0, *[c for c in CUTS if c <= t]])
    return footage((11, 12, 13, 14)[_shot(t)], t - start, 320, 180, zoom=0.01)


def _blend(a: np.ndarray, b: np.ndarray, alpha: float) -> np.ndarray:
    return np.clip(a * alpha + b * (1.0 - alpha), 0, 255).astype(np.uint8)


FADE = (60, 71, 77, 88)
"""Fade-out frames 60-71, black 72-76, fade-in 77-88."""


def fade_between(t: int, same: bool = False) -> np.ndarray:
    """Shot 11 fades to black; shot 12 (or, `same`, shot 11 again) fades in; a hard cut to shot 13 at 120."""
    out0, out1, in0, in1 = FADE
    seed = 11 if t < in0 or same else 12
    seed = 13 if t >= 120 else seed
    picture = footage(seed, t, 320, 180)
    if out0 <= t <= out1:
        return _blend(picture, np.zeros_like(picture), (out1 + 1 - t) / (out1 + 2 - out0))
    if out1 < t < in0:
        return np.zeros_like(picture)
    if in0 <= t <= in1:
        return _blend(picture, np.zeros_like(picture), (t - in0 + 1) / (in1 + 2 - in0))
    return picture


DISSOLVE = (60, 79)


def dissolve(t: int) -> np.ndarray:
    """Shot 11 dissolves into shot 12 over frames 60-79; a hard cut to shot 13 at 120."""
    a, b = DISSOLVE
    if t >= 120:
        return footage(13, t, 320, 180)
    if t < a:
        return footage(11, t, 320, 180)
    if t > b:
        return footage(12, t, 320, 180)
    alpha = (b + 1 - t) / (b + 2 - a)
    return _blend(footage(11, t, 320, 180), footage(12, t, 320, 180), alpha)


def layout_clips() -> list[Clip]:
    """The generated clips the cut and shot figures are measured on."""
    fade_join = ((FADE[0], FADE[3]),)
    return [
        Clip("letterbox_caption_sticker", letterboxed, (180, 320), CUTS),
        Clip("letterbox_white_bars", lambda t: letterboxed(t, bar=255), (180, 320), CUTS),
        Clip("pillarbox_sticker", pillarboxed, (320, 180), CUTS),
        Clip("split_screen", split_screen, (180, 320), CUTS),
        Clip("picture_in_picture", picture_in_picture, (320, 180), CUTS),
        Clip("zoom_in", zooming, (320, 180), CUTS),
        Clip("fade_to_black_new_shot", fade_between, (320, 180), (120,), fade_join),
        Clip("fade_to_black_same_shot", lambda t: fade_between(t, same=True), (320, 180), (120,)),
        Clip("dissolve", dissolve, (320, 180), (120,), (DISSOLVE,)),
    ]


def tone(seconds: float, rate: int, freq: float = 1000.0, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def programme(seconds: float, rate: int, seed: int) -> np.ndarray:
    """Music-like test programme: a chord whose level swells, with a little noise (for loudness)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6, 2200.0)) / 4
    swell = 0.25 + 0.2 * np.sin(2 * np.pi * 0.3 * t + seed)
    return (swell * chord + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
