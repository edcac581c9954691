"""Speech emotion and sound events on tiny random transformers models saved like real checkpoints: the
analyzer's batched, padded run over chunks of two interleaved videos must give, chunk by chunk, what the
model gives each chunk alone; and the per-video spans/events are checked on synthetic payloads."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reelscope.analyzers.base import AudioItem, ItemResult
from reelscope.analyzers.sound_events import SoundEventsAnalyzer, SoundEventsOptions, label_events
from reelscope.analyzers.speech_emotion import SpeechEmotionAnalyzer, SpeechEmotionOptions, emotion_spans

RATE = 16_000
EMOTIONS = ["neutral", "happy", "angry", "sad"]
SOUNDS = ["Speech", "Music", "Applause", "Laughter"]


def tiny_emotion_model(path: Path) -> Path:
    """A 2-layer random wav2vec2 classifier with a feature extractor that returns attention masks."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    config = Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(16, 16, 16),
        conv_kernel=(10, 3, 3),
        conv_stride=(5, 4, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        classifier_proj_size=16,
        initializer_range=0.5,  # spread-out logits, so a wrong chunk or a padding leak shows
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        num_labels=len(EMOTIONS),
        id2label=dict(enumerate(EMOTIONS)),
        label2id={label: i for i, label in enumerate(EMOTIONS)},
    )
    config.reelscope_provenance = "random-test"
    torch.manual_seed(0)
    Wav2Vec2ForSequenceClassification(config).save_pretrained(path)
    Wav2Vec2FeatureExtractor(return_attention_mask=True, do_normalize=True).save_pretrained(path)
    return path


def tiny_ast_model(path: Path, *, marker: bool = True) -> Path:
    """A 2-layer random Audio Spectrogram Transformer on 32 mel bins x 128 frames (1.28 s)."""
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    config = ASTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        num_mel_bins=32,
        max_length=128,
        initializer_range=0.5,
        num_labels=len(SOUNDS),
        id2label=dict(enumerate(SOUNDS)),
        label2id={label: i for i, label in enumerate(SOUNDS)},
    )
    if marker:
        config.reelscope_provenance = "random-test"
    torch.manual_seed(1)
    ASTForAudioClassification(config).save_pretrained(path)
    ASTFeatureExtractor(num_mel_bins=32, max_length=128).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("transformers")
    pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("audio_models")
    return {
        "emotion": tiny_emotion_model(root / "emotion"),
        "ast": tiny_ast_model(root / "ast"),
        "ast_unmarked": tiny_ast_model(root / "ast_unmarked", marker=False),
    }


def voice(seconds: float, f0: float, seed: int) -> np.ndarray:
    """A harmonic tone with vibrato and a little noise: different per f0 and seed."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * RATE)) / RATE
    phase = 2 * np.pi * f0 * t + 3 * np.sin(2 * np.pi * 5 * t)
    wave = sum(np.sin(k * phase) / k for k in range(1, 6))
    return (0.2 * wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def chunks(video_id: str, samples: np.ndarray) -> list[AudioItem]:
    n = -(-len(samples) // RATE)
    return [
        AudioItem(
            video_id=video_id,
            index=i,
            start_s=float(i),
            end_s=min(i + 1.0, len(samples) / RATE),
            samples=samples[i * RATE : (i + 1) * RATE],
            sample_rate=RATE,
            first=i == 0,
            final=i == n - 1,
        )
        for i in range(n)
    ]


def interleave(a: list[AudioItem], b: list[AudioItem]) -> list[AudioItem]:
    out = []
    for i in range(max(len(a), len(b))):
        out += a[i : i + 1] + b[i : i + 1]
    return out


def two_videos() -> list[AudioItem]:
    """Video a: 2 s of voice, 1 s of silence, 1 s of voice; video b: 2.4 s of voice (short last chunk)."""
    a = np.concatenate([voice(2, 140, 1), np.zeros(RATE, np.float32), voice(1, 220, 2)])
    return interleave(chunks("a", a), chunks("b", voice(2.4, 300, 3)))


@functools.cache
def reference_model(path: Path) -> tuple[Any, Any]:
    import transformers

    extractor = transformers.AutoFeatureExtractor.from_pretrained(path)
    return extractor, transformers.AutoModelForAudioClassification.from_pretrained(path).eval()


def reference_logits(path: Path, samples: np.ndarray) -> np.ndarray:
    """The model on one chunk alone, through transformers' own classes (no analyzer code)."""
    import torch

    extractor, model = reference_model(path)
    with torch.inference_mode():
        return model(**extractor(samples, sampling_rate=RATE, return_tensors="pt")).logits[0].numpy()


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def test_speech_emotion_batch_matches_each_chunk_alone(models: dict[str, Path]) -> None:
    options = SpeechEmotionOptions(model=str(models["emotion"]), top_k=4, batch_size=4)
    analyzer = SpeechEmotionAnalyzer(options)
    analyzer.load()
    assert analyzer.describe_model() == (str(models["emotion"]), "random-test")
    items = two_videos()
    payloads = analyzer.analyze(items)
    assert len(payloads) == len(items) == 7
    silent = [(i.video_id, i.index) for i, p in zip(items, payloads, strict=True) if p["silent"]]
    assert silent == [("a", 2)]
    assert all("labels" not in p for p in payloads if p["silent"])
    tops = set()
    for item, payload in zip(items, payloads, strict=True):
        if payload["silent"]:
            continue
        scores = {x["label"]: x["score"] for x in payload["labels"]}
        assert set(scores) == set(EMOTIONS)
        expected = softmax(reference_logits(models["emotion"], item.samples))
        # the short last chunk of b is padded in the batch; its attention mask must hide the padding
        for label, p in zip(EMOTIONS, expected, strict=True):
            assert scores[label] == pytest.approx(p, abs=2e-4), (item.video_id, item.index, label)
        assert payload["top"] == EMOTIONS[int(np.argmax(expected))]
        assert [x["score"] for x in payload["labels"]] == sorted(scores.values(), reverse=True)
        tops.add(tuple(scores.values()))
    assert len(tops) == 6, "every voiced chunk has its own scores"
    assert all(len(json.dumps(p)) < 600 for p in payloads)


