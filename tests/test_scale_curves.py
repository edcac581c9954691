"""`reelscope bench --curves` at a tiny size through the real stack (broker, groups, serve with chdb)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reelscope.infra.bench.scale import markdown, measure
from reelscope.infra.cli import parser


def test_curves_measure_every_cell_through_the_real_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REELSCOPE_ANALYZERS", '["scene", "color", "loudness"]')
    monkeypatch.setenv("REELSCOPE_BATCH__MAX_STRIDE", "1")  # every item analyzed: the cost is the full cost
    # one stack for both curves: its start-up (models of serve and finalize) is most of this test's time
    report = measure([2.0], [1, 2], 2.0, tmp_path, timeout_s=600, warmup=False, one_stack=True)

    cells = [(c["curve"], c["videos"], c["video_seconds"]) for c in report["cells"]]
    assert cells == [("length", 1, 2.0), ("concurrency", 1, 2.0), ("concurrency", 2, 2.0)]
    assert report["analyzers"] == ["color", "loudness", "scene"]
    for cell in report["cells"]:
        assert cell["statuses"] == {"complete": cell["videos"]}, cell
        assert cell["wall_s"] > 0
        processes = set(cell["cpu_s_by_process"])
        assert {"broker", "serve", "group-light-0", "group-audio-0", "group-finalize-0"} <= processes
        assert cell["cpu_s"] > 0 and cell["cpu_s_by_process"]["serve"] > 0  # serve decodes and publishes
        assert cell["cpu_s_per_video_s"] == pytest.approx(
            cell["cpu_s"] / (cell["videos"] * cell["video_seconds"]), abs=1e-3
        )
        assert all(cell["peak_rss_mib"][p] > 0 for p in processes), cell["peak_rss_mib"]
        # the cell's own results only: the histograms' difference, not the stack's lifetime
        light = cell["result_latency"]["light"]
        assert light["results"] > 0 and light["p95_s"] is not None
        assert set(cell["analyzer_seconds"]) == {"scene", "color", "loudness"}
        # to 0.1 ms: color's 320 px frames cost about a millisecond each, 2 s of them rounded to 0.00 at 10 ms
        assert cell["analyzer_seconds"]["color"] > 0 and cell["analyzer_seconds"]["scene"] > 0
        assert cell["load_average_1m"]["max"] >= 0
    one, two = report["cells"][1:]
    assert two["result_latency"]["audio"]["results"] == 2 * one["result_latency"]["audio"]["results"]

    table = markdown(json.loads(json.dumps(report)))
    assert table.count("\n| length |") + table.count("\n| concurrency |") == 3


def test_curve_options_parse_as_lists_and_leave_the_plain_bench_alone() -> None:
    args = parser().parse_args(["bench", "--curves", "--lengths", "10,60", "--concurrency", "1,4,16"])
    assert (args.curves, args.lengths, args.concurrency) == (True, [10.0, 60.0], [1, 4, 16])
    plain = vars(parser().parse_args(["bench"]))
    assert not {"curves", "curve", "lengths", "concurrency", "cell_timeout", "no_shed"} & set(plain)


@pytest.mark.parametrize("value", ["1,0", "a", ","])
def test_a_bad_list_is_one_line(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["bench", "--curves", "--concurrency", value])
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
