"""Every event reelscope puts on the wire: versioned, MessagePack-encoded, validated on decode.

Each event is a pydantic model with a `kind` and a schema version `v`. `encode` writes the current version;
`decode` accepts every older version by running its registered upgraders in order, then validates, and
raises SchemaError naming the offending field.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import msgpack
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from reelscope.schemas.records import Media, VideoStatus

Provenance = Literal["algorithm", "packaged", "configured", "random-test", "composed"]
"""Where a model's weights came from: `random-test` output is noise by construction and never a result."""


VIDEO_ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$"
"""A video id that can be submitted: it is a path segment of the API and a file name of exports."""


def video_id_slug(name: str, default: str = "video") -> str:
    """A file name's contribution to a video id: letters, digits, `-` and `_` only (VIDEO_ID_PATTERN)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-_")[:40] or default


class SchemaError(ValueError):
    """An event that cannot be decoded; the message names the field at fault."""


class Event(BaseModel):
    """Base of every wire event."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    KIND: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1
    UPGRADERS: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {}
    """Maps version N to a function turning an N payload into an N+1 payload."""

    video_id: str = Field(min_length=1, max_length=128)


class IngestRequest(Event):
    """A request to analyze one video. It names the video; it never carries the bytes.

    v1 called the location `path` and had no metadata; v2 renamed it `uri` and added options and metadata.
    """

    KIND = "ingest"
    VERSION = 2
    UPGRADERS: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {
        1: lambda d: {**{k: v for k, v in d.items() if k != "path"}, "uri": d.get("path", d.get("uri"))},
    }

    video_id: str = Field(pattern=VIDEO_ID_PATTERN)
    uri: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Free metadata kept with the video: creator, platform, caption, hashtags, ..."""
    submitted_at: float = 0.0


def _media_block(d: dict[str, Any]) -> dict[str, Any]:
    """VideoStarted v1 -> v2: the media fields move into `media`; `submitted_at` and `options`, which v1 hid
    in the user's metadata, become fields of their own."""
    body = {k: v for k, v in d.items() if k not in Media.model_fields}
    media = {k: v for k, v in d.items() if k in Media.model_fields}
    for codec in ("video_codec", "audio_codec"):
        media[codec] = media.get(codec) or ""
    metadata = dict(body.get("metadata") or {})
    submitted_at = metadata.pop("submitted_at", None)
    options = metadata.pop("options", None)
    return {
        **body,
        "media": media,
        "metadata": metadata,
        "submitted_at": submitted_at or 0.0,
        "options": options if isinstance(options, dict) else {},
    }


class VideoStarted(Event):
    """The producer opened the video: what it is (`media`) and what was asked for it.

    v1 carried the media fields flat and hid `submitted_at` and `options` in `metadata`."""

    KIND = "video.started"
    VERSION = 2
    UPGRADERS: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {1: _media_block}

    uri: str
    media: Media
    metadata: dict[str, Any] = Field(default_factory=dict)
    """The user's metadata, exactly as submitted."""
    options: dict[str, Any] = Field(default_factory=dict)
    """The ingest request's options."""
    submitted_at: float = 0.0
    """When the ingest request was made (epoch seconds); 0 when unknown."""
    started_at: float = 0.0


class VideoFinished(Event):
    """All events of a video are published; `expected` tells the aggregator what results to wait for."""

    KIND = "video.finished"

    frames_published: int
    chunks_published: int
    frames_decoded: int = 0
    expected: dict[str, int] = Field(default_factory=dict)
    """Analyzer name -> number of items (frames or chunks) published for it."""
    warnings: list[str] = Field(default_factory=list)
    decode_s: float = 0.0
    finished_at: float = 0.0


class VideoFailed(Event):
    KIND = "video.failed"

    reason: str
    stage: str = "producer"
    failed_at: float = 0.0


class Frame(Event):
    """One sampled, resized, JPEG-encoded frame. `targets` names the analyzers that sampled it."""

    KIND = "frame"

    index: int = Field(ge=0)
    pts_s: float
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    jpeg: bytes = Field(min_length=1)
    targets: list[str]
    first: bool = False
    """True on the first published frame of the video."""
    final: bool = False
    """True on the last published frame of the video."""


