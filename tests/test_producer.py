"""The producer's decoding, sampling and chunking, without a broker."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from reelscope.analyzers.registry import enabled_analyzers
from reelscope.analyzers.scene import SceneAnalyzer
from reelscope.infra.core.ingest import UriRejected, resolve_uri
from reelscope.infra.core.settings import ProducerSettings, Settings
from reelscope.producers.events import VideoEventSource
from reelscope.schemas.events import AudioChunk, Frame, VideoFailed, VideoFinished, VideoStarted

from tests.media import cut_clip, late_audio, mpegts_copy, textured, tone, write_video

ANALYZERS = ["scene", "color", "quality", "loudness"]


def events(path: Path, names: list[str] = ANALYZERS, **producer: object) -> list:
    source = VideoEventSource(
        "vid", str(path), path.as_uri(), enabled_analyzers(names), ProducerSettings(**producer), 900_000
    )
    return list(source.events())


def of(evs: list, cls: type) -> list:
    return [e for e in evs if isinstance(e, cls)]


def test_counter_pts_come_from_the_stream(shared_media: Path) -> None:
    evs = events(shared_media / "counter.mp4", ["scene"])
    frames = of(evs, Frame)
    assert [f.pts_s for f in frames] == pytest.approx([i * 0.1 for i in range(30)], abs=1e-6)
    assert frames[-1].final and not any(f.final for f in frames[:-1])
    assert of(evs, VideoFinished)[0].expected == {"scene": 30}


def test_late_start_keeps_its_offset(shared_media: Path) -> None:
    evs = events(shared_media / "delayed_start.mp4", ["scene"])
    started = of(evs, VideoStarted)[0]
    assert started.media.start_s == pytest.approx(1.075, abs=1e-3)
    assert of(evs, Frame)[0].pts_s == pytest.approx(1.075, abs=1e-3)


def test_sampling_rates_sizes_and_expected_counts(tmp_path: Path) -> None:
    clip = cut_clip(tmp_path / "c.mp4", frames=50, fps=25, size=(640, 360), tone_s=1.0, silence_s=1.0)
    evs = events(clip)
    frames = of(evs, Frame)
    assert len(frames) == 50  # scene samples every frame
    sampled = [f for f in frames if "color" in f.targets]
    assert [round(f.pts_s, 2) for f in sampled] == [0.0, 1.0]  # 1 fps
    assert max(f.width for f in frames if "quality" in f.targets) == 640
    scene_side = SceneAnalyzer.sampling.max_side
    assert (
        max(f.width for f in frames if f.targets == ["scene"]) == scene_side
    )  # small when only scene wants it
    chunks = of(evs, AudioChunk)
    finished = of(evs, VideoFinished)[0]
    assert finished.expected == {"scene": 50, "color": 2, "quality": 2, "loudness": len(chunks)}
    assert all(c.channel == -1 and c.sample_rate == 16000 for c in chunks)
    assert chunks[-1].final and chunks[0].start_s == pytest.approx(0.0, abs=0.03)
    assert sum(len(c.pcm) for c in chunks) // 2 == pytest.approx(2.0 * 16000, rel=0.05)


def test_rotation_is_honoured(tmp_path: Path) -> None:
    image = np.zeros((32, 64, 3), np.uint8)
    clip = write_video(tmp_path / "r.mp4", 5, 5, lambda i: image, rotation=90)
    evs = events(clip, ["color"])
    started = of(evs, VideoStarted)[0]
    frame = of(evs, Frame)[0]
    assert started.media.rotation == 90 and (started.media.width, started.media.height) == (32, 64)
    assert (frame.width, frame.height) == (32, 64)


def test_stereo_with_different_channels_is_split(shared_media: Path) -> None:
    from reelscope.analyzers.base import Analyzer, Sampling

    class SplitProbe(Analyzer):
        name = "split_probe"
        input = "audio"
        group = "audio"
        sampling = Sampling(audio_channels="split")

        def analyze(self, items):  # type: ignore[no-untyped-def]
            return [{} for _ in items]

    source = VideoEventSource(
        "v",
        str(shared_media / "stereo_diarization.wav"),
        "x",
        {"loudness": enabled_analyzers(["loudness"])["loudness"], "split_probe": SplitProbe},
        ProducerSettings(),
        900_000,
    )
    chunks = of(list(source.events()), AudioChunk)
    assert {c.channel for c in chunks if "split_probe" in c.targets} == {0, 1}
    assert {c.channel for c in chunks if "loudness" in c.targets} == {-1}


def test_mono_duplicated_to_stereo_is_not_split(tmp_path: Path) -> None:
    signal = tone(2.0)
    clip = write_video(tmp_path / "s.mp4", 0, 25, None, audio=np.stack([signal, signal]))
    from reelscope.producers.events import channels_differ

    assert not channels_differ(np.stack([signal, signal]) * 32767)
    assert channels_differ(np.stack([signal, np.roll(tone(2.0, 300.0), 7)]) * 32767)
    evs = events(clip, ["loudness"])
    assert of(evs, VideoStarted)[0].media.audio_channels == 2


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "not a readable video"), (b"\x00" * 4096, "not a readable video")],
)
def test_unreadable_files_fail_with_a_reason(tmp_path: Path, content: bytes, reason: str) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    evs = events(bad)
    assert len(evs) == 1 and isinstance(evs[0], VideoFailed) and reason in evs[0].reason


def test_too_long_video_fails(tmp_path: Path) -> None:
    clip = write_video(tmp_path / "l.mp4", 50, 25, lambda i: textured(64, 64, 1))
    evs = events(clip, max_duration_s=1.0)
    assert isinstance(evs[-1], VideoFailed) and "maximum" in evs[-1].reason


def test_uri_policy(tmp_path: Path) -> None:
    clip = tmp_path / "ok.mp4"
    clip.write_bytes(b"x")
    settings = Settings(producer=ProducerSettings(allowed_roots=[str(tmp_path)]))
    assert resolve_uri(clip.as_uri(), settings) == str(clip)
    assert resolve_uri(str(clip), settings) == str(clip)
    with pytest.raises(UriRejected, match="outside the allowed roots"):
        resolve_uri("/etc/passwd", settings)
    with pytest.raises(UriRejected, match="outside the allowed roots"):
        resolve_uri(str(tmp_path / ".." / ".." / "etc" / "passwd"), settings)
    with pytest.raises(UriRejected, match="scheme"):
        resolve_uri("http://169.254.169.254/latest", settings)
    with pytest.raises(UriRejected, match="not found"):
        resolve_uri(str(tmp_path / "missing.mp4"), settings)


def test_audio_reaches_the_end_of_the_stream(tmp_path: Path) -> None:
    """The resampler's last milliseconds are flushed: every input sample is published (at 16 kHz)."""
    rate, samples = 44_100, 54_437  # 1.2344 s, a length that leaves samples in the resampler
    path = tmp_path / "exact.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((tone(samples / rate, rate=rate) * 32767).astype("<i2").tobytes())
    chunks = of(events(path, ["loudness"]), AudioChunk)
    published = sum(len(c.pcm) for c in chunks) // 2
    assert abs(published - samples * 16_000 / rate) <= 1
    assert chunks[-1].end_s == pytest.approx(samples / rate, abs=1e-3)


