"""What every aspect of `reelscope eval` shares: a score row, and a file run through the product.

Each file goes the product's way: the producer's events (decode, sampling, resampling) straight into the
analyzers, then the reconstruction, with no broker and no database (they move results, they do not change
them)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reelscope.analyzers.base import Analyzer, AudioItem
from reelscope.analyzers.registry import enabled_analyzers
from reelscope.infra.core.settings import Settings
from reelscope.producers.events import VideoEventSource
from reelscope.schemas.events import AudioChunk, Frame, VideoFinished, VideoStarted
from reelscope.sinks import reconstruction
from reelscope.stream_processors.runtime import BatchItems, item_key, item_span

SHARED_MEDIA = Path(__file__).resolve().parents[3] / "shared" / "media"
"""The project's real test clips (../shared/media beside the checkout); aspects use them when present."""


@dataclass(frozen=True)
class Score:
    """One row of the scorecard."""

    aspect: str
    figure: str
    target: str
    met: bool | None
    """None: a reference figure, or pending (not measured here)."""
    detail: dict[str, Any]

    def row(self) -> str:
        state = {True: "met", False: "BELOW", None: "-" if self.figure != "pending" else "pending"}[self.met]
        return f"| {self.aspect} | {self.figure} | {self.target} | {state} |"


def table(scores: list[Score]) -> str:
    lines = ["| aspect | figure | target | state |", "| --- | --- | --- | --- |"]
    return "\n".join(lines + [s.row() for s in scores])


_DOCUMENTS: dict[tuple[Path, tuple[str, ...], tuple[str, ...], int], dict[str, Any]] = {}


def document(
    path: Path, names: list[str], hotwords: tuple[str, ...] = (), economy: int = 1
) -> dict[str, Any]:
    """The reconstruction of one file with the named frame and audio analyzers, built in this process
    (once per file and analyzers: several aspects read the same run). `economy` > 1: every audio item is
    handed over as taken at that stride, as by a group that is behind (analyzers' economy modes)."""
    key = (path, tuple(names), hotwords, economy)
    if key not in _DOCUMENTS:
        _DOCUMENTS[key] = _build(path, names, list(hotwords), economy)
    return _DOCUMENTS[key]


_LOADED: dict[str, Analyzer[Any]] = {}


def _loaded(name: str, cls: type[Analyzer[Any]], settings: Settings) -> Analyzer[Any]:
    """One loaded instance per analyzer for the whole run (loading models is most of a short file's cost);
    each file is its own video, so an analyzer's per-video state never mixes two files."""
    if name not in _LOADED:
        _LOADED[name] = cls(settings.options_for(cls), settings.analyzer_runtime())
        _LOADED[name].load()
    return _LOADED[name]


def _build(path: Path, names: list[str], hotwords: list[str], economy: int) -> dict[str, Any]:
    settings = Settings(analyzers=names)
    classes = enabled_analyzers(names, settings)
    analyzers = {n: _loaded(n, c, settings) for n, c in classes.items()}
    video_id = f"eval{len(_DOCUMENTS)}"
    source = VideoEventSource(
        video_id,
        str(path),
        path.as_uri(),
        classes,
        settings.producer,
        settings.kafka.max_event_bytes,
        hotwords=hotwords,
    )
    rows: list[dict[str, Any]] = []
    video: dict[str, Any] = {"video_id": video_id, "warnings": []}
    for event in source.events():
        if isinstance(event, VideoStarted):
            video.update(event.media.model_dump(), uri=event.uri)
        elif isinstance(event, VideoFinished):
            video.update(expected=json.dumps(event.expected), warnings=list(event.warnings))
        elif isinstance(event, Frame | AudioChunk):
            items = BatchItems()  # decoded once, at each analyzer's own size, as a processor does
            for name in event.targets:
                (item,) = items.batch(analyzers[name], [event])
                if isinstance(item, AudioItem) and analyzers[name].economy:
                    item = replace(item, economy=economy)
                (payload,) = analyzers[name].analyze([item])
                start, end = item_span(event)
                rows.append(
                    {
                        "analyzer": name,
                        "item_key": item_key(event),
                        "model": analyzers[name].model_name,
                        "provenance": analyzers[name].provenance,
                        "start_s": start,
                        "end_s": end,
                        "payload": json.dumps(payload),
                        "error": "",
                    }
                )
    return reconstruction.build(video, rows, classes, settings.aggregator.segment_s, None, False)