SOURCE_CHANNEL = -2
"""AudioChunk.channel of the source stream: its own ordered stream, apart from the mix (-1)."""


class AudioChunk(Event):
    """A chunk of 16-bit PCM. `channel` is -1 for the 16 kHz mono mix, SOURCE_CHANNEL for the source stream
    (every channel at the source's rate, `channels` of them interleaved), else the source channel index."""

    KIND = "audio.chunk"

    index: int = Field(ge=0)
    start_s: float
    end_s: float
    sample_rate: int = 16_000
    channel: int = -1
    channels: int = Field(1, ge=1)
    pcm: bytes
    targets: list[str]
    first: bool = False
    """True on the first chunk of this channel."""
    final: bool = False
    """True on the last chunk of this channel: stateful analyzers flush their windows."""
    hotwords: list[str] = Field(default_factory=list)
    """Words to listen for in this video (from the ingest request's `options.hotwords`)."""


class AnalyzerResult(Event):
    """One analyzer's output for one item (a frame or an audio chunk) of a video."""

    KIND = "result"

    analyzer: str
    item_key: str
    """Stable id of the input item within the video (e.g. `f000042`), so redelivery replaces."""
    model: str
    provenance: Provenance
    start_s: float
    end_s: float
    payload: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    produced_at: float = 0.0


SHED_KEY = "_shed"
"""An AnalyzerResult whose payload is `{SHED_KEY: {"stride": k}}` was not analyzed, on purpose: its group
was behind and analyzed only every k-th item of the video for a while (load shedding). It counts as a
received result (the video is not waiting for it, nor degraded by it), never as a finding. A convention
inside the free `payload`: the event's schema (and version) is unchanged."""


def shed_payload(stride: int) -> dict[str, Any]:
    return {SHED_KEY: {"stride": stride}}


def shed_stride(payload: dict[str, Any]) -> int:
    """The stride a result was shed under; 0 for an analyzed result."""
    shed = payload.get(SHED_KEY)
    return int(shed.get("stride", 0)) if isinstance(shed, dict) else 0


ECONOMY_KEY = "_economy"
"""An AnalyzerResult whose payload holds `{ECONOMY_KEY: {"stride": k}}` was analyzed in its analyzer's
cheaper mode (`Analyzer.economy`), on purpose: its group was behind (at stride k). A finding, made with less;
the reconstruction states it per video. A convention inside the free `payload`, like SHED_KEY."""


def economy_stride(payload: dict[str, Any]) -> int:
    """The stride a result was analyzed in economy mode under; 0 for one analyzed in full."""
    economy = payload.get(ECONOMY_KEY)
    return int(economy.get("stride", 0)) if isinstance(economy, dict) else 0


class ShotsReady(Event):
    """From the aggregator to shot analyzers (captioning): a video's frame and audio results are in, here
    are its shots with what was found in each (`context`), its transcript and on-screen text."""

    KIND = "shots.ready"

    shots: list[dict[str, Any]]
    """[{index, start_s, end_s, context}] in time order."""
    transcript: str = ""
    texts: list[str] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)


def _dead_letter_v2(body: dict[str, Any]) -> dict[str, Any]:
    original = body.get("original") or b""
    return {**body, "original_size": len(original), "original_sha256": hashlib.sha256(original).hexdigest()}


class DeadLetter(Event):
    """An event nobody could process, with where it came from and why.

    v2: `original` may be truncated to fit the broker's message limit; `original_size` and `original_sha256`
    describe the whole original (v1 always embedded it whole)."""

    KIND = "dead-letter"
    VERSION = 2
    UPGRADERS: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {1: _dead_letter_v2}
    model_config = ConfigDict(extra="ignore", frozen=True)

    video_id: str = "unknown"
    source_topic: str
    partition: int
    offset: int
    original: bytes
    """The original message, or its first bytes when `truncated`."""
    original_size: int = 0
    original_sha256: str = ""
    truncated: bool = False
    error: str
    consumer: str = ""
    failed_at: float = 0.0


class Parts(Event):
    """One of `parts` pieces of a body too large for one message, for one completion of a video; the
    consumer puts the pieces back together (infra/core/chunks.py)."""

    completion_id: str
    phase: Literal["shots", "final"]
    part: int = Field(ge=0)
    parts: int = Field(ge=1)
    body: bytes