@pytest.mark.parametrize("absolute", [True, False])
def test_a_playlist_reads_no_other_file(tmp_path: Path, absolute: bool) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    segment = mpegts_copy(cut_clip(outside / "secret.mp4", frames=25), outside / "secret.ts")
    playlist = tmp_path / "root" / "clip.m3u8"
    playlist.parent.mkdir()
    entry = segment.as_uri() if absolute else "../outside/secret.ts"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\n{entry}\n#EXT-X-ENDLIST\n")
    evs = events(playlist)
    assert len(evs) == 1 and isinstance(evs[0], VideoFailed), evs
    assert "names other files" in evs[0].reason and "playlists" in evs[0].reason
    # renamed, FFmpeg does not take it for a playlist at all
    renamed = playlist.with_suffix(".mp4")
    renamed.write_bytes(playlist.read_bytes())
    assert [type(e) for e in events(renamed)] == [VideoFailed]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF"])
def test_a_still_image_is_refused_with_a_reason(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "photo.mp4"
    Image.fromarray(textured(64, 48, 1)).save(path, format=fmt)
    evs = events(path)
    assert len(evs) == 1 and isinstance(evs[0], VideoFailed)
    assert "still image" in evs[0].reason and "not a video" in evs[0].reason


def test_a_late_audio_stream_starts_where_its_samples_do(tmp_path: Path) -> None:
    """An audio-only file whose stream starts at 80,000 s: the video starts there too (no 80,000 s gap)."""
    path = late_audio(tmp_path / "late.m4a", 80_000.0, 2.0)
    evs = events(path, ["loudness"])
    started, chunks = of(evs, VideoStarted)[0], of(evs, AudioChunk)
    assert started.media.start_s == pytest.approx(80_000, abs=0.1)
    assert started.media.duration_s - started.media.start_s < 3 and len(chunks) in (2, 3)


def test_source_stream_keeps_every_channel_at_the_source_rate_within_the_event_limit(tmp_path: Path) -> None:
    """audio_features asks for the `source` stream: 6 channels at 48 kHz, interleaved, each chunk a whole
    number of 100 ms blocks that fits the broker's limit; loudness still gets the 16 kHz mono mix."""
    from reelscope.infra.bench.eval_audio import write_wav
    from reelscope.schemas.events import SOURCE_CHANNEL, encode
    from reelscope.stream_processors.runtime import item_key, to_item

    rate, seconds = 48_000, 2.5
    t = np.arange(int(rate * seconds)) / rate
    channels = np.stack([0.1 * (k + 1) * np.sin(2 * np.pi * 220 * (k + 1) * t) for k in range(6)])
    path = write_wav(tmp_path / "six.wav", channels, rate)
    limit = 300_000  # a 1 s chunk of 6 x 48 kHz int16 (576 KB) would not fit
    source = VideoEventSource(
        "v", str(path), "x", enabled_analyzers(["audio_features", "loudness"]), ProducerSettings(), limit
    )
    chunks = of(list(source.events()), AudioChunk)
    full = [c for c in chunks if "audio_features" in c.targets]
    assert {(c.sample_rate, c.channels, c.channel) for c in full} == {(rate, 6, SOURCE_CHANNEL)}
    assert item_key(full[0]) == "s000000"  # its own stream, apart from the mix's m000000
    assert all(len(encode(c)) < limit for c in full)
    assert full[0].end_s - full[0].start_s == pytest.approx(0.5)  # the 100 ms blocks that fit
    assert sum(c.end_s - c.start_s for c in full) == pytest.approx(seconds)
    item = to_item(full[1])
    assert item.samples.shape == (6, int(0.5 * rate))
    assert np.abs(item.samples[5]).max() == pytest.approx(0.6, abs=0.01)  # channel order kept
    assert {(c.sample_rate, c.channels) for c in chunks if "loudness" in c.targets} == {(16_000, 1)}


def test_small_frames_from_the_decoder_planes_match_ffmpeg_scaling(shared_media: Path) -> None:
    """The cut detector's 160 px frames read off the 4:2:0 planes look like swscale's area-scaled RGB;
    a reduction under 4x (or a format other than yuv420p) is left to swscale."""
    pytest.importorskip("cv2")
    import av
    from reelscope.producers.decode import _from_planes, upright_rgb

    with av.open(str(shared_media / "counter.mp4")) as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height, frame.format.name) == (1920, 1080, "yuv420p")
    mine = _from_planes(frame, 160, 90)
    assert mine is not None and mine.shape == (90, 160, 3)
    ffmpeg = frame.reformat(width=160, height=90, interpolation="AREA").to_ndarray(format="rgb24")
    assert np.abs(mine.astype(int) - ffmpeg.astype(int)).mean() < 3
    assert np.array_equal(upright_rgb(frame, 160), mine)
    assert _from_planes(frame, 640, 360) is None
    assert _from_planes(frame.reformat(format="yuv444p"), 160, 90) is None


