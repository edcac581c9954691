"""Who speaks when: a speaker embedding per voiced 1 s chunk, clustered per video into speakers and turns.

By default the embeddings are GE2E's (Resemblyzer's `pretrained.pt`, 256 dims, run with torch alone:
common/ge2e.py). Setting `model` to a transformers x-vector / speaker-verification model (a local directory
or a model id already in the local Hugging Face cache, e.g. `microsoft/wavlm-base-plus-sv`) uses it
instead; its threshold must then be calibrated for it. Chunks under the loudness gate are not embedded
(`silent: true`), nor chunks in which Silero VAD hears no speech (`speech: false`: a tone, music, noise).

A payload keeps the embedding's direction quantised to int8 (the vector scaled so its largest component is
127): cosine distances survive to ~1e-4 and 512 dims stay near 2 KB of JSON.

`video_summary` diarizes from the payloads alone (restart-safe, numpy only, no model): average-linkage
agglomerative clustering with a cosine distance threshold, clusters of fewer than `min_speaker_chunks`
chunks folded into the nearest larger one, a lone chunk between two chunks of another speaker relabelled to
them (1 s embeddings are noisy; a real one-second interjection is lost with it), speakers named S0, S1 ...
by first appearance, and turns merged from consecutive chunks of one speaker across at most one silent
second. The threshold travels in each payload, so the aggregator uses the processor's setting. When
channel-split transcription already labels ch0/ch1, those labels come from the channels, not from here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field
from reelscope.analyzers.base import AudioItem, ItemResult
from reelscope.analyzers.common.audio_model import (
    AudioModelOptions,
    PackagedDefault,
    check_rate,
    loudness_gate,
)


class SpeakersOptions(AudioModelOptions):
    """Speaker embeddings and diarization (REELSCOPE_SPEAKERS__*). `model` empty (the default): the
    packaged GE2E encoder; `device`, `dtype` and `batch_size` apply to a configured x-vector model only."""

    distance_threshold: float = Field(default=0.32, gt=0.0, lt=2.0)
    """Average-linkage cosine distance under which clusters of chunks are one speaker (model-dependent).

    0.32 is calibrated for GE2E on 1 s chunks of real voices: the two speakers of stereo_diarization.wav
    (one per channel), the hotwords.mp3 speaker and Asterisk's Allison (asterisk-core-sounds-en-wav and
    -es-wav, one woman in two languages). Mean pairwise distance within one speaker 0.19-0.24 (Allison
    English against Allison Spanish 0.28), between different speakers 0.36-0.50. On their chunks in
    sequence every threshold from 0.30 to 0.35 finds exactly the four speakers (0.28: Allison splits by
    language; 0.38: two speakers merge); 0.32 sits in the middle of that range."""
    min_speaker_chunks: int = Field(default=2, ge=1)
    """Clusters with fewer voiced chunks are folded into the nearest larger cluster."""
    speech_gate: bool = True
    """Embed only chunks in which Silero VAD hears speech (at least 250 ms; faster-whisper's model, as
    transcription runs it): a speaker model given a tone or music makes up a speaker, and GE2E costs
    ~10-17 ms CPU a chunk against Silero's ~4 ms. False: every chunk over the loudness gate."""
    threads: int = Field(default=1, ge=0)
    """torch threads for the packaged GE2E encoder (0: the process's budget); one, since its LSTM steps are
    too small to share and a second thread spins on a loaded machine (analyzers/common/torch_device.py)."""


TURN_GAP_S = 1.0
"""Consecutive chunks of one speaker separated by at most this much silence are one turn."""
MAX_TURNS = 500


def quantize(vector: np.ndarray) -> list[int]:
    """The vector's direction as int8 values (largest magnitude 127)."""
    peak = float(np.max(np.abs(vector))) if vector.size else 0.0
    if peak == 0.0 or not np.isfinite(peak):
        return [0] * int(vector.size)
    return np.rint(vector / peak * 127.0).astype(np.int64).tolist()


def average_linkage(x: np.ndarray, threshold: float) -> np.ndarray:
    """Flat clusters of the rows of x: average-linkage agglomerative clustering on cosine distance, cut at
    `threshold`. Nearest-neighbour chain with Lance-Williams updates (O(n^2) time and memory); a reciprocal
    nearest pair farther apart than the threshold can never join anything under it, so both retire."""
    n = len(x)
    labels = np.arange(n)
    if n < 2:
        return labels
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    dist = np.clip(1.0 - unit @ unit.T, 0.0, 2.0)
    np.fill_diagonal(dist, np.inf)
    size = np.ones(n)
    active = np.ones(n, bool)
    chain: list[int] = []
    while active.sum() > 1:
        if not chain:
            chain.append(int(np.flatnonzero(active)[0]))
        a = chain[-1]
        row = np.where(active, dist[a], np.inf)
        b = int(np.argmin(row))
        if len(chain) > 1 and row[chain[-2]] <= row[b]:
            b = chain[-2]
        if len(chain) < 2 or b != chain[-2]:
            chain.append(b)
            continue
        chain = chain[:-2]
        if dist[a, b] > threshold:
            active[a] = active[b] = False
            continue
        merged = (size[a] * dist[a] + size[b] * dist[b]) / (size[a] + size[b])
        dist[a], dist[:, a] = merged, merged
        dist[a, a] = np.inf
        dist[b], dist[:, b] = np.inf, np.inf
        size[a] += size[b]
        active[b] = False
        labels[labels == b] = a
    return labels


