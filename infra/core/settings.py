"""The one settings object: every knob of reelscope, read from REELSCOPE_* environment variables.

Nested values use a double underscore, e.g. REELSCOPE_BATCH__MAX_SIZE=64. Secrets are SecretStr so they
never appear in logs or reprs. Each analyzer's section (REELSCOPE_<ANALYZER>__<FIELD>) is the options model
its own module declares: `Settings` is assembled from the registry, so adding an analyzer edits nothing here.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, Field, SecretStr, create_model
from pydantic_settings import BaseSettings, SettingsConfigDict
from reelscope.analyzers.base import Analyzer, Runtime
from reelscope.analyzers.registry import all_analyzers

RETENTION_HOURS: dict[str, float] = {
    "default": 7 * 24,
    "frames": 24,
    "audio": 24,
    "shots": 24,
    "finalize": 24,
    "documents": 24,
    "dead-letter": 30 * 24,
    "heartbeats": 1,
}
"""Media and internal topics are large and only needed until processed; what consumers read stays a week; dead
letters a month, for someone to look at."""


class TopicSettings(BaseModel):
    """Topic names and partition counts; the video id is the key on every topic."""

    prefix: str = "reelscope."
    partitions: int = 4
    replication_factor: int = 1
    retention_hours: dict[str, float] = Field(default_factory=lambda: dict(RETENTION_HOURS))
    """How long each topic keeps events, by name without the prefix (`frames`, `video.transcript`, ...;
    `default` for the others). A value given here overrides that topic's default only. The compacted topics
    (reconstructions and the video parts) keep the latest event per video instead; their entry is how long
    a tombstone (a deleted video) stays for consumers to see. Applied when a topic is created."""

    def name(self, kind: str) -> str:
        return f"{self.prefix}{kind}"

    def retention_ms(self, kind: str) -> int:
        """Retention of the topic `name(kind)`, in milliseconds."""
        hours = {**RETENTION_HOURS, **self.retention_hours}
        return int(hours.get(kind, hours["default"]) * 3_600_000)

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

    @property
    def heartbeats(self) -> str:
        """Processor groups' heartbeats while a batch runs, for the aggregator (ProcessorHeartbeat)."""
        return self.name("heartbeats")


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
    schedule: bool = True
    """Latency-aware scheduling of frame and audio groups (stream_processors/scheduler.py): fair across
    videos, first seconds first, bounded wait, stated load shedding. False: analyze in fetch order."""
    window: int = 256
    """Fetched items a scheduled group holds to choose from."""
    max_batch_s: float = 1.0
    """A scheduled group's batch holds at most as many analyzed items as it analyzes in this many seconds
    (its measured seconds per item; at least one, at most max_size): what arrives while a batch runs waits
    for its end, so its length is latency (32 vision items on a loaded CPU took tens of seconds). 0:
    max_size only. A GPU group's full batch takes a fraction of a second and is not cut."""
    publish_linger_ms: int = 50
    """A result is published at most this long after it is made (not when its batch ends): results made
    within it go out together, so a batch shorter than it publishes all at its end in one burst."""
    first_s: float = 2.0
    max_hold_s: float = 10.0
    shed_above_s: float = 2.5
    """Shedding steps up while the oldest waiting item was published longer ago than this (2.5: with a
    step per second, the full stride is in force before that item is 5 s old, the latency target)..."""
    shed_below_s: float = 1.0
    """...and down again once it is younger than this."""
    max_stride: int = 8
    """At most every max_stride-th item of a video is analyzed by a sheddable analyzer; 1 turns it off."""
    shed_analyzers: list[str] = Field(
        default_factory=lambda: [
            "ocr_text",
            "faces",
            "safety",
            "color",
            "composition",
            "quality",
            "thumbnails",
            "segmentation",
            "logos",
            "objects",
            "pose",
            "hands",
            "transcription",
        ]
    )
    """Analyzers a group may shed. Frame analyzers (stateful ones never are) skip items: ones that stand
    alone, or whose tracks are built afterwards from the stored detections (shed, they are built from sparser
    ones). Left out: the ones that read every item as a sequence (scene's cuts, camera motion). An audio
    analyzer with an economy mode (`Analyzer.economy`: transcription) analyzes every item, in that mode."""
    heartbeat_s: float = 10.0
    """While a batch runs longer than this, its group says so every this many seconds (a heartbeat per
    video of the batch: stream_processors/heartbeat.py), at most a quarter of the completion timeout; the
    aggregator counts it as the group's progress. 0: off."""


