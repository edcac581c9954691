"""Colour: palette, brightness, saturation and contrast of a frame (numpy only, no model)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from reelscope.analyzers.base import FrameAnalyzer, FrameItem, Sampling, mean_numeric

_PALETTE_SIZE = 5
_LEVELS = 8  # quantisation levels per channel for the palette histogram


def palette(image: np.ndarray, size: int = _PALETTE_SIZE) -> list[dict[str, Any]]:
    """The most frequent colours after quantising each channel to 8 levels, with their shares."""
    q = (image.reshape(-1, 3).astype(np.uint16) * _LEVELS) // 256
    codes = (q[:, 0] * _LEVELS + q[:, 1]) * _LEVELS + q[:, 2]
    counts = np.bincount(codes, minlength=_LEVELS**3)
    top = np.argsort(counts)[::-1][:size]
    total = float(codes.size)
    out = []
    step = 256 // _LEVELS
    for code in top:
        if counts[code] == 0:
            break
        r, g, b = code // (_LEVELS * _LEVELS), (code // _LEVELS) % _LEVELS, code % _LEVELS
        rgb = (int(r) * step + step // 2, int(g) * step + step // 2, int(b) * step + step // 2)
        out.append({"hex": "#{:02x}{:02x}{:02x}".format(*rgb), "share": round(counts[code] / total, 4)})
    return out


def color_stats(image: np.ndarray) -> dict[str, Any]:
    """Brightness (mean luma 0..1), contrast (luma std), saturation (mean HSV S 0..1) and palette."""
    rgb = image.astype(np.float32) / 255.0
    luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    cmax = np.maximum(np.maximum(r, g), b)  # the same values as rgb.max(axis=2), a fifth of its CPU
    cmin = np.minimum(np.minimum(r, g), b)
    sat = np.where(cmax > 0, (cmax - cmin) / np.maximum(cmax, 1e-6), 0.0)
    return {
        "brightness": round(float(luma.mean()), 4),
        "contrast": round(float(luma.std()), 4),
        "saturation": round(float(sat.mean()), 4),
        "palette": palette(image),
    }


class ColorAnalyzer(FrameAnalyzer):
    name = "color"
    group = "light"
    sampling = Sampling(fps=1.0, max_side=320)

    def analyze(self, items: Sequence[FrameItem]) -> list[dict[str, Any]]:
        return [color_stats(item.image) for item in items]

    @classmethod
    def segment_fields(cls, payloads: list[dict[str, Any]]) -> dict[str, Any]:
        fields = mean_numeric(payloads)
        if payloads:
            fields["palette"] = payloads[len(payloads) // 2]["palette"][:3]
        return fields

    @classmethod
    def shot_context(cls, fields: list[dict[str, Any]]) -> dict[str, Any]:
        """`brightness`: the mean over the shot's segments, when measured."""
        brightness = [f["brightness"] for f in fields if "brightness" in f]
        return {"brightness": round(sum(brightness) / len(brightness), 3)} if brightness else {}
