"""Recovery from a broker that lost its data (a Tansu broker on memory storage restarted, a wiped cluster).

Every event of an unfinished video was on the lost topics, so nothing would ever finish it. The serve
process, which owns the store, re-ingests each unfinished video once the topics exist again: its ingest
request is re-published from the submission journal (requests accepted by the API, kept until their video
is finished) or rebuilt from the stored videos row. A video that cannot be re-ingested (nothing to rebuild
its request from, or re-ingested `MAX_REINGESTS` times already) fails with the reason
`BROKER_LOST`, so no video stays in flight forever or vanishes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from pydantic import ValidationError
from reelscope.infra.core.ingest import push
from reelscope.infra.core.kafka import send_all
from reelscope.infra.core.settings import Settings
from reelscope.schemas.events import IngestRequest, VideoFailed
from reelscope.schemas.records import IN_FLIGHT, TERMINAL, VideoStatus
from reelscope.sinks.store import Store, now

log = logging.getLogger(__name__)

BROKER_LOST = "broker lost its data"
MAX_REINGESTS = 3
"""Broker losses one video may live through; the next one fails it (a video that keeps losing its events
would otherwise be re-ingested forever)."""


def marker(settings: Settings) -> Path:
    """File the supervisor (infra/supervisor.py) writes when it saw the broker lose its data; the serve
    process it restarts recovers and removes it."""
    folder = settings.state_dir / "run"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "broker-lost"


class Journal:
    """Append-only JSON lines in the state dir: each accepted ingest request, and each re-ingest.

    The serve process writes it (API submissions, re-ingests) and so does `reelscope push` / `analyze` next
    to a local serve; an exclusive file lock keeps their appends and the serve's `compact` apart.
    `compact` keeps the lines of unfinished videos only."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.state_dir / "ingest-journal.jsonl"
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """This process's threads and the other processes writing the journal, one at a time."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock, self.path.with_suffix(".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _append(self, entry: dict[str, Any]) -> None:
        with self._locked(), self.path.open("a") as out:
            out.write(json.dumps(entry, separators=(",", ":")) + "\n")

    def submitted(self, request: IngestRequest) -> None:
        self._append({"request": request.model_dump(mode="json")})

    def reingested(self, video_id: str) -> None:
        self._append({"reingested": video_id})

    def read(self) -> tuple[dict[str, IngestRequest], Counter[str]]:
        """(video -> its last accepted request, video -> re-ingests so far)."""
        requests: dict[str, IngestRequest] = {}
        reingests: Counter[str] = Counter()
        if not self.path.exists():
            return requests, reingests
        for line in self.path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
                if "request" in entry:
                    request = IngestRequest.model_validate(entry["request"])
                    requests[request.video_id] = request
                    reingests.pop(request.video_id, None)  # submitted again: a new life
                elif "reingested" in entry:
                    reingests[str(entry["reingested"])] += 1
            except (ValueError, ValidationError):
                log.warning("journal %s: unreadable line skipped", self.path)
        return requests, reingests

    def compact(self, finished: set[str]) -> None:
        """Drop the lines of finished videos (called when the serve process starts)."""
        with self._locked():
            self._rewrite(finished)

    def _rewrite(self, finished: set[str]) -> None:
        requests, reingests = self.read()
        lines = [
            json.dumps({"request": r.model_dump(mode="json")}, separators=(",", ":"))
            for v, r in requests.items()
            if v not in finished
        ]
        lines += [
            json.dumps({"reingested": v}, separators=(",", ":"))
            for v, n in reingests.items()
            if v not in finished
            for _ in range(n)
        ]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in lines))
        tmp.replace(self.path)


def request_from_row(row: dict[str, Any]) -> IngestRequest | None:
    """The ingest request of a stored video, rebuilt from what VideoStarted recorded (None without a URI)."""
    if not row.get("uri"):
        return None
    submitted = row.get("submitted_at")
    try:
        return IngestRequest(
            video_id=row["video_id"],
            uri=row["uri"],
            metadata=json.loads(row.get("metadata") or "{}"),
            options=json.loads(row.get("options") or "{}"),
            submitted_at=submitted.timestamp() if isinstance(submitted, datetime) else time.time(),
        )
    except (ValueError, ValidationError):
        return None


def requeue(store: Store, video_id: str) -> None:
    """A stored video about to be re-ingested is processing again, from now: the aggregator must not time
    out the finished event and results the lost broker held while the request waits for the ingest worker."""
    row = store.video(video_id)
    if row is not None and row["status"] in IN_FLIGHT:
        store.upsert_video(
            {**row, "status": VideoStatus.PROCESSING, "started_at": now(), "published_at": None}
        )


def finished_ids(store: Store, video_ids: list[str]) -> set[str]:
    """Which of these videos are finished in the store (complete, degraded or failed)."""
    return {v for v in video_ids if (row := store.video(v)) is not None and row["status"] in TERMINAL}


def unfinished(store: Store, journal: Journal) -> tuple[dict[str, IngestRequest | None], Counter[str]]:
    """Video -> request to re-publish (None: cannot be rebuilt) for every video the store has in flight
    and every journalled request whose video the store does not know or has in flight."""
    requests, reingests = journal.read()
    out: dict[str, IngestRequest | None] = {}
    for row in store.open_videos():
        out[row["video_id"]] = requests.get(row["video_id"]) or request_from_row(row)
    for video_id, request in requests.items():
        if video_id in out:
            continue
        row = store.video(video_id)
        if row is None or row["status"] in IN_FLIGHT:
            out[video_id] = request
    return out, reingests


async def reingest_unfinished(
    settings: Settings, store: Store, journal: Journal, producer: AIOKafkaProducer
) -> tuple[list[str], list[str]]:
    """Re-publish the ingest request of every unfinished video, or fail it with BROKER_LOST.

    Returns (re-ingested, failed) video ids."""
    todo, reingests = await store.call(unfinished, store, journal)
    again, failed = [], []
    for video_id, request in todo.items():
        if request is None or reingests[video_id] >= MAX_REINGESTS:
            why = "nothing to rebuild its ingest request from" if request is None else "too many times"
            reason = f"{BROKER_LOST}: the video's events were lost ({why})"
            event = VideoFailed(video_id=video_id, reason=reason, stage="broker", failed_at=time.time())
            await send_all(producer, [(settings.topics.lifecycle, event)])
            failed.append(video_id)
            continue
        await store.call(requeue, store, video_id)
        await push(producer, settings, request)
        journal.reingested(video_id)
        again.append(video_id)
    log.warning(
        "%s: re-ingested %d unfinished videos, failed %d (%s)", BROKER_LOST, len(again), len(failed), failed
    )
    return again, failed
