"""The reconstruction document (`reelscope.reconstruction`, version 1) as a model: what sinks/reconstruction.py
builds, ClickHouse stores, the API serves and the reconstructions topic carries (docs/reconstruction.md).

`model_dump()` gives the document's JSON as it has always been: keys that a document carries only
sometimes (a shot's caption and thumbnail, timings, provisional, omitted) are left out when unset, never
written as null. The parts an analyzer owns (its segment fields, summaries, transcript, faces, camera,
about) are objects whose shape that analyzer documents; the rest is typed here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from reelscope.schemas.events import Provenance
from reelscope.schemas.records import Media, VideoStatus

FORMAT = "reelscope.reconstruction"
FORMAT_VERSION = 1


def _absent(value: Any) -> bool:
    return value is None


class _Part(BaseModel):
    """A part of the document; unknown keys are kept (a newer writer may add some)."""

    model_config = ConfigDict(extra="allow")


class AnalyzerState(StrEnum):
    COMPLETE = "complete"
    PARTIAL = "partial"
    MISSING = "missing"
    FAILED = "failed"
    NOT_APPLICABLE = "not_applicable"
    """The video has no stream of the analyzer's input (audio analyzers on a video without audio)."""


class AnalyzerReport(_Part):
    state: AnalyzerState
    expected: int
    received: int
    errors: int
    model: str
    provenance: Provenance


class ShotCaption(_Part):
    text: str
    mode: str | None = None
    model: str | None = None
    provenance: Provenance


class Shot(_Part):
    index: int
    start_s: float
    end_s: float
    caption: ShotCaption | None = Field(None, exclude_if=_absent)
    thumbnail: str | None = Field(None, exclude_if=_absent)
    """A `data:image/jpeg;base64,...` keyframe."""


class Segment(_Part):
    """One step of the timeline; every other key is an analyzer's name holding its fields for the step."""

    __pydantic_extra__: dict[str, dict[str, Any]] = Field(init=False)
    index: int
    start_s: float
    end_s: float
    shot: int


class Description(_Part):
    description: str
    model: str | None = None
    provenance: Provenance | None = None
    mode: str | None = None


class TextEvent(_Part):
    text: str
    start_s: float
    end_s: float
    box: list[float]
    """[x0, y0, x1, y1], normalised 0..1."""


class Track(_Part):
    track_id: int
    label: str
    first_s: float
    last_s: float
    frames: int


class Timings(_Part):
    """ISO 8601 (UTC) times of the video's way through the pipeline; null when unknown."""

    submitted_at: str | None = None
    started_at: str | None = None
    published_at: str | None = None
    completed_at: str | None = None


class ReconstructionDocument(_Part):
    format: Literal["reelscope.reconstruction"] = FORMAT
    format_version: int = FORMAT_VERSION
    video_id: str
    status: VideoStatus
    """complete, degraded or failed; a provisional document carries the video's current status."""
    error: str | None
    uri: str
    metadata: dict[str, Any]
    """The user's metadata, exactly as submitted."""
    options: dict[str, Any] = Field(default_factory=dict)
    """The ingest request's options."""
    duration_s: float
    start_s: float
    media: Media
    shots: list[Shot]
    cuts: list[dict[str, Any]]
    transitions: list[dict[str, Any]]
    segment_s: float
    segments: list[Segment]
    analyzers: dict[str, AnalyzerReport]
    description: Description | None
    transcript: dict[str, Any] | None
    text_events: list[TextEvent]
    tracks: list[Track]
    faces: dict[str, Any] | None
    camera: dict[str, Any] | None
    speaking: dict[str, Any] | None = None
    """Who speaks on screen: per speech turn, the face track whose mouth moves (`on_screen`), `off_screen`
    or `unknown`, with a confidence (analyzers/common/active_speaker.py); null without speech or without
    every faces result. Added within version 1: a new optional key is a compatible change."""
    about: dict[str, Any] | None
    summaries: dict[str, Any]
    warnings: list[str]
    """Lost data (corrupt packets skipped, a stream that stopped early): any makes the video degraded."""
    notes: list[str] = Field(default_factory=list)
    """Stated choices that lost no data, e.g. items a processor group shed under load (every k-th item
    analyzed for a while): they never make the video degraded."""
    absent_streams: list[str] = Field(default_factory=list)
    """Streams the input does not have (`video`, `audio`): their analyzers are `not_applicable` and the
    video can still be complete."""
    timings: Timings | None = Field(None, exclude_if=_absent)
    """Set when the video is finished."""
    completion_id: str | None = Field(None, exclude_if=_absent)
    """Set when the video is finished: the same for every copy of one completion's output events."""
    provisional: bool | None = Field(None, exclude_if=_absent)
    """True on a document built before the video finished (the API's live view)."""
    omitted: list[str] | None = Field(None, exclude_if=_absent)
    """What an event's copy left out to stay under the broker's message limit."""
