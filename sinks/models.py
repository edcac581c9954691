"""The API's response bodies as pydantic models, so OpenAPI documents each one (not a bare `object`) and a
client generator gets real types. The reconstruction document's own model lives in schemas/reconstruction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Submitted(BaseModel):
    video_id: str
    status: str = Field(description="`submitted`: queued for the producer, not opened yet")


class AnalyzerProgress(BaseModel):
    received: int
    errors: int
    expected: int | None = Field(description="known once every event of the video is published")


class VideoSummary(BaseModel):
    video_id: str
    uri: str
    status: str
    error: str
    duration_s: float
    submitted_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime | None


class VideoDetail(VideoSummary):
    """Every column of the videos table (media facts, counters, timings) plus per-analyzer progress."""

    model_config = ConfigDict(extra="allow")
    metadata: dict[str, Any]
    options: dict[str, Any]
    expected: dict[str, int]
    warnings: list[str] = Field(default_factory=list)
    progress: dict[str, AnalyzerProgress]


class SegmentRow(BaseModel):
    segment_index: int
    start_s: float
    end_s: float
    shot_index: int
    fields: dict[str, Any] = Field(description="per analyzer, its fields for this segment")


class Deleted(BaseModel):
    video_id: str
    upload_removed: bool
    tombstone: bool = Field(
        description="a null-value message keyed by the video id went to the reconstructions topic and its part topics"
    )


class Health(BaseModel):
    status: str
    ready: bool
    reason: str | None = None


class Stats(BaseModel):
    window_s: int
    finished_in_window: int
    finished_by_status: dict[str, int]
    throughput_per_min: float
    per_minute: list[int]
    in_flight: int
    consumer_lag: int | None
    consumer_lag_by_group: dict[str, int]
    consumer_lag_reason: str