def test_sound_events_sigmoid_scores_and_active_labels(models: dict[str, Path]) -> None:
    options = SoundEventsOptions(model=str(models["ast"]), top_k=3, min_score=0.5)
    analyzer = SoundEventsAnalyzer(options)
    analyzer.load()
    assert analyzer.describe_model()[1] == "random-test"
    items = two_videos()
    payloads = analyzer.analyze(items)
    assert len(payloads) == len(items)
    # -70 dBFS gate: the digital silence is skipped here too
    assert [p["silent"] for p in payloads] == [i.video_id == "a" and i.index == 2 for i in items]
    for item, payload in zip(items, payloads, strict=True):
        if payload["silent"]:
            continue
        logits = reference_logits(models["ast"], item.samples)
        expected = 1 / (1 + np.exp(-logits.astype(np.float64)))
        order = np.argsort(-expected)[:3]
        assert [x["label"] for x in payload["labels"]] == [SOUNDS[i] for i in order]
        assert [x["score"] for x in payload["labels"]] == pytest.approx(expected[order], abs=2e-4)
        assert payload["active"] == [SOUNDS[i] for i in order if round(expected[i], 4) >= 0.5]

    unmarked = SoundEventsAnalyzer(SoundEventsOptions(model=str(models["ast_unmarked"])))
    unmarked.load()
    assert unmarked.describe_model() == (str(models["ast_unmarked"]), "configured")


def test_unconfigured_is_left_out_and_cannot_load(tmp_path: Path) -> None:
    assert not SpeechEmotionAnalyzer.configured(SpeechEmotionOptions())
    assert SpeechEmotionAnalyzer.configured(SpeechEmotionOptions(model="some/model"))
    with pytest.raises(RuntimeError, match="no model configured"):
        SpeechEmotionAnalyzer().load()
    for cls in (SpeechEmotionAnalyzer, SoundEventsAnalyzer):
        with pytest.raises(RuntimeError, match="not called"):
            cls().analyze(chunks("v", voice(1, 200, 0)))
    pytest.importorskip("transformers")
    missing = SpeechEmotionAnalyzer(SpeechEmotionOptions(model=str(tmp_path / "none")))
    with pytest.raises(RuntimeError, match="cannot load"):
        missing.load()
    assert SoundEventsAnalyzer().options.activation == "sigmoid"
    assert SpeechEmotionAnalyzer().options.activation == "auto"


