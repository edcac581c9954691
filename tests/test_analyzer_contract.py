"""The analyzer contract: adding an analyzer with options is one file (and this kind of test), nothing else.

The first test writes a new analyzer module where the registry looks (the package's search path) and edits
no other file: the registry finds it, the settings grow its section with its environment variables, `auto`
enables it, and a processor runs it on a Frame event.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from aiokafka.structs import ConsumerRecord
from PIL import Image
from reelscope.analyzers import registry
from reelscope.analyzers.base import Runtime
from reelscope.infra.core.settings import CoreSettings, Settings, with_analyzer_sections
from reelscope.schemas.events import Frame, encode
from reelscope.stream_processors.runtime import GroupProcessor, to_item

from reelscope import analyzers

NEW_ANALYZER = '''
"""Share of bright pixels per frame."""

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from reelscope.analyzers.base import FrameAnalyzer, FrameItem, Sampling


class BrightPixelsOptions(BaseModel):
    threshold: int = 200
    """A pixel whose brightest channel reaches this is bright."""


class BrightPixelsAnalyzer(FrameAnalyzer):
    name = "bright_pixels"
    group = "light"
    sampling = Sampling(fps=1.0, max_side=64)
    options_model = BrightPixelsOptions
    options: BrightPixelsOptions

    def analyze(self, items: Sequence[FrameItem]) -> list[dict[str, Any]]:
        return [
            {"bright_share": round(float((item.image.max(axis=2) >= self.options.threshold).mean()), 3)}
            for item in items
        ]
'''


@pytest.fixture
def new_analyzer_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on the analyzers package's search path, and a registry that forgets it afterwards."""
    monkeypatch.setattr(analyzers, "__path__", [*analyzers.__path__, str(tmp_path)])
    registry.all_analyzers.cache_clear()
    yield tmp_path
    sys.modules.pop("reelscope.analyzers.bright_pixels", None)
    registry.all_analyzers.cache_clear()


def frame_event(values: tuple[int, int]) -> Frame:
    """A 64 x 32 frame, its left half grey at values[0], its right half at values[1] (flat halves survive
    JPEG within a few levels)."""
    image = np.zeros((32, 64, 3), dtype=np.uint8)
    image[:, :32], image[:, 32:] = values
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=95)
    return Frame(
        video_id="v", index=0, pts_s=0.0, width=64, height=32, jpeg=buf.getvalue(), targets=["bright_pixels"]
    )


def test_a_new_analyzer_module_is_discovered_configured_and_run(
    new_analyzer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (new_analyzer_dir / "bright_pixels.py").write_text(NEW_ANALYZER)
    cls = registry.all_analyzers()["bright_pixels"]
    assert cls.__module__ == "reelscope.analyzers.bright_pixels" and cls.input == "frame"

    monkeypatch.setenv("REELSCOPE_BRIGHT_PIXELS__THRESHOLD", "100")
    monkeypatch.setenv("REELSCOPE_ANALYZERS", '["auto"]')
    settings = with_analyzer_sections(CoreSettings)()  # what `Settings` is when the module is there at start
    options = settings.options_for(cls)
    assert options == cls.options_model(threshold=100)  # type: ignore[misc]
    assert "bright_pixels" in registry.enabled_analyzers(settings.analyzers, settings)

    processor = GroupProcessor(settings, "light")
    assert processor.analyzers["bright_pixels"].options is options
    event = frame_event((150, 50))
    record = ConsumerRecord("t.frames", 0, 0, 0, 0, b"v", encode(event), None, 1, 1, ())
    results, failed = processor.analyze_batch([(record, event, {}, 1)])
    (result,) = [r for r in results if r.analyzer == "bright_pixels"]
    assert failed == [] and result.error is None
    assert result.payload == {"bright_share": 0.5}  # the 150 half passes the configured threshold
    default = registry.create(cls)  # without settings: the options model's defaults (threshold 200)
    assert default.analyze([to_item(event)]) == [{"bright_share": 0.0}]


def test_settings_sections_are_the_analyzers_options_models() -> None:
    """One section per analyzer that declares options, of exactly its model: pose's defaults are its own."""
    settings = Settings()
    with_options = {n: c for n, c in registry.all_analyzers().items() if c.options_model is not None}
    assert {"transcription", "faces", "objects", "pose", "logos", "safety", "captions"} <= set(with_options)
    for name, cls in with_options.items():
        section = settings.options_for(cls)
        assert type(section) is cls.options_model, name
        assert section == cls.options_model(), name  # type: ignore[misc]
    pose = registry.all_analyzers()["pose"]
    assert settings.options_for(pose).model == ""  # type: ignore[union-attr]  # MediaPipe, packaged
    assert settings.options_for(registry.all_analyzers()["scene"]) is None


def test_options_of_another_analyzer_are_refused() -> None:
    faces, safety = registry.all_analyzers()["faces"], registry.all_analyzers()["safety"]
    with pytest.raises(TypeError, match="takes FacesOptions, got SafetyOptions"):
        faces(safety.options_model(), Runtime())  # type: ignore[misc]
    with pytest.raises(TypeError, match="declares no options"):
        registry.all_analyzers()["scene"](faces.options_model())  # type: ignore[misc]
