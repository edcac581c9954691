"""A finished video's ingest request delivered again is not a new run; a resubmission is.

Publishing is at-least-once: a rebalance can hand a request that one ingest worker fully published (its
commit not yet past it) to another worker, which publishes the video again with the same `submitted_at`.
The aggregator once took that run's VideoStarted for a resubmission: the video went back to processing
and completed twice (two Reconstruction events).
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from reelscope.infra.client import fetch
from reelscope.infra.core.ingest import request_for_path
from reelscope.infra.core.settings import Settings
from reelscope.infra.core.topics import AGGREGATOR_GROUP
from reelscope.schemas.events import AnalyzerResult, Reconstruction, VideoFinished, VideoStarted, decode
from reelscope.schemas.records import Media, VideoStatus
from reelscope.sinks.aggregator import apply_lifecycle, completion_id, empty_video
from reelscope.sinks.store import Store, utc

from tests.conftest import stack_env, stack_running
from tests.media import cut_clip
from tests.test_pipeline import _push, read_topic, wait_done

SUBMITTED = 1_764_000_000.1234567


def _started(submitted_at: float, started_at: float) -> VideoStarted:
    return VideoStarted(
        video_id="v",
        uri="file:///v.mp4",
        media=Media(),
        submitted_at=submitted_at,
        started_at=started_at,
    )


def _finished(finished_at: float) -> VideoFinished:
    return VideoFinished(
        video_id="v", frames_published=3, chunks_published=0, expected={"color": 3}, finished_at=finished_at
    )


def _completed_row() -> dict[str, Any]:
    row = apply_lifecycle(empty_video("v"), _started(SUBMITTED, SUBMITTED + 1))
    row = apply_lifecycle(row, _finished(SUBMITTED + 5))
    return {**row, "status": VideoStatus.COMPLETE, "completed_at": utc(SUBMITTED + 6)}


@pytest.mark.parametrize("status", [VideoStatus.COMPLETE, VideoStatus.DEGRADED, VideoStatus.FAILED])
def test_a_duplicate_run_of_a_finished_request_changes_nothing(status: str) -> None:
    done = {**_completed_row(), "status": status}
    row = apply_lifecycle(done, _started(SUBMITTED, SUBMITTED + 60))
    assert row == done  # same status, same started_at: the same completion id
    if status != VideoStatus.FAILED:
        assert apply_lifecycle(row, _finished(SUBMITTED + 70)) == done


def test_a_resubmission_runs_again() -> None:
    done = _completed_row()
    row = apply_lifecycle(done, _started(SUBMITTED + 30, SUBMITTED + 31))
    assert row["status"] == VideoStatus.PROCESSING and row["completed_at"] is None
    assert completion_id(row) != completion_id(done)
    assert apply_lifecycle(row, _finished(SUBMITTED + 40))["status"] == VideoStatus.PUBLISHED


def test_unknown_submission_times_are_not_taken_for_duplicates() -> None:
    done = {**_completed_row(), "submitted_at": None}
    assert apply_lifecycle(done, _started(0.0, SUBMITTED + 60))["status"] == VideoStatus.PROCESSING


def test_the_rule_holds_on_a_row_read_back_from_clickhouse(tmp_path: Path) -> None:
    """The store keeps milliseconds: the stored submission time still matches the request's."""
    store = Store(Settings(state_dir=tmp_path / "state"))
    try:
        store.create_tables()
        store.upsert_video(_completed_row())
        stored = store.video("v")
    finally:
        store.close()
    assert stored is not None and stored["submitted_at"] != utc(SUBMITTED)  # truncated to milliseconds
    again = apply_lifecycle(stored, _started(SUBMITTED, SUBMITTED + 60))
    assert again["status"] == VideoStatus.COMPLETE and completion_id(again) == completion_id(stored)
    assert apply_lifecycle(stored, _started(SUBMITTED + 0.01, SUBMITTED + 60))["status"] == "processing"


