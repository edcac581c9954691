"""Prometheus metrics of every reelscope process, defined once.

The serve process exposes them at the API's /metrics; each processor group process serves them on
`REELSCOPE_METRICS_PORT` when set (`reelscope up` gives each process its own port and writes it to
state_dir/run/NAME.metrics). Consumer lag comes from the producer's own acknowledged offsets against each
group's committed offsets (see producers/backpressure.py), never from the broker's end offsets.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

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
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
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


def serve_metrics(port: int) -> None:
    """Expose this process's metrics over HTTP on 127.0.0.1:port (0: do not)."""
    if port:
        start_http_server(port, addr="127.0.0.1")
