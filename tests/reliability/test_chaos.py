"""A minute of chaos (the CI variant of `python -m reelscope.infra.bench.chaos --minutes 10`): random kill -9
of any stack process, the broker on its default memory storage included, while videos stream in; the
supervisor restarts everything, nothing by hand. Afterwards every video is finished (complete, or failed or
degraded with its reason), no result row is missing, and every completion's output event is on the topic
(unless the broker died with it) and published again only by a serve process that was killed."""

from __future__ import annotations

from pathlib import Path

import pytest
from reelscope.infra.bench.chaos import chaos_env, run_chaos
from reelscope.infra.core.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(900)
def test_a_minute_of_random_kill_9_loses_and_duplicates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in chaos_env(tmp_path / "state").items():
        monkeypatch.setenv(key, value)
    report = run_chaos(Settings(), 60, tmp_path / "media", seed=1, submit_every_s=6.0, settle_s=240)
    print(report.summary())
    assert report.trials >= 3 and report.videos >= 4
    assert report.unfinished == [] and report.unnamed == []
    assert report.missing_rows == {}
    assert set(report.outputs_missing) == set(report.outputs_lost_with_broker)
    assert sum(n - 1 for n in report.outputs_duplicated.values()) <= report.kills["serve"]
