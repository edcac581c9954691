"""Speaker embeddings from a tiny random WavLM x-vector model saved like a real checkpoint (each chunk's
batched embedding must equal the model's embedding of that chunk alone), and diarization checked on
synthetic embeddings with known speakers and turns, and against SciPy's average linkage."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reelscope.analyzers.base import ItemResult
from reelscope.analyzers.speakers import SpeakersAnalyzer, SpeakersOptions, average_linkage, diarize, quantize

from tests.test_audio_classes import RATE, two_videos

DIMS = 512


def tiny_xvector_model(path: Path) -> Path:
    import torch
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMForXVector

    config = WavLMConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(16, 16, 16),
        conv_kernel=(10, 3, 3),
        conv_stride=(5, 4, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        tdnn_dim=(16, 16),
        tdnn_kernel=(3, 1),
        tdnn_dilation=(1, 1),
        xvector_output_dim=24,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        initializer_range=0.5,
    )
    config.reelscope_provenance = "random-test"
    torch.manual_seed(2)
    WavLMForXVector(config).save_pretrained(path)
    Wav2Vec2FeatureExtractor(return_attention_mask=True, do_normalize=True).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    pytest.importorskip("torch")
    return tiny_xvector_model(tmp_path_factory.mktemp("xvector") / "wavlm")


@functools.cache
def reference_model(path: Path) -> tuple[Any, Any]:
    import transformers

    extractor = transformers.AutoFeatureExtractor.from_pretrained(path)
    return extractor, transformers.AutoModelForAudioXVector.from_pretrained(path).eval()


def reference_embedding(path: Path, samples: np.ndarray) -> np.ndarray:
    import torch

    extractor, model = reference_model(path)
    with torch.inference_mode():
        inputs = extractor(samples, sampling_rate=RATE, return_tensors="pt")
        return model(**inputs).embeddings[0].numpy().astype(np.float64)


def cosine(a: Any, b: Any) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_embeddings_per_voiced_chunk_match_each_chunk_alone(model_dir: Path) -> None:
    analyzer = SpeakersAnalyzer(SpeakersOptions(model=str(model_dir), batch_size=3, speech_gate=False))
    analyzer.load()
    assert analyzer.describe_model() == (str(model_dir), "random-test")
    items = two_videos()
    payloads = analyzer.analyze(items)
    assert len(payloads) == len(items) == 7
    assert [p["silent"] for p in payloads] == [i.video_id == "a" and i.index == 2 for i in items]
    references = []
    for item, payload in zip(items, payloads, strict=True):
        if payload["silent"]:
            assert "embedding" not in payload and payload["rms_dbfs"] < -100
            continue
        assert len(payload["embedding"]) == 24 and max(map(abs, payload["embedding"])) == 127
        reference = reference_embedding(model_dir, item.samples)
        # batched (the short last chunk of b padded and masked) == alone, up to the int8 rounding
        assert cosine(payload["embedding"], reference) > 0.9995, (item.video_id, item.index)
        references.append(reference)
    # and each chunk got its own embedding, not a neighbour's
    similar = [cosine(a, b) for i, a in enumerate(references) for b in references[i + 1 :]]
    assert max(similar) < 0.9995
    assert all(
        p.get("threshold") == SpeakersOptions().distance_threshold for p in payloads if not p["silent"]
    )


def test_quantized_512_dim_payload_is_small_and_keeps_cosine() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, DIMS))
    b = a + 0.8 * b
    qa, qb = quantize(a), quantize(b)
    assert abs(cosine(qa, qb) - cosine(a, b)) < 2e-4
    assert cosine(qa, a) > 0.9999
    payload = {"silent": False, "rms_dbfs": -23.45, "embedding": qa, "threshold": 0.4, "min_chunks": 2}
    assert len(json.dumps(payload)) < 3000
    assert quantize(np.zeros(4)) == [0, 0, 0, 0]


def test_average_linkage_matches_scipy() -> None:
    hierarchy = pytest.importorskip("scipy.cluster.hierarchy")
    rng = np.random.default_rng(1)
    for trial in range(6):
        n = 40 + 10 * trial
        centres = rng.standard_normal((4, 16))
        x = centres[rng.integers(0, 4, n)] + (0.3 + 0.2 * trial) * rng.standard_normal((n, 16))
        for threshold in (0.15, 0.4, 0.8):
            ours = average_linkage(x, threshold)
            z = hierarchy.linkage(x, method="average", metric="cosine")
            theirs = hierarchy.fcluster(z, threshold, criterion="distance")
            assert same_partition(ours, theirs), (trial, threshold)
            assert len(set(ours.tolist())) > 1 or threshold == 0.8


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def speaker_embeddings(pattern: str, seed: int = 0, noise: float = 0.45) -> np.ndarray:
    """One noisy 512-dim embedding per letter of pattern; each letter a speaker ('.' rows are unused)."""
    rng = np.random.default_rng(seed)
    centres = {s: rng.standard_normal(DIMS) / np.sqrt(DIMS) for s in sorted(set(pattern) - {"."})}
    return np.array(
        [
            centres[s] + noise * rng.standard_normal(DIMS) / np.sqrt(DIMS) if s != "." else np.zeros(DIMS)
            for s in pattern
        ]
    )


def results_for(pattern: str, seed: int = 0) -> list[ItemResult]:
    """A video's stored speakers payloads: '.' is a silent chunk, any letter a voiced one of that speaker."""
    x = speaker_embeddings(pattern, seed)
    out = []
    for i, (s, vector) in enumerate(zip(pattern, x, strict=True)):
        payload: dict[str, Any] = {"silent": s == ".", "rms_dbfs": -80.0 if s == "." else -20.0}
        if s != ".":
            payload.update(embedding=quantize(vector), threshold=0.4, min_chunks=2)
        out.append(ItemResult(f"a{i:06d}", float(i), i + 1.0, json.loads(json.dumps(payload))))
    return out


