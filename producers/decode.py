"""Decode a video once with PyAV: probe its metadata, then yield upright RGB frames and 16 kHz audio.

Timestamps always come from each frame's PTS on the stream's own clock (a stream that starts late starts
late here too; variable frame rate stays variable). Knows nothing of Kafka or analyzers.

Only the one file is ever read: FFmpeg opens every further file a container names (an HLS or DASH
playlist's segments, a concat list's entries) through `io_open`, which refuses all but the first, so a
playlist cannot reach outside the allowed roots; containers of such formats and still images are refused
by name with a reason.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import BinaryIO

import av
import numpy as np
from reelscope.schemas.records import Media

AUDIO_RATE = 16_000

MULTI_FILE_FORMATS = frozenset(
    {"hls", "applehttp", "dash", "concat", "ffconcat", "imf", "sdp", "rtsp", "rtp"}
)
"""Demuxers that read further files or network streams named inside the container."""
IMAGE_FORMATS = frozenset({"image2", "gif", "apng", "webp"})
"""Still-image demuxers besides the `*_pipe` family (png_pipe, jpeg_pipe, ...)."""


_OPENCV = importlib.util.find_spec("cv2") is not None


class DecodeError(Exception):
    """The video cannot be analyzed; the message is the reason users see."""


@dataclass
class MediaInfo:
    """What decoding learns about a video: its Media record (rotation, and with it the displayed width and
    height, known from the first decoded frame) and the problems met on the way."""

    media: Media
    warnings: list[str] = field(default_factory=list)


@dataclass
class DecodedFrame:
    index: int
    pts_s: float
    frame: av.VideoFrame


@dataclass
class DecodedAudio:
    """Resampled audio: `mix` is mono int16; `channels` holds per-channel int16 when the source is stereo;
    `source` every channel (channels x samples, int16) at the source's `source_rate`, when asked for."""

    pts_s: float
    mix: np.ndarray
    channels: np.ndarray | None
    source: np.ndarray | None = None
    source_rate: int = 0


def _fraction(value: Fraction | None) -> float | None:
    return round(float(value), 4) if value else None


def _decodable(
    streams: Sequence[av.stream.Stream], kind: str, warnings: list[str]
) -> av.stream.Stream | None:
    """The first stream of a kind that has a decoder; a stream PyAV has no codec for is reported."""
    for stream in streams:
        if stream.codec_context is not None:
            return stream
        warnings.append(f"unsupported {kind} codec in stream {stream.index}: it was skipped")
    return None


def probe(container: av.container.InputContainer) -> MediaInfo:
    """Metadata from the container headers (no decoding)."""
    warnings: list[str] = []
    video = _decodable(container.streams.video, "video", warnings)
    audio = _decodable(container.streams.audio, "audio", warnings)
    if video is None and audio is None:
        if warnings:
            raise DecodeError("unsupported codec: no stream of the file can be decoded")
        raise DecodeError("no audio or video stream in the file")
    starts: list[float] = []
    ends: list[float] = []
    for stream in (s for s in (video, audio) if s is not None):
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        starts.append(start)
        if stream.duration is not None and stream.time_base is not None:
            ends.append(start + float(stream.duration * stream.time_base))
    if not ends and container.duration is not None:
        ends.append(min(starts, default=0.0) + container.duration / av.time_base)
    media = Media(
        duration_s=round(max(ends, default=0.0), 4),
        start_s=round(min(starts, default=0.0), 4),
        avg_fps=_fraction(video.average_rate) if video else None,
        real_fps=_fraction(video.base_rate) if video else None,
        width=video.codec_context.width if video else 0,
        height=video.codec_context.height if video else 0,
        rotation=0,  # known from the first decoded frame's display matrix; see producers/events.py
        video_codec=video.codec_context.name if video else "",
        audio_codec=audio.codec_context.name if audio else "",
        has_video=video is not None,
        has_audio=audio is not None,
        audio_channels=audio.codec_context.channels if audio else 0,
    )
    return MediaInfo(media, warnings)


