"""Test media: the generators in infra/sample_media.py and the real clips in ../shared/media."""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from reelscope.infra.sample_media import cut_clip, textured, tone, with_text, write_video

SHARED_MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"

__all__ = [
    "SHARED_MEDIA",
    "cut_clip",
    "late_audio",
    "mpegts_copy",
    "spoken",
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


def spoken(tmp_path: Path, text: str, rate: int = 48_000, speed_wpm: int = 150) -> np.ndarray:
    """espeak-ng saying `text`, as float32 mono at `rate`; skips the test without espeak-ng."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    wav = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-s", str(speed_wpm), "-w", str(wav), text], check=True)  # list args
    with av.open(str(wav)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        return np.concatenate(
            [f.to_ndarray().reshape(-1) for fr in container.decode(audio=0) for f in resampler.resample(fr)]
        )