def test_two_speakers_alternating_turns() -> None:
    # B speaks first: labels follow first appearance. A pause of one second inside A's turn is bridged;
    # two silent seconds split B's last turn from the one before.
    pattern = "BBBAAA.AABB..BBBAA"
    summary = SpeakersAnalyzer.video_summary(results_for(pattern))
    assert summary is not None
    assert summary["speaker_count"] == 2
    assert summary["turns"] == [
        {"speaker": "S0", "start_s": 0.0, "end_s": 3.0},
        {"speaker": "S1", "start_s": 3.0, "end_s": 9.0},
        {"speaker": "S0", "start_s": 9.0, "end_s": 11.0},
        {"speaker": "S0", "start_s": 13.0, "end_s": 16.0},
        {"speaker": "S1", "start_s": 16.0, "end_s": 18.0},
    ]
    assert summary["speakers"] == [{"speaker": "S0", "seconds": 8.0}, {"speaker": "S1", "seconds": 7.0}]
    assert summary["voiced_chunks"] == 15
    timeline = SpeakersAnalyzer.timeline_results(results_for(pattern), 1.0)
    assert [(r.start_s, r.payload["speaker"]) for r in timeline][:4] == [
        (0.0, "S0"),
        (1.0, "S0"),
        (2.0, "S0"),
        (3.0, "S1"),
    ]
    assert all(r.start_s not in (6.0, 11.0, 12.0) for r in timeline)
    assert SpeakersAnalyzer.segment_fields([r.payload for r in timeline[3:5]]) == {"speaker": "S1"}


def test_one_speaker_three_speakers_and_silence() -> None:
    one = SpeakersAnalyzer.video_summary(results_for("AAAA.AAAAAA"))
    assert one is not None and one["speaker_count"] == 1
    assert one["turns"] == [{"speaker": "S0", "start_s": 0.0, "end_s": 11.0}]
    three = SpeakersAnalyzer.video_summary(results_for("AAABBBCCCAAA", seed=3))
    assert three is not None and three["speaker_count"] == 3
    assert [t["speaker"] for t in three["turns"]] == ["S0", "S1", "S2", "S0"]
    quiet = SpeakersAnalyzer.video_summary(results_for("...."))
    assert quiet is not None and quiet["speaker_count"] == 0 and quiet["turns"] == []
    assert SpeakersAnalyzer.video_summary([]) is None


def test_small_clusters_fold_and_one_second_islands_relabel() -> None:
    x = speaker_embeddings("AAAAABBBBBC", seed=5)
    # C is a lone outlier chunk: too few chunks for a speaker, folded into the nearest cluster
    labels = diarize(x, 0.4, min_chunks=2)
    assert len(set(labels)) == 2 and labels[:10] == [0] * 5 + [1] * 5
    assert diarize(x, 0.4, min_chunks=1)[-1] == 2
    # a lone B second inside A's turn takes A's label when its neighbours touch it
    y = speaker_embeddings("AAABAAABB", seed=6)
    times = [(float(i), i + 1.0) for i in range(len(y))]
    assert diarize(y, 0.4, min_chunks=1, times=times) == [0, 0, 0, 0, 0, 0, 0, 1, 1]
    assert diarize(y, 0.4, min_chunks=1) == [0, 0, 0, 1, 0, 0, 0, 1, 1]


def test_packaged_by_default_and_analyze_needs_load() -> None:
    assert SpeakersAnalyzer.configured(SpeakersOptions())
    assert SpeakersAnalyzer.configured(SpeakersOptions(model="microsoft/x"))
    assert SpeakersAnalyzer().describe_model() == ("resemblyzer-ge2e (256-d)", "packaged")
    items = two_videos()[:1]
    with pytest.raises(RuntimeError, match="not called"):
        SpeakersAnalyzer().analyze(items)
