"""The live aggregates the dashboard reads, on a real embedded ClickHouse (chdb): a video counts once per run
in `videos_per_minute`, however many times its finished row is written."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from reelscope.infra.core.settings import Settings
from reelscope.schemas.events import VideoFailed, VideoStarted
from reelscope.schemas.records import Media
from reelscope.schemas.tables import SCHEMA_VERSIONS, VIDEOS_PER_MINUTE
from reelscope.sinks.aggregator import apply_lifecycle, empty_video
from reelscope.sinks.store import Store, now

from tests.test_grafana import DASHBOARD


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(Settings(state_dir=tmp_path))
    yield s
    s.close()


def finished_by_status(store: Store) -> dict[str, int]:
    """What the Grafana panel reads: finished runs per status (over every minute)."""
    rows = store.rows(f"SELECT status, count() AS n FROM {store.db}.videos_per_minute FINAL GROUP BY status")
    return {r["status"]: int(r["n"]) for r in rows}


def write_history(store: Store) -> None:
    """The videos rows the aggregator writes: a failed video twice (on failure, then with its failed
    document), a complete one, and a video id submitted again (a second run) that completes again."""
    failed = apply_lifecycle(
        empty_video("bad"), VideoFailed(video_id="bad", reason="x", failed_at=time.time())
    )
    store.upsert_video(failed)
    store.upsert_video({**failed, "completed_at": now()})  # the failed document, stored later
    store.upsert_video({**failed, "frames_published": 3})  # a late lifecycle event on a failed video
    for started_at in (time.time() - 600, time.time()):
        started = VideoStarted(video_id="ok", uri="file:///a.mp4", media=Media(), started_at=started_at)
        row = apply_lifecycle(empty_video("ok"), started)
        store.upsert_video({**row, "status": "processing"})
        store.upsert_video({**row, "status": "complete", "completed_at": now()})


def test_a_failed_video_is_counted_once_and_each_run_once(store: Store) -> None:
    store.create_tables()
    write_history(store)
    assert finished_by_status(store) == {"failed": 1, "complete": 2}
    assert sum(r["videos"] for r in store.rows(panel_sql("Videos per minute"))) == 3


def panel_sql(title: str) -> str:
    """A ClickHouse panel's query as Grafana sends it for the last hour (its macro expanded)."""
    dashboard = json.loads(DASHBOARD.read_text())
    (sql,) = [t["rawSql"] for p in dashboard["panels"] if p["title"].startswith(title) for t in p["targets"]]
    return sql.replace("$__timeFilter(minute)", "minute >= now() - INTERVAL 1 HOUR")


def test_a_version_3_database_gets_the_new_table_refilled_from_videos(store: Store) -> None:
    """Version 3 summed one row per insert (the double count); the upgrade rebuilds the table from videos."""
    store.create_tables()
    db = store.db
    store.client.command(f"DROP VIEW {db}.videos_per_minute_mv")
    store.client.command(f"DROP TABLE {db}.videos_per_minute")
    store.client.command(
        f"CREATE TABLE {db}.videos_per_minute (minute DateTime, status LowCardinality(String), videos UInt64) "
        f"ENGINE = SummingMergeTree ORDER BY (minute, status)"
    )
    store.client.command(
        f"CREATE MATERIALIZED VIEW {db}.videos_per_minute_mv TO {db}.videos_per_minute AS SELECT "
        f"toStartOfMinute(completed_at) AS minute, status, count() AS videos FROM {db}.videos "
        f"WHERE status IN ('complete', 'degraded', 'failed') AND completed_at IS NOT NULL GROUP BY minute, status"
    )
    write_history(store)
    doubled = store.scalar(f"SELECT sum(videos) FROM {db}.videos_per_minute WHERE status = 'failed'")
    assert doubled == 3  # what the old view made of one failed video
    store.client.command(f"TRUNCATE TABLE {db}.schema_version")
    store.insert(SCHEMA_VERSIONS, [{"version": 3, "applied_at": now()}])

    store.create_tables()

    columns = store.rows(
        "SELECT name FROM system.columns WHERE database = %(d)s AND table = 'videos_per_minute' ORDER BY position",
        d=db,
    )
    assert [c["name"] for c in columns] == VIDEOS_PER_MINUTE.names
    assert finished_by_status(store) == {"failed": 1, "complete": 1}  # videos FINAL: the last run of `ok`
    store.upsert_video({**empty_video("new"), "status": "degraded", "completed_at": now()})
    assert finished_by_status(store)["degraded"] == 1  # the re-created view feeds it