def test_frames_are_encoded_from_full_range_planes_with_the_colours_of_rgb(shared_media: Path) -> None:
    """The JPEG made from the 4:2:0 planes (range expanded by swscale) decodes to the RGB frame that
    swscale's own RGB conversion gives: no washed-out limited range, no colour shift."""
    import av
    import simplejpeg
    from reelscope.producers.decode import upright_planes, upright_rgb
    from reelscope.producers.events import encode_jpeg_planes

    with av.open(str(shared_media / "counter.mp4")) as container:
        frame = next(container.decode(video=0))
    for side in (160, 640):
        planes = upright_planes(frame, side)
        y, u, v = planes
        assert y.shape == (side * 9 // 16, side) and u.shape == v.shape == (side * 9 // 32, side // 2)
        decoded = simplejpeg.decode_jpeg(encode_jpeg_planes(planes, 95, 900_000)).astype(int)
        rgb = upright_rgb(frame, side).astype(int)
        assert abs(decoded.mean() - rgb.mean()) < 1.5  # limited range left in: 2.3 levels off here
        assert np.abs(decoded - rgb).mean() < 6


def test_audio_nobody_listens_to_is_not_decoded(tmp_path: Path) -> None:
    from reelscope.producers.decode import DecodedAudio, iterate, open_media

    clip = cut_clip(tmp_path / "c.mp4", frames=25, fps=25, size=(320, 180), tone_s=1.0, silence_s=0.0)
    container, info = open_media(str(clip))
    try:
        kinds = {type(i) for i in iterate(container, info, audio_wanted=False)}
    finally:
        container.close()
    assert info.media.has_audio and DecodedAudio not in kinds
    evs = events(clip, ["scene"])
    assert len(of(evs, Frame)) == 25 and not of(evs, AudioChunk)
