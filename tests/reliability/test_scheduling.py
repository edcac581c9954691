"""Scheduling on the real stack: three videos at once through a group that reorders and sheds, killed
with -9 mid-run. Every expected result is stored, the shed ones say so, and no video is called degraded."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from reelscope.infra.core.ingest import request_for_path
from reelscope.infra.stack import down, running, spawn, up
from reelscope.schemas.events import shed_stride
from reelscope.sinks.store import Store

from tests.media import cut_clip
from tests.reliability.test_faults import stored_counts, wait_progress
from tests.test_pipeline import _push, wait_done

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_scheduled_group_sheds_stated_and_loses_nothing_when_killed(
    env_settings: Any, tmp_path: Path
) -> None:
    settings = env_settings(
        REELSCOPE_ANALYZERS='["scene", "color", "quality"]',
        REELSCOPE_BATCH__SHED_ABOVE_S="0.3",  # shed as soon as anything waits
        REELSCOPE_BATCH__SHED_BELOW_S="0.05",
        REELSCOPE_BATCH__MAX_STRIDE="4",
        REELSCOPE_BATCH__FIRST_S="1.0",
    )
    clip = cut_clip(
        tmp_path / "c.mp4", cut_frame=150, frames=300, fps=25, size=(320, 180), tone_s=6, silence_s=6
    )
    ids = [f"v{i}" for i in range(3)]
    up(settings, timeout_s=120)
    try:
        asyncio.run(_push(settings, [request_for_path(str(clip), video_id=v) for v in ids]))
        wait_progress(settings, "v2", "scene", 50)
        os.kill(running(settings)["group-light-0"], signal.SIGKILL)  # mid-batch: it never stops consuming
        spawn(settings, "group-light-0", ["process", "--group", "light", "--name", "group-light-0"])
        docs = {v: wait_done(settings, v, timeout_s=180) for v in ids}
    finally:
        down(settings)
    store = Store(settings)
    try:
        rows = {v: store.results(v) for v in ids}
    finally:
        store.close()
    for v, doc in docs.items():
        counts, _ = stored_counts(settings, v)
        assert counts == {name: state["expected"] for name, state in doc["analyzers"].items()}  # no gap
        assert doc["status"] == "complete", (doc["analyzers"], doc["warnings"])
        assert [round(c["time_s"], 2) for c in doc["cuts"]] == [6.0]  # scene is never shed
    shed = [(v, r) for v in ids for r in rows[v] if shed_stride(json.loads(r["payload"]))]
    assert shed, "the group was behind and shed nothing"
    assert {r["analyzer"] for _, r in shed} <= {"color", "quality"}
    v, first = shed[0]
    report = docs[v]["analyzers"][first["analyzer"]]
    assert report["shed"]["skipped"] > 0 and report["shed"]["max_stride"] in (2, 4)
    assert any(n.startswith(f"{first['analyzer']}: ") and "load shedding" in n for n in docs[v]["notes"])
