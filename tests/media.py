"""Test media: the generators in infra/sample_media.py and the real clips in ../shared/media."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
from reelscope.infra.sample_media import cut_clip, textured, tone, with_text, write_video

SHARED_MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"

__all__ = [
    "SHARED_MEDIA",
    "cut_clip",
    "late_audio",
    "mpegts_copy",
    "textured",
    "tone",
    "with_text",
    "write_video",
]


def mpegts_copy(clip: Path, target: Path) -> Path:
    """The clip remuxed into MPEG-TS: what an HLS playlist names as a segment."""
    with av.open(str(clip)) as src, av.open(str(target), "w", format="mpegts") as dst:
        outs = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = outs[packet.stream.index]
                dst.mux(packet)
    return target


def late_audio(path: Path, start_s: float, seconds: float) -> Path:
    """An audio-only AAC file (a 440 Hz tone, 16 kHz mono) whose stream starts at start_s."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16_000, layout="mono")
        signal = tone(seconds, rate=16_000)
        for i in range(0, signal.size, 1024):
            frame = av.AudioFrame.from_ndarray(signal[None, i : i + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.time_base = 16_000, Fraction(1, 16_000)
            frame.pts = round(start_s * 16_000) + i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