def _completions(events: list[Any], video_id: str) -> list[tuple[str, float]]:
    """(completion id, submitted_at) of each Reconstruction event of the video, in topic order."""
    out = []
    for e in events:
        if isinstance(e, Reconstruction) and e.video_id == video_id:
            at = datetime.fromisoformat(json.loads(e.document)["timings"]["submitted_at"])
            out.append((e.completion_id, (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()))
    return out


async def _records_of(settings: Settings, video_id: str, runs: int, results: int) -> dict[Any, int]:
    """Partition -> offset after the last lifecycle event and result of the video, read from the start of
    both topics until `runs` runs finished and `results` results of it are out."""
    consumer = AIOKafkaConsumer(
        settings.topics.lifecycle,
        settings.topics.results,
        **settings.kafka.client_kwargs(),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    ends: dict[Any, int] = {}
    finished = got = 0
    try:
        while finished < runs or got < results:
            batch = await asyncio.wait_for(consumer.getmany(timeout_ms=500), 60)
            for tp, records in batch.items():
                for record in records:
                    if record.key != video_id.encode():
                        continue
                    ends[tp] = record.offset + 1
                    event = decode(record.value)
                    finished += isinstance(event, VideoFinished)
                    got += isinstance(event, AnalyzerResult)
    finally:
        await consumer.stop()
    return ends


async def _aggregator_passed(settings: Settings, ends: dict[Any, int], timeout_s: float = 180) -> None:
    """Wait until the aggregator committed past those offsets: it handled those events, and whatever they
    make it do before committing (store them, ask for the video's completion)."""
    consumer = AIOKafkaConsumer(
        **settings.kafka.client_kwargs(), group_id=AGGREGATOR_GROUP, enable_auto_commit=False
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout_s
        while [tp for tp, end in ends.items() if ((await consumer.committed(tp)) or 0) < end]:
            assert time.monotonic() < deadline, f"the aggregator did not commit past {ends}"
            await asyncio.sleep(0.2)
    finally:
        await consumer.stop()


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_a_request_delivered_again_after_completion_is_not_run_again(broker: str, tmp_path: Path) -> None:
    """On the real stack: the same IngestRequest pushed again after the video completed leaves it complete
    with its completion id and one Reconstruction event; pushed with a new submitted_at it runs again."""
    clip = cut_clip(tmp_path / "again.mp4", frames=30)
    request = request_for_path(str(clip), video_id="again")
    env = stack_env(broker, tmp_path / "state", REELSCOPE_ANALYZERS='["color"]')
    with stack_running(env) as settings:
        asyncio.run(_push(settings, [request]))
        first = wait_done(settings, "again")
        results = sum(a["expected"] for a in first["analyzers"].values())
        asyncio.run(_push(settings, [request]))  # what a rebalance does: the same request, another worker
        ends = asyncio.run(_records_of(settings, "again", runs=2, results=2 * results))
        asyncio.run(_aggregator_passed(settings, ends))
        # the duplicate run is fully handled: the video did not go back to processing, nor complete anew
        assert fetch(settings, "/videos/again")["status"] == "complete"
        assert fetch(settings, "/videos/again/reconstruction")["completion_id"] == first["completion_id"]
        resubmitted = request.model_copy(update={"submitted_at": time.time()})
        asyncio.run(_push(settings, [resubmitted]))
        events = asyncio.run(
            read_topic(
                settings,
                settings.topics.reconstructions,
                lambda evs: any(
                    abs(s - resubmitted.submitted_at) < 0.01 for _, s in _completions(evs, "again")
                ),
                180,
            )
        )
        second = wait_done(settings, "again")
    completions = _completions(events, "again")
    assert first["status"] == "complete" and second["status"] == "complete"
    # one event for the first completion, none for the duplicate run, one for the resubmission
    assert [c for c, _ in completions] == [first["completion_id"], second["completion_id"]], completions
    assert abs(completions[0][1] - request.submitted_at) < 0.01
    assert abs(completions[1][1] - resubmitted.submitted_at) < 0.01
    assert first["completion_id"] != second["completion_id"]