class ProducerSettings(BaseModel):
    """Decoding and publishing policy."""

    jpeg_quality: int = 85
    audio_chunk_s: float = 1.0
    max_duration_s: float = 600.0
    max_pixels: int = 7680 * 4320
    decode_threads: int = 0
    max_in_flight: int = 256
    max_lag_events: int = 3000
    """Backpressure's cap: the producer waits while a processor group has more than this many of its
    published frame/audio events unprocessed (each video's first events excepted: see publisher.py)."""
    max_queue_s: float = 3.0
    """Latency-aware backpressure: the producer waits while a group's queued work (its lag divided by the
    rate it has been consuming at while busy) exceeds this many seconds, so a new item waits at most about
    this long behind the slowest group (the per-segment latency target is 5 s; the group's own batch comes
    on top). The queue of a saturated system moves into the producer. 0: the event bound only."""
    min_lag_events: int = 8
    """A group may always lag this many events (something to work on), and no more until its rate is known."""
    concurrent_videos: int = 0
    """Videos the ingest worker publishes at once, interleaved, each one's first seconds first (a request
    arriving while others are published starts at once). 0: two per CPU core, from 2 to 16 (4 on 2 cores:
    decoding is CPU-bound, more would only split it; 16 feeds a GPU machine's groups)."""

    allowed_schemes: list[str] = Field(default_factory=lambda: ["file"])
    allowed_roots: list[str] = Field(default_factory=lambda: ["/"])

    def concurrency(self) -> int:
        import os  # here, not at the top: this file's other sections are edited by others

        if self.concurrent_videos > 0:
            return self.concurrent_videos
        return max(2, min(16, 2 * (os.cpu_count() or 1)))


class AggregatorSettings(BaseModel):
    """Join and completion policy."""

    segment_s: float = 1.0
    completion_timeout_s: float = 120.0
    check_interval_s: float = 1.0
    max_busy_s: float = 900.0
    """A heartbeat of a batch that has run longer than this is not progress: the analyzer is hung (its
    process still beats), and the video times out as with a stopped group."""
    max_buffered_rows: int = 50_000


class CoreSettings(BaseSettings):
    """All of reelscope's configuration but the analyzers' sections; see README 'Configuration'."""

    model_config = SettingsConfigDict(env_prefix="REELSCOPE_", env_nested_delimiter="__", extra="ignore")

    state_dir: Path = Path(".reelscope")
    log_level: str = "INFO"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    clickhouse: ClickHouseSettings = Field(default_factory=ClickHouseSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    producer: ProducerSettings = Field(default_factory=ProducerSettings)
    aggregator: AggregatorSettings = Field(default_factory=AggregatorSettings)
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
    """A processor group process serves Prometheus metrics on metrics_host:metrics_port (0: off); serve uses
    /metrics. `reelscope up` sets it per process from metrics_base_port; a container sets it itself."""
    metrics_host: str = "127.0.0.1"
    """Where group processes serve metrics: 0.0.0.0 in a container, for a Prometheus outside it."""
    metrics_base_port: int = 19100
    """`reelscope up` serves group G's process i on metrics_base_port + 10 * (G's place in every_group()) + i,
    so the Prometheus targets (infra/grafana/prometheus.yml) stay the same across starts; 0: any free port."""
    max_upload_bytes: int = 512 * 1024 * 1024
    upload_read_timeout_s: float = 30.0
    """An upload that sends no data for this long is refused (408) and its partial file removed."""
    upload_retention_h: float = 168.0
    """Uploaded files older than this many hours are removed (0: kept forever); their rows stay."""
    min_free_bytes: int = 64 * 1024 * 1024
    models_base_url: str = ""
    """`reelscope models pull` fetches from this mirror (files by their catalog names) instead of the source."""
    models_catalog: Path | None = None
    """A JSON file of extra pullable models, {name: entry} as infra/models.py's PullEntry (site-local mirrors)."""
    """Below this much free space in state_dir, /health is not ready and uploads are refused (507)."""

    def clickhouse_dsn(self) -> str:
        return self.clickhouse.dsn or f"chdb://{(self.state_dir / 'clickhouse').resolve()}"

    @property
    def embedded_clickhouse(self) -> bool:
        return self.clickhouse_dsn().startswith("chdb://")

    def options_for(self, analyzer: type[Analyzer[Any]]) -> BaseModel | None:
        """The analyzer's section (analyzers/base.py AnalyzerConfig); None when it declares no options."""
        if analyzer.options_model is None:
            return None
        section = self.__dict__.get(analyzer.name)
        if not isinstance(section, analyzer.options_model):
            raise LookupError(
                f"these settings have no {analyzer.name!r} section: it was registered after them"
            )
        return section

    def analyzer_runtime(self) -> Runtime:
        return Runtime(state_dir=self.state_dir)


def with_analyzer_sections(core: type[CoreSettings]) -> type[CoreSettings]:
    """`core` plus one field per registered analyzer that declares options, named after it and defaulting
    to its options model's defaults, so REELSCOPE_<NAME>__<FIELD> reaches it."""
    sections: dict[str, Any] = {
        name: (cls.options_model, Field(default_factory=cls.options_model))
        for name, cls in sorted(all_analyzers().items())
        if cls.options_model is not None
    }
    clash = sections.keys() & core.model_fields.keys()
    if clash:
        raise RuntimeError(f"analyzers {sorted(clash)} are named like a settings field")
    doc = "All of reelscope's configuration, analyzers' sections included; see README 'Configuration'."
    return create_model("Settings", __base__=core, __module__=__name__, __doc__=doc, **sections)


if TYPE_CHECKING:  # checkers see the typed core; analyzer sections are reached through options_for()
    Settings = CoreSettings
else:
    Settings = with_analyzer_sections(CoreSettings)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
