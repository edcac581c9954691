"""Chaos run: random kill -9 of any stack process (the broker included) while videos stream in.

`run_chaos` starts the supervised local stack (`up(supervise=True)`: the broker on its default storage, serve,
one process per group), submits a video through the API every `submit_every_s`, and kills a random stack
process (never the supervisor) every 5–20 s. A watcher reads the reconstructions topic the whole time, as a
downstream consumer would. After `seconds` the killing stops, every video gets `settle_s` to finish, and the
report says what became of each: complete, degraded or failed (with its reason), unfinished (lost); result
rows stored more than once; output events per completion (missing, duplicated).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from reelscope.infra.client import api_token, fetch
from reelscope.infra.core.settings import Settings
from reelscope.infra.sample_media import cut_clip
from reelscope.infra.stack import api_url, down, running, up
from reelscope.schemas.events import Reconstruction, decode
from reelscope.schemas.records import TERMINAL
from reelscope.sinks.store import Store

LOSS_WINDOW_S = 10.0
"""A completion this close before a broker kill may have had its output event only on the dead broker."""
CHAOS_ANALYZERS = '["scene", "color", "quality", "loudness", "transcription"]'
"""What `python -m reelscope.infra.bench.chaos` runs unless REELSCOPE_ANALYZERS says otherwise: stateless groups (light,
audio), a stateful one (speech) and the finalize group, light enough for a 2-core machine."""


@dataclass
class ChaosReport:
    seconds: float
    kills: Counter[str] = field(default_factory=Counter)
    videos: int = 0
    status: Counter[str] = field(default_factory=Counter)
    failed_reasons: dict[str, str] = field(default_factory=dict)
    unfinished: list[str] = field(default_factory=list)
    missing_rows: dict[str, dict[str, int]] = field(default_factory=dict)
    """Complete videos whose stored results fall short of the expected counts: analyzer -> missing."""
    redelivered_rows: int = 0
    """Result rows written more than once and collapsed by FINAL (at-least-once delivery, idempotent keys)."""
    unnamed: list[str] = field(default_factory=list)
    """Failed videos without a reason, degraded ones without warnings."""
    outputs_missing: list[str] = field(default_factory=list)
    """Finished videos whose stored completion has no Reconstruction event on the topic."""
    outputs_lost_with_broker: list[str] = field(default_factory=list)
    """Of those, the videos completed at most `LOSS_WINDOW_S` before a broker kill: their event was on the
    memory-storage broker that died before the watcher read it (see docs/reliability.md)."""
    broker_kills_at: list[float] = field(default_factory=list)
    outputs_duplicated: dict[str, int] = field(default_factory=dict)
    """Completions whose Reconstruction event was published more than once: video -> copies."""

    @property
    def trials(self) -> int:
        return sum(self.kills.values())

    def summary(self) -> dict[str, Any]:
        """The report as plain JSON-able values (asdict would turn a Counter's items into keys)."""
        plain = {k: dict(v) if isinstance(v, Counter) else v for k, v in vars(self).items()}
        return {**plain, "trials": self.trials}


def kind(name: str) -> str:
    """The process type of a stack process name: broker, serve, or the group (group-audio-0 -> audio)."""
    return name.removeprefix("group-").rpartition("-")[0] if name.startswith("group-") else name


def submit(settings: Settings, uri: str, video_id: str, give_up_s: float = 600.0) -> int:
    """POST /videos until the API accepts it (the serve process may be restarting); returns the retries."""
    body = json.dumps({"uri": uri, "video_id": video_id}).encode()
    token = api_token(settings)
    deadline = time.monotonic() + give_up_s
    tries = 0
    while True:
        request = urllib.request.Request(
            f"{api_url(settings)}/videos", body, {"Content-Type": "application/json"}, method="POST"
        )
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=15):
                return tries
        except (urllib.error.HTTPError, OSError) as exc:
            if isinstance(exc, urllib.error.HTTPError) and exc.code < 500:
                raise
            tries += 1
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


