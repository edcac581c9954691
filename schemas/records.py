"""Typed records shared by every stage: a video's status and the facts about its media.

Defined once here so the producer, the videos table, the API and the reconstruction document all read the
same names and values (the stored and wire values are the plain strings and numbers they always were).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class VideoStatus(StrEnum):
    """Where a video is. A str enum: stored, sent and compared as its plain value (`"complete"`)."""

    PROCESSING = "processing"
    """The producer started publishing its events."""
    PUBLISHED = "published"
    """All its frame and audio events are published; results are arriving."""
    DESCRIBING = "describing"
    """Frame and audio results are in; the shot analyzers (captioning) are at work."""
    COMPLETE = "complete"
    DEGRADED = "degraded"
    """Finished, but a stream, an analyzer or some results were missing."""
    FAILED = "failed"


TERMINAL = frozenset({VideoStatus.COMPLETE, VideoStatus.DEGRADED, VideoStatus.FAILED})
"""Statuses of a finished video: it has its reconstruction."""
IN_FLIGHT = frozenset({VideoStatus.PROCESSING, VideoStatus.PUBLISHED, VideoStatus.DESCRIBING})
"""Statuses of a video whose completion is pending."""


def sql_list(statuses: frozenset[VideoStatus]) -> str:
    """A SQL `IN` list of statuses, in a stable order (for DDL and queries)."""
    return ", ".join(f"'{s.value}'" for s in sorted(statuses))


class Media(BaseModel):
    """What the producer learned about a video's streams: probed from the container, with width, height and
    rotation as displayed (known from the first decoded frame). Carried by VideoStarted, stored as the
    videos row's columns of the same names, and the reconstruction's `media` block."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    duration_s: float = 0.0
    """End of the longest stream, on the video's own clock."""
    start_s: float = 0.0
    """First timestamp of the earliest stream (not 0 for a stream that starts late)."""
    width: int = 0
    height: int = 0
    rotation: int = 0
    avg_fps: float | None = None
    real_fps: float | None = None
    video_codec: str = ""
    """Decoder name; empty when there is no decodable video stream."""
    audio_codec: str = ""
    has_video: bool = False
    has_audio: bool = False
    audio_channels: int = 0
