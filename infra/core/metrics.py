"""Prometheus metrics of every reelscope process, defined once.

The serve process exposes them at the API's /metrics; each processor group process serves them on
`REELSCOPE_METRICS_PORT` when set (`reelscope up` gives each process a stable port, `group_metrics_port`,
and writes it to state_dir/run/NAME.metrics). Consumer lag comes from the producer's own acknowledged
offsets against each group's committed offsets (see producers/backpressure.py), never from the broker's end
offsets.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server
from reelscope.analyzers.registry import all_analyzers
from reelscope.infra.core.settings import Settings
from reelscope.infra.core.topics import FINALIZE

log = logging.getLogger(__name__)

EVENTS_IN = Counter("reelscope_events_in_total", "Events consumed", ["component"])
DEAD_LETTERS = Counter("reelscope_dead_letters_total", "Events sent to the dead-letter topic", ["component"])
BATCH_SIZE = Histogram(
    "reelscope_batch_size",
    "Events per consumed batch",
    ["component"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 512),
)
BATCH_SECONDS = Histogram("reelscope_batch_seconds", "Time to handle one batch", ["component"])
RESULTS_OUT = Counter("reelscope_results_out_total", "Analyzer results published", ["group", "analyzer"])
ANALYZER_SECONDS = Counter("reelscope_analyzer_seconds_total", "Time spent inside an analyzer", ["analyzer"])
ANALYZER_FAILURES = Counter("reelscope_analyzer_failures_total", "Items an analyzer failed on", ["analyzer"])
RESULT_LATENCY = Histogram(
    "reelscope_result_latency_seconds",
    "From an input event's broker timestamp to its result's acknowledgement",
    ["group"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 7.5, 10, 15, 20, 30, 60),
)
"""Buckets dense around the 5 s target: with only 5, 10 and 30 a p95 read from them was interpolated far from
the truth (8.5 s where the results said 6.4; 27.5 where no result took over 17)."""
BACKPRESSURE_SECONDS = Counter(
    "reelscope_backpressure_seconds_total", "Time the producer waited for processor groups to catch up"
)
CONSUMER_LAG = Gauge(
    "reelscope_consumer_lag_events",
    "Events this producer published that a group has not committed",
    ["group"],
)
VIDEOS_FINISHED = Counter("reelscope_videos_finished_total", "Videos finished by the aggregator", ["status"])
VIDEOS_PUBLISHED = Counter("reelscope_videos_published_total", "Videos decoded and published", ["outcome"])


PORTS_PER_GROUP = 10
"""Metrics ports each group has under `reelscope up`: at most this many processes per group."""


def every_group() -> list[str]:
    """Every group `reelscope process --group` runs, whatever is installed: the analyzer groups (sorted),
    then finalize. The deployments (infra/docker-compose.yml, infra/k8s/) are checked against it."""
    return [*sorted({cls.group for cls in all_analyzers().values()}), FINALIZE]


def group_metrics_port(settings: Settings, group: str, index: int) -> int:
    """The metrics port of a group's index-th process under `reelscope up`; 0 (any free port) when
    metrics_base_port is 0, or for processes past the first PORTS_PER_GROUP of a group."""
    if not settings.metrics_base_port or index >= PORTS_PER_GROUP:
        return 0
    return settings.metrics_base_port + PORTS_PER_GROUP * every_group().index(group) + index


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Expose this process's metrics over HTTP on host:port (0: do not). A port already taken is logged and
    the process runs on without metrics: its work matters more than its figures."""
    if port:
        try:
            start_http_server(port, addr=host)
        except OSError as exc:
            log.error("metrics not served: %s:%d is taken (%s)", host, port, exc)
