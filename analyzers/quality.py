"""Technical quality: sharpness, exposure and noise of a frame (numpy only, no model)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from reelscope.analyzers.base import FrameAnalyzer, FrameItem, Sampling

_LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float32)
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def _convolve3(gray: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Valid 3x3 convolution with numpy slicing (kernels here are symmetric)."""
    h, w = gray.shape
    out = np.zeros((h - 2, w - 2), dtype=np.float32)
    for dy in range(3):
        for dx in range(3):
            if kernel[dy, dx]:
                out += kernel[dy, dx] * gray[dy : dy + h - 2, dx : dx + w - 2]
    return out


def quality_stats(image: np.ndarray) -> dict[str, Any]:
    """Sharpness: variance of the Laplacian; noise: Immerkaer sigma estimate; clipped shadows, highlights."""
    gray = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    h, w = gray.shape
    if h < 3 or w < 3:
        return {"sharpness": 0.0, "noise": 0.0, "underexposed": 0.0, "overexposed": 0.0, "exposure": "ok"}
    sharpness = float(_convolve3(gray, _LAPLACIAN).var())
    residual = np.abs(_convolve3(gray, _NOISE_KERNEL)).sum()
    noise = float(residual * np.sqrt(np.pi / 2) / (6 * (w - 2) * (h - 2)))
    under = float((gray < 16).mean())
    over = float((gray > 239).mean())
    exposure = "under" if under > 0.5 else "over" if over > 0.3 else "ok"
    return {
        "sharpness": round(sharpness, 2),
        "noise": round(noise, 3),
        "underexposed": round(under, 4),
        "overexposed": round(over, 4),
        "exposure": exposure,
        "blurry": sharpness < 50.0,
    }


class QualityAnalyzer(FrameAnalyzer):
    name = "quality"
    group = "light"
    sampling = Sampling(fps=1.0, max_side=640)

    def analyze(self, items: Sequence[FrameItem]) -> list[dict[str, Any]]:
        return [quality_stats(item.image) for item in items]
