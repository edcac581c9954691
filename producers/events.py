"""Turn one video into its event stream: started, frames, audio chunks, then finished or failed.

A synchronous generator (it runs in a worker thread); the publisher sends what it yields. Every event stays
well under the broker's message limit: frames are re-encoded smaller if a JPEG would exceed it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import simplejpeg
from reelscope.analyzers.base import Analyzer
from reelscope.infra.core.settings import ProducerSettings
from reelscope.producers.decode import (
    AUDIO_RATE,
    DecodedAudio,
    DecodedFrame,
    DecodeError,
    MediaInfo,
    iterate,
    open_media,
    upright_planes,
)
from reelscope.producers.sampling import FramePlan, audio_targets
from reelscope.schemas.events import (
    SOURCE_CHANNEL,
    AudioChunk,
    Event,
    Frame,
    VideoFailed,
    VideoFinished,
    VideoStarted,
)
from reelscope.schemas.records import Media

_SPLIT_PROBE_S = 4.0
_SPLIT_MAX_CORRELATION = 0.8


def encode_jpeg_planes(
    planes: tuple[np.ndarray, np.ndarray, np.ndarray], quality: int, max_bytes: int
) -> bytes:
    """JPEG bytes of full-range 4:2:0 Y, Cb, Cr planes (`decode.upright_planes`), lowering quality until
    they fit max_bytes: libjpeg-turbo compresses the planes as they are, with no colour conversion or chroma
    reduction of its own (the same bytes' size as from RGB)."""
    y, u, v = planes
    while True:
        data = simplejpeg.encode_jpeg_yuv_planes(y, u, v, quality=quality)
        if len(data) <= max_bytes or quality <= 20:
            return data
        quality -= 15


def channels_differ(channels: np.ndarray) -> bool:
    """True when two channels carry different content (two microphones), not one signal twice."""
    left, right = channels[0].astype(np.float64), channels[1].astype(np.float64)
    if left.std() < 1e-3 or right.std() < 1e-3:
        return bool(left.std() > 1e-3) != bool(right.std() > 1e-3)
    return float(np.corrcoef(left, right)[0, 1]) < _SPLIT_MAX_CORRELATION


class _ChunkStream:
    """Cuts one PCM stream (mono, or channels x samples) into fixed chunks; holds the last one back so it can
    be marked final. The chunk length is set at the first samples, from their rate: `chunk_s`, shortened in
    100 ms steps (the loudness grid) while a chunk of every channel would not fit `max_bytes`."""

    def __init__(
        self,
        video_id: str,
        channel: int,
        targets: list[str],
        chunk_s: float,
        hotwords: list[str],
        max_bytes: int,
    ) -> None:
        self.video_id, self.channel, self.targets, self.hotwords = video_id, channel, targets, hotwords
        self.chunk_s, self.max_bytes = chunk_s, max_bytes
        self.rate = self.chunk_samples = 0
        self.buffer = np.zeros((1, 0), np.int16)
        self.start_s: float | None = None
        self.index = 0
        self.held: AudioChunk | None = None

    def feed(self, pts_s: float, samples: np.ndarray, rate: int = AUDIO_RATE) -> Iterator[AudioChunk]:
        planar = samples.reshape(1, -1) if samples.ndim == 1 else samples
        if self.start_s is None:
            self.start_s, self.rate = pts_s, rate
            self.buffer = np.zeros((planar.shape[0], 0), np.int16)
            self.chunk_samples, block = max(1, int(self.chunk_s * rate)), rate // 10
            while self.chunk_samples > block and self.chunk_samples * planar.shape[0] * 2 > self.max_bytes:
                self.chunk_samples -= block
        self.buffer = np.concatenate([self.buffer, planar], axis=1)
        while self.buffer.shape[1] >= self.chunk_samples:
            yield from self._emit(self.buffer[:, : self.chunk_samples])
            self.buffer = self.buffer[:, self.chunk_samples :]

    def _emit(self, pcm: np.ndarray) -> Iterator[AudioChunk]:
        if self.held is not None:
            yield self.held
        start = (self.start_s or 0.0) + self.index * self.chunk_samples / self.rate
        self.held = AudioChunk(
            video_id=self.video_id,
            index=self.index,
            start_s=round(start, 4),
            end_s=round(start + pcm.shape[1] / self.rate, 4),
            sample_rate=self.rate,
            channel=self.channel,
            channels=pcm.shape[0],
            pcm=pcm.T.astype("<i2").tobytes(),
            targets=self.targets,
            hotwords=self.hotwords,
            first=self.index == 0,
        )
        self.index += 1

    def close(self) -> Iterator[AudioChunk]:
        if self.buffer.shape[1]:
            yield from self._emit(self.buffer)
            self.buffer = self.buffer[:, :0]
        if self.held is not None:
            yield self.held.model_copy(update={"final": True})
            self.held = None


def upright(media: Media, rotation: int) -> Media:
    """The media as displayed: a quarter-turned video shows its height as its width."""
    turned = rotation % 180 != 0
    return media.model_copy(
        update={
            "rotation": rotation,
            "width": media.height if turned else media.width,
            "height": media.width if turned else media.height,
        }
    )


class VideoEventSource:
    """Decodes one video and yields its events; counts what it published for the finished event."""

    def __init__(
        self,
        video_id: str,
        path: str,
        uri: str,
        analyzers: dict[str, type[Analyzer]],
        settings: ProducerSettings,
        max_event_bytes: int,
        metadata: dict[str, Any] | None = None,
        hotwords: list[str] | None = None,
        options: dict[str, Any] | None = None,
        submitted_at: float = 0.0,
    ) -> None:
        self.video_id, self.path, self.uri = video_id, path, uri
        # shot analyzers (captioning) sample frames too; their items are shots, counted by the aggregator
        self.frame_analyzers = {n: c for n, c in analyzers.items() if c.input in ("frame", "shot")}
        self.shot_analyzers = {n for n, c in analyzers.items() if c.input == "shot"}
        self.audio_analyzers = {n: c for n, c in analyzers.items() if c.input == "audio"}
        self.settings = settings
        self.max_jpeg_bytes = max_event_bytes - 4096
        self.max_pcm_bytes = max_event_bytes - 4096
        self.metadata = metadata or {}
        self.options = options or {}
        self.submitted_at = submitted_at
        self.hotwords = hotwords or []
        self.expected: dict[str, int] = {}
        self.frames_published = 0
        self.frames_decoded = 0
        self.chunks_published = 0

    def events(self) -> Iterator[Event]:
        t0 = time.monotonic()
        try:
            yield from self._events(t0)
        except DecodeError as exc:
            yield self._failed(str(exc))
        except Exception as exc:  # a decoder bug must fail this video, never the producer
            yield self._failed(f"decoder error: {type(exc).__name__}: {exc}")

    def _failed(self, reason: str) -> VideoFailed:
        return VideoFailed(video_id=self.video_id, reason=reason, failed_at=time.time())

    def _count(self, targets: list[str]) -> None:
        for name in targets:
            if name not in self.shot_analyzers:
                self.expected[name] = self.expected.get(name, 0) + 1

    def _events(self, t0: float) -> Iterator[Event]:
        container, info = open_media(self.path)
        try:
            self._check_limits(info)
            wants = {c.sampling.audio_channels for c in self.audio_analyzers.values()}
            # audio no analyzer listens to is not decoded at all (the scene-only path reads no audio)
            items = iterate(
                container,
                info,
                self.settings.decode_threads,
                source_audio="source" in wants,
                audio_wanted=bool(wants),
                stereo="split" in wants,
            )
            head = self._read_head(items, info)
            if head:  # the first decoded timestamp, not the header's claim, is where the media starts
                info.media = info.media.model_copy(update={"start_s": round(min(i.pts_s for i in head), 4)})
            yield self._started(info)
            yield from self._publish(head, items, info)
        finally:
            container.close()
        if self.frames_published == 0 and self.chunks_published == 0:
            raise DecodeError("no decodable frames or audio in the file")
        warnings = list(info.warnings)  # lost data only: a missing stream is stated by the media's has_*
        yield VideoFinished(
            video_id=self.video_id,
            frames_published=self.frames_published,
            chunks_published=self.chunks_published,
            frames_decoded=self.frames_decoded,
            expected=self.expected,
            warnings=warnings,
            decode_s=round(time.monotonic() - t0, 3),
            finished_at=time.time(),
        )

    def _check_limits(self, info: MediaInfo) -> None:
        media = info.media
        if media.duration_s - media.start_s > self.settings.max_duration_s:
            raise DecodeError(
                f"video is {media.duration_s:.1f} s long; the configured maximum is "
                f"{self.settings.max_duration_s:.0f} s"
            )
        if media.width * media.height > self.settings.max_pixels:
            raise DecodeError(
                f"resolution {media.width}x{media.height} exceeds the configured maximum of "
                f"{self.settings.max_pixels} pixels"
            )

    def _read_head(self, items: Iterator[DecodedFrame | DecodedAudio], info: MediaInfo) -> list:
        """Decode until the first frame (for its rotation) and the first audio, or a few seconds of audio
        when there is a split to choose (stereo, a split analyzer): probing 4 s of a mono 720p clip cost
        0.43 CPU-s before its first event, 20x the rest of the way to its first frame (issue 18)."""
        head: list[DecodedFrame | DecodedAudio] = []
        audio_s = 0.0
        split = info.media.audio_channels >= 2 and any(
            c.sampling.audio_channels == "split" for c in self.audio_analyzers.values()
        )
        probe_s = _SPLIT_PROBE_S if split else 1e-9
        seen_frame = not info.media.has_video
        listens = info.media.has_audio and bool(self.audio_analyzers)
        for item in items:
            head.append(item)
            if isinstance(item, DecodedFrame) and not seen_frame:
                seen_frame = True
                info.media = upright(info.media, int(getattr(item.frame, "rotation", 0) or 0))
            elif isinstance(item, DecodedAudio):
                audio_s += item.mix.size / AUDIO_RATE
            if seen_frame and (audio_s >= probe_s or not listens):
                break
            if len(head) > 2000:
                break
        return head

    def _started(self, info: MediaInfo) -> VideoStarted:
        return VideoStarted(
            video_id=self.video_id,
            uri=self.uri,
            media=info.media,
            metadata=self.metadata,
            options=self.options,
            submitted_at=self.submitted_at,
            started_at=time.time(),
        )

    def _audio_streams(self, head: list, info: MediaInfo) -> list[tuple[_ChunkStream, int | None]]:
        """(chunk stream, source channel, None for the mix or SOURCE_CHANNEL for the source) for this video."""
        split = False
        if info.media.audio_channels >= 2 and any(
            c.sampling.audio_channels == "split" for c in self.audio_analyzers.values()
        ):
            probe = [a.channels for a in head if isinstance(a, DecodedAudio) and a.channels is not None]
            split = bool(probe) and channels_differ(np.concatenate(probe, axis=1))
        mix_targets, channel_targets, source_targets = audio_targets(self.audio_analyzers, split)

        def stream(channel: int, targets: list[str]) -> _ChunkStream:
            chunk_s = self.settings.audio_chunk_s
            return _ChunkStream(self.video_id, channel, targets, chunk_s, self.hotwords, self.max_pcm_bytes)

        streams: list[tuple[_ChunkStream, int | None]] = []
        if mix_targets:
            streams.append((stream(-1, mix_targets), None))
        if channel_targets:
            streams += [(stream(ch, channel_targets), ch) for ch in (0, 1)]
        if source_targets:
            streams.append((stream(SOURCE_CHANNEL, source_targets), SOURCE_CHANNEL))
        return streams

    def _publish(self, head: list, rest: Iterator, info: MediaInfo) -> Iterator[Event]:
        plan = FramePlan(self.frame_analyzers)
        audio_streams = self._audio_streams(head, info) if info.media.has_audio else []
        held: Frame | None = None

        def chain() -> Iterator[DecodedFrame | DecodedAudio]:
            yield from head
            yield from rest

        first_pts = min((i.pts_s for i in head), default=info.media.start_s)
        for item in chain():
            if item.pts_s - first_pts > self.settings.max_duration_s + 1.0:
                # headers can understate the length; the timestamps cannot
                raise DecodeError(
                    f"the media runs past {self.settings.max_duration_s:.0f} s (the configured maximum) "
                    f"at {item.pts_s - first_pts:.1f} s, though its header says {info.media.duration_s - info.media.start_s:.1f} s"
                )
            if isinstance(item, DecodedFrame):
                self.frames_decoded += 1
                targets = plan.targets(item.pts_s)
                if not targets:
                    continue
                planes = upright_planes(item.frame, plan.max_side(targets))
                frame = Frame(
                    video_id=self.video_id,
                    index=item.index,
                    pts_s=round(item.pts_s, 6),
                    width=planes[0].shape[1],
                    height=planes[0].shape[0],
                    jpeg=encode_jpeg_planes(planes, self.settings.jpeg_quality, self.max_jpeg_bytes),
                    targets=targets,
                    first=self.frames_published == 0,
                )
                if held is not None:
                    yield held
                held = frame
                self._count(targets)
                self.frames_published += 1
            else:
                for stream, channel in audio_streams:
                    if channel == SOURCE_CHANNEL:
                        if item.source is None:
                            continue
                        chunks = stream.feed(item.pts_s, item.source, item.source_rate)
                    else:
                        chunks = stream.feed(
                            item.pts_s, item.mix if channel is None else item.channels[channel]
                        )
                    for chunk in chunks:
                        yield self._chunk_counted(chunk)
        if held is not None:
            yield held.model_copy(update={"final": True})
        for stream, _ in audio_streams:
            for chunk in stream.close():
                yield self._chunk_counted(chunk)

    def _chunk_counted(self, chunk: AudioChunk) -> AudioChunk:
        self._count(chunk.targets)
        self.chunks_published += 1
        return chunk