class VideoReady(Parts):
    """From the aggregator to the finalize group: a video's results are in (or it timed out, or failed).

    `phase` is `shots` (frame and audio results are in: find the shots, ask the shot analyzers) or `final`
    (build the document). The body is MessagePack: the videos row, the stored results, the failure reason."""

    KIND = "video.ready"


class VideoDocument(Parts):
    """From the finalize group to the aggregator: what it built for a VideoReady.

    Phase `final`: the reconstruction document (JSON); phase `shots`: MessagePack {expected} (the shot
    analyzers' expected counts; the ShotsReady event went to the shots topic)."""

    KIND = "video.document"


class ProcessorHeartbeat(Event):
    """A processor group is busy with a batch that holds items of this video (one per video of the batch,
    keyed by it, so it reaches the aggregator that owns the video). Sent every `batch.heartbeat_s` while the
    batch runs, none for a batch shorter than that: a batch longer than the completion timeout (a
    transcription window under heavy load) is progress, not a stopped group. A killed process sends none."""

    KIND = "processor.heartbeat"

    group: str = Field(min_length=1)
    """The processor group (`audio`, `vision`, ...)."""
    member: str = ""
    """The process that sends it (`host:pid`)."""
    busy_s: float = Field(0.0, ge=0)
    """Seconds the batch has run so far."""
    items: int = Field(0, ge=0)
    """Items of this video in the batch."""
    sent_at: float = 0.0


class Reconstruction(Event):
    """The finished video's reconstruction, as JSON text (its model: schemas/reconstruction.py).

    Output events are at-least-once: a restart may publish a completion again. `completion_id` is the same
    for every copy of one completion (v2), so a consumer keeps one per (video_id, completion_id)."""

    KIND = "reconstruction"
    VERSION = 2
    UPGRADERS: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {1: lambda d: d}

    status: VideoStatus
    document: str
    completion_id: str = ""


class VideoPart(Event):
    """One part of a finished video's reconstruction (transcript, text events, shots, tracks, about), on its
    own topic, so a consumer that wants only captions or only the transcript subscribes to just that.
    `completion_id` as in Reconstruction (v2)."""

    KIND = "video.part"
    VERSION = 2
    UPGRADERS: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {1: lambda d: d}

    part: str
    status: VideoStatus
    document: str
    """JSON of the part, exactly as it appears in the reconstruction."""
    completion_id: str = ""


EVENT_TYPES: dict[str, type[Event]] = {
    cls.KIND: cls
    for cls in (
        IngestRequest,
        VideoStarted,
        VideoFinished,
        VideoFailed,
        Frame,
        AudioChunk,
        AnalyzerResult,
        ShotsReady,
        VideoReady,
        VideoDocument,
        DeadLetter,
        ProcessorHeartbeat,
        Reconstruction,
        VideoPart,
    )
}


def encode(event: Event) -> bytes:
    """MessagePack bytes of an event at its current schema version."""
    body = event.model_dump(mode="python")
    body["kind"] = event.KIND
    body["v"] = event.VERSION
    return msgpack.packb(body, use_bin_type=True)


def _format_error(kind: str, err: ValidationError) -> str:
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "<event>"
    return f"{kind} event: field '{field}': {first['msg']}"


def decode(data: bytes, expect: type[Event] | tuple[type[Event], ...] | None = None) -> Event:
    """Decode and validate an event, upgrading older versions; raises SchemaError with the field."""
    try:
        body = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:
        raise SchemaError(f"not a MessagePack event: {exc}") from exc
    if not isinstance(body, dict):
        raise SchemaError("event is not a map")
    kind = body.pop("kind", None)
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise SchemaError(f"field 'kind': unknown event kind {kind!r}")
    version = body.pop("v", 1)
    if not isinstance(version, int) or version < 1 or version > cls.VERSION:
        raise SchemaError(f"{kind} event: field 'v': unsupported schema version {version!r}")
    for v in range(version, cls.VERSION):
        body = cls.UPGRADERS[v](body)
    try:
        event = cls.model_validate(body)
    except ValidationError as exc:
        raise SchemaError(_format_error(kind, exc)) from exc
    if expect is not None and not isinstance(event, expect):
        raise SchemaError(f"field 'kind': {kind!r} is not expected on this topic")
    return event