class _OneFile:
    """FFmpeg's io_open for one container: opens the file itself, refuses everything it names."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.opened = False
        self.refused: list[str] = []

    def __call__(self, url: str, flags: int, options: dict) -> BinaryIO:
        if url == self.path and not self.opened:
            self.opened = True
            return open(url, "rb")  # FFmpeg closes it through PyAV's io_close
        self.refused.append(url)
        raise PermissionError(f"refused to open {url}: only the submitted file is read")


def _refusal(container: av.container.InputContainer, info: MediaInfo) -> str | None:
    """Why a container that opened is still not analyzed: a multi-file format or a still image."""
    names = set(container.format.name.split(","))
    if names & MULTI_FILE_FORMATS:
        return f"{container.format.name} files name other files or streams to read; upload the media itself"
    still = any(n.endswith("_pipe") for n in names) or names & IMAGE_FORMATS
    if still and not info.media.has_audio and (container.streams.video[0].frames or 1) <= 1:
        return f"a still image ({container.format.name}), not a video"
    return None


def open_media(path: str) -> tuple[av.container.InputContainer, MediaInfo]:
    """Open and probe, turning every PyAV failure into a DecodeError with a readable reason."""
    guard = _OneFile(path)
    try:
        container = av.open(path, mode="r", timeout=30, io_open=guard)
    except FileNotFoundError as exc:
        raise DecodeError(f"file not found: {path}") from exc
    except (av.error.FFmpegError, OSError) as exc:  # custom I/O reports some failures as OSError
        if guard.refused:
            raise DecodeError(
                f"the file names other files to read ({guard.refused[0][:200]}): playlists and other "
                "multi-file formats are refused; upload the media itself"
            ) from exc
        raise DecodeError(f"not a readable video: {exc}") from exc
    try:
        info = probe(container)
        refusal = _refusal(container, info)
        if refusal:
            raise DecodeError(refusal)
        return container, info
    except DecodeError:
        container.close()
        raise


def upright_planes(frame: av.VideoFrame, max_side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-range (JFIF) Y, Cb and Cr planes, 4:2:0, resized so the longest displayed side is at most
    max_side, rotated upright: what a JPEG encoder takes without any RGB step.

    One swscale pass scales in the decoder's own format and expands the range (limited to full) on the
    way; no RGB frame is ever made here, and the encoder skips its own RGB to YCbCr conversion and chroma
    reduction. Against RGB conversion plus an RGB JPEG, per 720x1280 frame: 2.8 vs 6.5 ms at 540x960,
    1.5 vs 2.2 ms at 360x640, 0.5 vs 0.9 ms at the cut detector's 160x284 (area filter, one thread).
    The colours are those of `upright_rgb` (BT.601, as JPEG decoders assume)."""
    rotation = int(getattr(frame, "rotation", 0) or 0)
    w, h = frame.width, frame.height
    scale = min(1.0, max_side / max(w, h))
    tw, th = max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2)
    small = frame.reformat(
        width=tw,
        height=th,
        format="yuv420p",
        interpolation="AREA",
        dst_color_range="JPEG",
        threads=1,  # a few ms of work: a thread pool's hand-offs would cost more CPU than they save
    )
    planes = tuple(
        np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[:ph, :pw]
        for p, (pw, ph) in zip(small.planes, ((tw, th), (tw // 2, th // 2), (tw // 2, th // 2)), strict=True)
    )
    quarter_turns = round(rotation / 90.0) % 4
    y, u, v = (np.ascontiguousarray(np.rot90(p, k=quarter_turns)) for p in planes)
    return y, u, v


def upright_rgb(frame: av.VideoFrame, max_side: int) -> np.ndarray:
    """RGB array resized so its longest displayed side is at most max_side, rotated upright."""
    rotation = int(getattr(frame, "rotation", 0) or 0)
    w, h = frame.width, frame.height
    scale = min(1.0, max_side / max(w, h))
    tw, th = max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2)
    rgb = _from_planes(frame, tw, th) if _OPENCV else None
    if rgb is None and (tw, th) != (w, h):
        # Scale inside FFmpeg in the decoder's own format (4:2:0: chroma is a quarter of the pixels), then
        # convert only the small frame to RGB: half the CPU of one RGB-scaling swscale pass (720x1280 ->
        # 540x960: 2.5 vs 5.7 ms; -> 160x284: 1.3 vs 2.1 ms). Chroma ends at half the target size, which is
        # what the 4:2:0 JPEG of the event keeps anyway. AREA: a box filter, the right one for large
        # reductions (no aliasing), twice as fast as swscale's default bicubic.
        rgb = frame.reformat(width=tw, height=th, interpolation="AREA").to_ndarray(format="rgb24")
    elif rgb is None:
        rgb = frame.to_ndarray(format="rgb24")
    quarter_turns = round(rotation / 90.0) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=quarter_turns)) if quarter_turns else rgb