def diarize(
    embeddings: np.ndarray, threshold: float, min_chunks: int = 2, times: Sequence[tuple[float, float]] = ()
) -> list[int]:
    """Speaker index per embedding (0, 1, ... by first appearance); see the module docstring."""
    n = len(embeddings)
    if n == 0:
        return []
    x = embeddings.astype(np.float64)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    labels = average_linkage(x, threshold)
    counts = Counter(labels.tolist())
    big = [c for c, k in counts.items() if k >= min_chunks]
    if big:
        centroids = {c: x[labels == c].mean(axis=0) for c in big}
        for c, k in counts.items():
            if k < min_chunks:
                centre = x[labels == c].mean(axis=0)
                labels[labels == c] = max(big, key=lambda b: float(centroids[b] @ centre))
    if times:
        labels = _relabel_islands(labels, times)
    order: dict[int, int] = {}
    for c in labels.tolist():
        order.setdefault(c, len(order))
    return [order[c] for c in labels.tolist()]


def _relabel_islands(labels: np.ndarray, times: Sequence[tuple[float, float]]) -> np.ndarray:
    """A single chunk whose adjacent neighbours on both sides share another label takes their label."""
    out = labels.copy()
    for i in range(1, len(labels) - 1):
        touching = times[i][0] - times[i - 1][1] < 1e-3 and times[i + 1][0] - times[i][1] < 1e-3
        if touching and labels[i - 1] == labels[i + 1] != labels[i]:
            out[i] = labels[i - 1]
    return out


def speaker_turns(results: list[ItemResult]) -> tuple[list[ItemResult], list[str]]:
    """The voiced results (with embeddings) of one video and their speaker labels S0, S1, ..."""
    voiced = [r for r in results if r.payload.get("embedding")]
    if not voiced:
        return [], []
    threshold = float(voiced[0].payload.get("threshold", SpeakersOptions().distance_threshold))
    min_chunks = int(voiced[0].payload.get("min_chunks", 2))
    x = np.asarray([r.payload["embedding"] for r in voiced], dtype=np.float64)
    labels = diarize(x, threshold, min_chunks, [(r.start_s, r.end_s) for r in voiced])
    return voiced, [f"S{k}" for k in labels]


def merge_turns(voiced: list[ItemResult], speakers: list[str]) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    for r, speaker in zip(voiced, speakers, strict=True):
        if turns and turns[-1]["speaker"] == speaker and r.start_s - turns[-1]["end_s"] <= TURN_GAP_S + 1e-3:
            turns[-1]["end_s"] = round(r.end_s, 3)
        else:
            turns.append({"speaker": speaker, "start_s": round(r.start_s, 3), "end_s": round(r.end_s, 3)})
    return turns


PACKAGED_MODEL = "resemblyzer-ge2e (256-d)"


class SpeakersAnalyzer(PackagedDefault):
    """Speaker embedding per voiced mix chunk; speakers and turns per video."""

    name = "speakers"
    head = "xvector"
    requires = ("torch", "resemblyzer", "faster_whisper")
    """What the packaged GE2E needs, and the speech gate (faster-whisper's Silero VAD); a configured model needs
    transformers too (checked at load)."""
    model_name = PACKAGED_MODEL
    packaged_weights = ("Resemblyzer", ("pretrained.pt",), "MIT (upstream; the wheel states none)")
    options_model = SpeakersOptions
    options: SpeakersOptions

    def load_packaged(self) -> Any:
        from reelscope.analyzers.common.ge2e import Ge2eEncoder

        return Ge2eEncoder(self.options.threads)

    def _embed(self, items: Sequence[AudioItem]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Any]:
        if self.options.model:
            if not self._model.loaded:
                raise RuntimeError("speakers: load() was not called")
            return self._model.run_voiced(items, self.options.min_rms_dbfs, self.options.speech_gate)
        encoder = self.packaged
        payloads, voiced = loudness_gate(
            check_rate(self.name, items), self.options.min_rms_dbfs, self.options.speech_gate
        )
        embeddings = encoder.embed([item.samples for _, item in voiced]) if voiced else None
        return payloads, [p for p, _ in voiced], embeddings

    def analyze(self, items: Sequence[AudioItem]) -> list[dict[str, Any]]:
        payloads, voiced, embeddings = self._embed(items)
        if embeddings is not None:
            for payload, vector in zip(voiced, embeddings, strict=True):
                payload["embedding"] = quantize(vector)
                payload["threshold"] = self.options.distance_threshold
                payload["min_chunks"] = self.options.min_speaker_chunks
        return payloads

    @classmethod
    def timeline_results(cls, results: list[ItemResult], segment_s: float) -> list[ItemResult]:
        """Voiced chunks with their speaker label in place of the embedding."""
        voiced, speakers = speaker_turns(results)
        return [
            ItemResult(r.item_key, r.start_s, r.end_s, {"speaker": s})
            for r, s in zip(voiced, speakers, strict=True)
        ]

    @classmethod
    def segment_fields(cls, payloads: list[dict[str, Any]]) -> dict[str, Any]:
        labels = Counter(p["speaker"] for p in payloads if p.get("speaker"))
        return {"speaker": labels.most_common(1)[0][0]} if labels else {}

    @classmethod
    def video_summary(cls, results: list[ItemResult]) -> dict[str, Any] | None:
        if not results:
            return None
        voiced, speakers = speaker_turns(results)
        turns = merge_turns(voiced, speakers)
        seconds: Counter[str] = Counter()
        for r, speaker in zip(voiced, speakers, strict=True):
            seconds[speaker] += r.end_s - r.start_s
        return {
            "speaker_count": len(seconds),
            "speakers": [
                {"speaker": s, "seconds": round(seconds[s], 3)}
                for s in sorted(seconds, key=lambda s: int(s[1:]))
            ],
            "turns": turns[:MAX_TURNS],
            "turn_count": len(turns),
            "voiced_chunks": len(voiced),
            "distance_threshold": voiced[0].payload.get("threshold") if voiced else None,
        }
