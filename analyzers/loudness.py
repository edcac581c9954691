"""Loudness and silence per audio chunk: RMS and peak level in dBFS (numpy only, no model)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from reelscope.analyzers.base import AudioAnalyzer, AudioItem, ItemResult, Sampling

SILENCE_DBFS = -50.0
_FLOOR_DBFS = -120.0


def to_dbfs(value: float) -> float:
    return round(max(_FLOOR_DBFS, 20.0 * float(np.log10(max(value, 1e-12)))), 2)


def loudness_stats(samples: np.ndarray) -> dict[str, Any]:
    """RMS and peak in dBFS, clipping share, and whether the chunk is silent."""
    if samples.size == 0:
        return {"rms_dbfs": _FLOOR_DBFS, "peak_dbfs": _FLOOR_DBFS, "clipping": 0.0, "silent": True}
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    peak = float(np.max(np.abs(samples)))
    rms_db = to_dbfs(rms)
    return {
        "rms_dbfs": rms_db,
        "peak_dbfs": to_dbfs(peak),
        "clipping": round(float(np.mean(np.abs(samples) >= 0.999)), 5),
        "silent": rms_db < SILENCE_DBFS,
    }


class LoudnessAnalyzer(AudioAnalyzer):
    name = "loudness"
    group = "audio"
    sampling = Sampling(fps=None, audio_channels="mix")

    def analyze(self, items: Sequence[AudioItem]) -> list[dict[str, Any]]:
        return [loudness_stats(item.samples) for item in items]

    @classmethod
    def video_summary(cls, results: list[ItemResult]) -> dict[str, Any] | None:
        """Silent spans merged from consecutive silent chunks, and the overall level."""
        if not results:
            return None
        spans: list[dict[str, float]] = []
        for r in results:
            if not r.payload.get("silent"):
                continue
            if spans and abs(spans[-1]["end_s"] - r.start_s) < 1e-3:
                spans[-1]["end_s"] = r.end_s
            else:
                spans.append({"start_s": r.start_s, "end_s": r.end_s})
        levels = [r.payload["rms_dbfs"] for r in results if "rms_dbfs" in r.payload]
        return {
            "silences": spans,
            "mean_rms_dbfs": round(float(np.mean(levels)), 2) if levels else None,
            "max_peak_dbfs": max((r.payload.get("peak_dbfs", _FLOOR_DBFS) for r in results), default=None),
        }