class OutputWatch(threading.Thread):
    """Reads the reconstructions topic from the start, like a downstream consumer, through broker restarts.

    A message is identified by (partition, offset, timestamp, video, completion), so reading the new topic
    again after a broker restart counts nothing twice, while a second publish of a completion is counted."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.seen: set[tuple[int, int, int, str, str]] = set()
        self.restart = threading.Event()
        self.done = threading.Event()

    def copies(self) -> Counter[tuple[str, str]]:
        """(video, completion id) -> distinct Reconstruction messages seen."""
        return Counter((video, cid) for *_, video, cid in set(self.seen))

    def run(self) -> None:
        asyncio.run(self._watch())

    async def _watch(self) -> None:
        while not self.done.is_set():
            self.restart.clear()
            consumer = AIOKafkaConsumer(
                **self.settings.kafka.client_kwargs(), enable_auto_commit=False, auto_offset_reset="earliest"
            )
            try:
                await consumer.start()
                topic = self.settings.topics.reconstructions
                parts = consumer.partitions_for_topic(topic) or set()
                if not parts:
                    await asyncio.sleep(1.0)
                    continue
                consumer.assign([TopicPartition(topic, p) for p in parts])
                await consumer.seek_to_beginning()
                while not (self.done.is_set() or self.restart.is_set()):
                    batches = await consumer.getmany(timeout_ms=200)
                    for records in batches.values():
                        for r in records:
                            event = decode(r.value or b"", expect=Reconstruction)
                            self.seen.add(
                                (r.partition, r.offset, r.timestamp, event.video_id, event.completion_id)
                            )
            except Exception:  # the broker is down or restarting: read again from the start
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(BaseException):  # aiokafka's stop may raise a fetch's cancellation
                    await consumer.stop()


def _kill_loop(
    settings: Settings, report: ChaosReport, watch: OutputWatch, until: float, rng: random.Random
) -> None:
    while time.monotonic() < until:
        time.sleep(rng.uniform(5.0, 20.0))
        victims = {n: p for n, p in running(settings).items() if n != "supervisor"}
        if not victims or time.monotonic() >= until:
            continue
        name = rng.choice(sorted(victims))
        try:
            os.kill(victims[name], signal.SIGKILL)
        except ProcessLookupError:
            continue
        report.kills[kind(name)] += 1
        if name == "broker":
            report.broker_kills_at.append(time.time())
            watch.restart.set()


def _terminal(settings: Settings, video_ids: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for video_id in video_ids:
        try:
            row = fetch(settings, f"/videos/{video_id}")
        except OSError:
            continue
        if row and row["status"] in TERMINAL:
            out[video_id] = row
    return out


def run_chaos(
    settings: Settings,
    seconds: float,
    media_dir: Path,
    seed: int = 0,
    submit_every_s: float = 8.0,
    settle_s: float = 300.0,
    say: Any = print,
) -> ChaosReport:
    """Run the chaos for `seconds`, let the videos settle, stop the stack and report (see the module doc)."""
    rng = random.Random(seed)
    media_dir.mkdir(parents=True, exist_ok=True)
    clips = [
        cut_clip(
            media_dir / f"chaos{i}.mp4",
            cut_frame=100 + 50 * i,
            frames=250 + 100 * i,
            tone_s=3,
            silence_s=4 + 4 * i,
        )
        for i in range(3)
    ]
    report = ChaosReport(seconds=seconds)
    up(settings, timeout_s=240, supervise=True)
    watch = OutputWatch(settings)
    watch.start()
    video_ids: list[str] = []
    until = time.monotonic() + seconds
    killer = threading.Thread(target=_kill_loop, args=(settings, report, watch, until, rng), daemon=True)
    killer.start()
    try:
        while time.monotonic() < until:
            video_id = f"chaos{seed}-{len(video_ids):04d}"
            submit(settings, clips[len(video_ids) % len(clips)].resolve().as_uri(), video_id)
            video_ids.append(video_id)
            time.sleep(submit_every_s)
        killer.join()
        say(f"chaos: {report.trials} kills {dict(report.kills)}; {len(video_ids)} videos; settling")
        deadline = time.monotonic() + settle_s
        finished: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline and len(finished) < len(video_ids):
            finished.update(_terminal(settings, [v for v in video_ids if v not in finished]))
            time.sleep(2.0)
        time.sleep(5.0)  # the last output events reach the watcher
    finally:
        watch.done.set()
        watch.join(timeout=30)
        down(settings)
    report.videos = len(video_ids)
    _account(settings, report, video_ids, watch.copies())
    return report


def _account(
    settings: Settings,
    report: ChaosReport,
    video_ids: list[str],
    copies: Counter[tuple[str, str]],
) -> None:
    """Fill the report from the store (read once the stack is down) and the output events seen."""
    store = Store(settings)
    try:
        for video_id in video_ids:
            row = store.video(video_id)  # the truth, once the stack is down
            if row is None or row["status"] not in TERMINAL:
                report.unfinished.append(video_id)
                continue
            report.status[row["status"]] += 1
            if row["status"] == "failed":
                report.failed_reasons[video_id] = row.get("error") or ""
            named = bool(row.get("error")) if row["status"] == "failed" else bool(row["warnings"])
            if row["status"] != "complete" and not named:
                report.unnamed.append(video_id)
            counts = {a: n for a, (n, _) in store.result_counts(video_id).items()}
            raw = store.scalar(f"SELECT count() FROM {store.db}.results WHERE video_id = %(v)s", v=video_id)
            report.redelivered_rows += raw - sum(counts.values())
            if row["status"] == "complete":
                expected = json.loads(store.video(video_id)["expected"] or "{}")
                short = {a: n - counts.get(a, 0) for a, n in expected.items() if counts.get(a, 0) < n}
                if short:
                    report.missing_rows[video_id] = short
            cid = store.stored_completion(video_id)
            n = copies.get((video_id, cid or ""), 0)
            if n == 0:
                report.outputs_missing.append(video_id)
                done = row["completed_at"]
                done_s = (
                    done.replace(tzinfo=done.tzinfo or UTC).timestamp() if isinstance(done, datetime) else 0.0
                )
                if any(0 <= kill - done_s <= LOSS_WINDOW_S for kill in report.broker_kills_at):
                    report.outputs_lost_with_broker.append(video_id)
            elif n > 1:
                report.outputs_duplicated[video_id] = n
    finally:
        store.close()


def chaos_env(state_dir: Path) -> dict[str, str]:
    """An isolated stack: its own state dir, broker port (so `up` starts and owns the broker), API port."""
    from reelscope.infra.broker import free_port

    return {
        "REELSCOPE_STATE_DIR": str(state_dir),
        "REELSCOPE_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "REELSCOPE_API_PORT": str(free_port()),
        "REELSCOPE_KAFKA__SESSION_TIMEOUT_MS": "6000",
        "REELSCOPE_TOPICS__PARTITIONS": "2",
        "REELSCOPE_AGGREGATOR__COMPLETION_TIMEOUT_S": "60",
        "REELSCOPE_ANALYZERS": os.environ.get("REELSCOPE_ANALYZERS", CHAOS_ANALYZERS),
    }


def main() -> None:
    """`python -m reelscope.infra.bench.chaos --minutes 10 [--state DIR] [--seed N]`: prints the report."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description="kill -9 any stack process at random while videos stream in")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--state", type=Path, default=None, help="state dir (default: a new temporary one)")
    parser.add_argument("--submit-every", type=float, default=8.0)
    args = parser.parse_args()
    state = args.state or Path(tempfile.mkdtemp(prefix="reelscope-chaos-"))
    os.environ.update(chaos_env(state))
    report = run_chaos(
        Settings(), args.minutes * 60, state / "media", seed=args.seed, submit_every_s=args.submit_every
    )
    print(json.dumps(report.summary(), indent=2, default=list))


if __name__ == "__main__":
    main()