def test_registered_speech_emotion_off_without_a_model_sound_events_on_by_default() -> None:
    from reelscope.analyzers.registry import all_analyzers, enabled_analyzers

    registry = all_analyzers()
    assert registry["speech_emotion"] is SpeechEmotionAnalyzer
    assert registry["sound_events"] is SoundEventsAnalyzer
    enabled = set(enabled_analyzers(["auto"], None))
    assert "speech_emotion" not in enabled
    assert ("sound_events" in enabled) == SoundEventsAnalyzer.available()


def scored(t: float, scores: dict[str, float], active: tuple[str, ...] = ()) -> ItemResult:
    labels = [{"label": k, "score": v} for k, v in sorted(scores.items(), key=lambda kv: -kv[1])]
    payload = {"silent": False, "labels": labels, "top": labels[0]["label"], "score": labels[0]["score"]}
    return ItemResult(f"a{int(t):06d}", t, t + 1.0, {**payload, "active": list(active)})


def silent(t: float) -> ItemResult:
    return ItemResult(f"a{int(t):06d}", t, t + 1.0, {"silent": True, "rms_dbfs": -80.0})


def test_emotion_spans_smooth_one_odd_second_but_not_across_silence() -> None:
    happy = {"happy": 0.7, "sad": 0.2, "neutral": 0.1}
    odd = {"sad": 0.5, "happy": 0.4, "neutral": 0.1}
    angry = {"angry": 0.8, "neutral": 0.2}
    results = [
        scored(0, happy),
        scored(1, happy),
        scored(2, odd),  # smoothed with its neighbours: happy (0.6) beats sad (0.3)
        scored(3, happy),
        silent(4),
        scored(5, happy),  # same label after a silence: a new span
        scored(6, happy),
        scored(7, angry),
        scored(8, angry),
        scored(9, angry),
    ]
    spans = emotion_spans(results)
    assert [(s["label"], s["start_s"], s["end_s"]) for s in spans] == [
        ("happy", 0.0, 4.0),
        ("happy", 5.0, 7.0),
        ("angry", 7.0, 10.0),
    ]
    # smoothed happy scores of chunks 0-3: windows {0,1}, {0,1,2}, {1,2,3}, {2,3}
    assert spans[0]["score"] == pytest.approx((0.7 + 0.6 + 0.6 + 0.55) / 4, abs=1e-4)
    summary = SpeechEmotionAnalyzer.video_summary(results)
    assert summary is not None
    assert summary["dominant"] == "happy" and summary["seconds"] == {"happy": 6.0, "angry": 3.0}
    assert summary["classified_chunks"] == 9
    assert SpeechEmotionAnalyzer.video_summary([silent(0), silent(1)]) is None


def test_sound_events_merge_runs_per_label() -> None:
    music = {"Music": 0.9, "Speech": 0.6}
    results = [
        scored(0, {"Music": 0.9}, ("Music",)),
        scored(1, music, ("Music", "Speech")),
        scored(2, music, ("Music", "Speech")),
        scored(3, {"Speech": 0.8, "Music": 0.1}, ("Speech",)),
        silent(4),
        scored(5, {"Applause": 0.7, "Laughter": 0.6}, ("Applause", "Laughter")),
        scored(6, {"Applause": 0.5}, ("Applause",)),
        scored(8, {"Laughter": 0.4}, ()),  # nothing active; 7 is missing
    ]
    events = label_events(results)
    assert [(e["label"], e["start_s"], e["end_s"], e["score"]) for e in events] == [
        ("Music", 0.0, 3.0, 0.9),
        ("Speech", 1.0, 4.0, pytest.approx((0.6 + 0.6 + 0.8) / 3, abs=1e-4)),
        ("Applause", 5.0, 7.0, 0.6),
        ("Laughter", 5.0, 6.0, 0.6),
    ]
    summary = SoundEventsAnalyzer.video_summary(results)
    assert summary is not None
    assert summary["seconds"] == {"Music": 3.0, "Speech": 3.0, "Applause": 2.0, "Laughter": 1.0}
    assert summary["top_labels"] == {"Music": 3, "Speech": 1, "Applause": 2, "Laughter": 1}


def test_segment_fields_take_the_best_mean_label() -> None:
    a = scored(0, {"happy": 0.6, "sad": 0.4}).payload
    b = scored(1, {"sad": 0.9, "happy": 0.1}).payload
    assert SpeechEmotionAnalyzer.segment_fields([a, b]) == {"label": "sad", "score": 0.65}
    assert SpeechEmotionAnalyzer.segment_fields([silent(0).payload]) == {"silent": True}