def _from_planes(frame: av.VideoFrame, tw: int, th: int) -> np.ndarray | None:
    """A small RGB frame (the cut detector's 160 px, every frame) read off the decoder's 4:2:0 planes:
    luma taken every second pixel (a view, no copy), each plane area-reduced by OpenCV, then converted at
    the small size. A quarter of the luma pixels to filter and no full-size conversion: 0.3 ms a frame
    against 1.2 ms through swscale (720x1280 -> 160x284). Only for reductions of 4x or more, where the
    area filter still averages 2x2 decimated pixels (no visible aliasing), and for limited-range yuv420p
    (OpenCV's conversion is BT.601 limited range); None otherwise. OpenCV comes with the `vision` extra:
    without it every frame takes the swscale path."""
    w, h = frame.width, frame.height
    if frame.format.name != "yuv420p" or w < 4 * tw or h < 4 * th or tw % 2 or th % 2:
        return None
    import cv2

    def plane(i: int, step: int) -> np.ndarray:
        p = frame.planes[i]
        pw, ph = (w, h) if i == 0 else (w // 2, h // 2)
        return np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[:ph:step, :pw:step]

    y = cv2.resize(plane(0, 2), (tw, th), interpolation=cv2.INTER_AREA)
    u, v = (cv2.resize(plane(i, 1), (tw // 2, th // 2), interpolation=cv2.INTER_AREA) for i in (1, 2))
    # I420 as OpenCV reads it: the three planes back to back, seen as th * 3/2 rows of tw bytes
    i420 = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(th * 3 // 2, tw)
    return cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)


def iterate(
    container: av.container.InputContainer,
    info: MediaInfo,
    threads: int = 0,
    source_audio: bool = False,
    audio_wanted: bool = True,
    stereo: bool = True,
) -> Iterator[DecodedFrame | DecodedAudio]:
    """Frames and resampled audio in demux order (with `source_audio`, also every channel at the source's
    rate, as 16-bit PCM). Corrupt packets are skipped and counted in warnings. Without `audio_wanted` the
    audio stream is not even demuxed; without `stereo` no per-channel 16 kHz copy is made (nothing would
    split the channels)."""
    streams = []
    video = next((s for s in container.streams.video if s.codec_context is not None), None)
    audio = next((s for s in container.streams.audio if s.codec_context is not None), None)
    if not audio_wanted:
        audio = None
    if video is not None:
        video.thread_type = "AUTO"
        if threads:
            video.codec_context.thread_count = threads
        streams.append(video)
    mix_resampler = stereo_resampler = source_resampler = None
    if audio is not None:
        streams.append(audio)
        mix_resampler = av.AudioResampler(format="s16", layout="mono", rate=AUDIO_RATE)
        if stereo and info.media.audio_channels >= 2:
            stereo_resampler = av.AudioResampler(format="s16", layout="stereo", rate=AUDIO_RATE)
        if source_audio:
            source_resampler = av.AudioResampler(format="s16")  # layout and rate as decoded
    index = 0
    bad_packets = 0
    audio_end: float | None = None
    for packet in container.demux(*streams):
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            bad_packets += 1
            if bad_packets > 50:
                raise DecodeError("too many corrupt packets; giving up") from None
            continue
        for frame in frames:
            if frame.time is None:
                continue
            if isinstance(frame, av.VideoFrame):
                yield DecodedFrame(index=index, pts_s=float(frame.time), frame=frame)
                index += 1
            elif isinstance(frame, av.AudioFrame) and mix_resampler is not None:
                pts = float(frame.time)
                audio_end = pts + frame.samples / frame.sample_rate
                yield _resampled(pts, frame, mix_resampler, stereo_resampler, source_resampler)
    if mix_resampler is not None and audio_end is not None:
        # the resamplers hold the last few milliseconds back until flushed
        yield _resampled(audio_end, None, mix_resampler, stereo_resampler, source_resampler)
    if bad_packets:
        info.warnings.append(f"{bad_packets} corrupt packets skipped")


def _resampled(
    pts: float,
    frame: av.AudioFrame | None,
    mix_resampler: av.AudioResampler,
    stereo_resampler: av.AudioResampler | None,
    source_resampler: av.AudioResampler | None = None,
) -> DecodedAudio:
    """One decoded audio frame (None: the flush at the end) as 16 kHz mono, and stereo and every channel
    at the source's rate when asked."""
    mix = np.concatenate(
        [f.to_ndarray().reshape(-1) for f in mix_resampler.resample(frame)] or [np.zeros(0, np.int16)]
    )
    channels = None
    if stereo_resampler is not None:
        parts = [f.to_ndarray().reshape(-1, 2) for f in stereo_resampler.resample(frame)]
        channels = np.concatenate(parts).T if parts else np.zeros((2, 0), np.int16)
    source, rate = None, 0
    if source_resampler is not None:
        decoded = source_resampler.resample(frame)
        if decoded:
            n, rate = decoded[0].layout.nb_channels, decoded[0].sample_rate
            source = np.concatenate([f.to_ndarray().reshape(-1, n) for f in decoded]).T
    return DecodedAudio(pts_s=pts, mix=mix, channels=channels, source=source, source_rate=rate)
