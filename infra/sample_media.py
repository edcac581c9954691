"""Media generated with PyAV: textured shots with a hard cut at a known frame, rendered text, tones and
silence. The sample clip of `reelscope analyze --sample` and the benchmarks, and the tests' media, so
every expectation about it is known exactly."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

TINTS = {1: (1.0, 0.55, 0.3), 2: (0.3, 0.6, 1.0)}
"""Shots 1 and 2 differ in colour as real shots do (two untinted random textures average to the same grey)."""


def textured(width: int, height: int, seed: int, shift: int = 0) -> np.ndarray:
    """A colourful blocky texture (distinct per seed, tinted for seeds 1 and 2), shifted right by `shift`."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(height // 16 + 1, width // 16 + 2, 3), dtype=np.uint8)
    if seed in TINTS:
        blocks = (blocks * np.array(TINTS[seed])).astype(np.uint8)
    image = np.repeat(np.repeat(blocks, 16, axis=0), 16, axis=1)
    return np.ascontiguousarray(np.roll(image, shift, axis=1)[:height, :width])


def with_text(image: np.ndarray, text: str) -> np.ndarray:
    """The text in white on a black box at the top left, sized to the frame (readable by OCR)."""
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    font = ImageFont.load_default(size=max(12, image.shape[1] // 16))
    left, top, right, bottom = draw.textbbox((14, 14), text, font=font)
    draw.rectangle((left - 6, top - 6, right + 6, bottom + 6), fill=(0, 0, 0))
    draw.text((14, 14), text, fill=(255, 255, 255), font=font)
    return np.asarray(pil)


def tone(seconds: float, freq: float = 440.0, rate: int = 48_000, level: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def spoken(text: str, rate: int = 48_000, words_per_minute: int = 150, voice: str = "") -> np.ndarray:
    """espeak-ng reading `text` (in `voice`, else its default), float32 mono at `rate` (needs espeak-ng)."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "speech.wav"
        voices = ["-v", voice] if voice else []
        command = ["espeak-ng", *voices, "-s", str(words_per_minute), "-w", str(wav), text]
        subprocess.run(command, check=True)  # list args, no shell
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        with av.open(str(wav)) as container:
            parts = [
                f.to_ndarray().reshape(-1) for fr in container.decode(audio=0) for f in resampler.resample(fr)
            ]
        parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(parts)


def write_video(
    path: Path,
    frames: int,
    fps: int,
    frame_at: Callable[[int], np.ndarray] | None,
    audio: np.ndarray | None = None,
    audio_rate: int = 48_000,
    rotation: int = 0,
    pts_of: Callable[[int], float] | None = None,
) -> Path:
    """Write an H.264/AAC file. `audio` is float32 mono (or shape (2, n) for stereo); `pts_of(i)` gives
    frame i's time in seconds for variable frame rate (default i / fps)."""
    with av.open(str(path), mode="w") as container:
        video = None
        if frame_at is not None:
            first = frame_at(0)
            video = container.add_stream("libx264", rate=fps)
            if pts_of is not None:
                video.codec_context.time_base = Fraction(1, 1000)
            video.width, video.height = first.shape[1], first.shape[0]
            video.pix_fmt = "yuv420p"
            video.options = {"preset": "ultrafast", "crf": "18", "bf": "0"}
            if rotation:
                video.set_display_rotation(rotation)
        stream = None
        if audio is not None:
            layout = "stereo" if audio.ndim == 2 else "mono"
            stream = container.add_stream("aac", rate=audio_rate, layout=layout)
        if video is not None:
            for i in range(frames):
                frame = av.VideoFrame.from_ndarray(frame_at(i), format="rgb24")  # type: ignore[misc]
                if pts_of is None:
                    frame.pts, frame.time_base = i, Fraction(1, fps)
                else:
                    frame.pts, frame.time_base = round(pts_of(i) * 1000), Fraction(1, 1000)
                for packet in video.encode(frame):
                    container.mux(packet)
            for packet in video.encode():
                container.mux(packet)
        if stream is not None and audio is not None:
            planar = audio.reshape(1, -1) if audio.ndim == 1 else audio
            step = 1024
            for i in range(0, planar.shape[1], step):
                chunk = np.ascontiguousarray(planar[:, i : i + step].astype(np.float32))
                layout = "stereo" if audio.ndim == 2 else "mono"
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
                frame.sample_rate = audio_rate
                frame.pts = i
                frame.time_base = Fraction(1, audio_rate)
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return path


def cut_clip(
    path: Path,
    cut_frame: int = 30,
    frames: int = 60,
    fps: int = 25,
    size: tuple[int, int] = (320, 180),
    tone_s: float = 1.0,
    silence_s: float = 1.4,
) -> Path:
    """Shot A (texture 1, panning slowly) then a hard cut to shot B at `cut_frame`; a tone then silence."""
    w, h = size

    def frame_at(i: int) -> np.ndarray:
        base = textured(w, h, seed=1 if i < cut_frame else 2, shift=i)
        return with_text(base, f"frame {i}")

    rate = 48_000
    audio = np.concatenate([tone(tone_s, rate=rate), np.zeros(int(silence_s * rate), np.float32)])
    return write_video(path, frames, fps, frame_at, audio=audio, audio_rate=rate)


def sample_clip(path: Path) -> Path:
    """The demo clip: 6 s of 9:16 720x1280 at 30 fps, a hard cut at 3.0 s, 4 s of tone then silence."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return path
    return cut_clip(path, cut_frame=90, frames=180, fps=30, size=(720, 1280), tone_s=4.0, silence_s=2.0)


def looped_clip(
    path: Path, seconds: float, base_s: float = 10.0, size: tuple[int, int] = (720, 1280)
) -> Path:
    """A long H.264/AAC clip made cheaply: a `base_s` cut clip (tone, silence) encoded once, its packets
    remuxed with shifted timestamps until `seconds` are covered (a 5-minute 720x1280 file in seconds)."""
    base = cut_clip(
        path.with_suffix(".base.mp4"),
        cut_frame=int(base_s * 15),
        frames=int(base_s * 30),
        fps=30,
        size=size,
        tone_s=base_s * 0.6,
        silence_s=base_s * 0.4,
    )
    loop_file(base, path, max(1, round(seconds / base_s)))
    base.unlink()
    return path


def loop_file(base: Path, path: Path, loops: int) -> Path:
    """`base`'s video and audio packets remuxed `loops` times end to end into `path` (no re-encoding)."""
    with av.open(str(base)) as src, av.open(str(path), mode="w") as dst:
        outs = {s.index: dst.add_stream_from_template(s) for s in src.streams if s.type in ("video", "audio")}
        packets = [p for p in src.demux(*src.streams) if p.stream.index in outs and p.dts is not None]
        spans = {
            i: max(p.pts + (p.duration or 0) for p in packets if p.stream.index == i and p.pts is not None)
            for i in outs
        }
        for n in range(loops):
            for packet in packets:
                if n and packet.dts < 0:  # the AAC priming packet belongs before the first loop only
                    continue
                shift = n * spans[packet.stream.index]
                packet.pts = None if packet.pts is None else packet.pts + shift
                packet.dts += shift
                packet.stream = outs[packet.stream.index]
                dst.mux(packet)
                packet.pts = None if packet.pts is None else packet.pts - shift
                packet.dts -= shift
    return path
