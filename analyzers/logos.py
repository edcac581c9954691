"""Logos and brand marks: any ultralytics detection checkpoint trained on logos (or an open-vocabulary
detector exported to a .pt checkpoint), by path in settings. No logo weights ship in a wheel, so `auto`
leaves it out until `REELSCOPE_LOGOS__MODEL` points at one; its tracks come from the shared ByteTrack replay
(analyzers/common/yolo.py)."""

from __future__ import annotations

from reelscope.analyzers.base import Sampling
from reelscope.analyzers.common.yolo import YoloAnalyzer, YoloOptions


class LogosOptions(YoloOptions):
    """Logo detection (REELSCOPE_LOGOS__*): an ultralytics detect checkpoint trained on logos; none by default."""

    model: str = ""


class LogosAnalyzer(YoloAnalyzer):
    """Detections per frame (label = brand), brand appearances as tracks in `video_summary`.

    1 fps is enough: a logo on screen for less than a second rarely matters, and brand marks move little.
    """

    name = "logos"
    sampling = Sampling(fps=1.0, max_side=640)
    model_name = "logo detector (ultralytics detect)"
    options_model = LogosOptions
    options: LogosOptions
