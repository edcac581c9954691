"""The long-video run's tools (infra/bench/long_videos.py): looped clips and the documented table."""

from __future__ import annotations

import json
from pathlib import Path

import av
from reelscope.infra.bench.long_videos import table
from reelscope.infra.sample_media import cut_clip, loop_file


def test_a_looped_file_covers_every_loop_with_video_and_audio(tmp_path: Path) -> None:
    base = cut_clip(tmp_path / "base.mp4", cut_frame=25, frames=50, fps=25, tone_s=1.0, silence_s=1.0)
    looped = loop_file(base, tmp_path / "looped.mp4", 3)
    with av.open(str(looped)) as container:
        assert abs(container.duration / av.time_base - 6.0) < 0.1
        frames = sum(1 for _ in container.decode(video=0))
    with av.open(str(looped)) as container:
        audio_s = sum(f.samples for f in container.decode(audio=0)) / 48_000
    assert frames == 150
    assert audio_s > 5.9


def test_the_table_says_when_a_count_is_not_met(tmp_path: Path) -> None:
    record = {
        "video": "5min",
        "segments": 300,
        "shots": 60,
        "publishing_s": 171.2,
        "submitted_to_complete_s": 177.0,
        "status": "degraded",
        "counts": {"loudness": "293/298", "scene": "9000/9000"},
        "warnings": ["loudness: 5 of 298 results never arrived"],
        "stack_cpu_s": 400.0,
        "shed": {"faces": "98/120 (every 8th at most)"},
        "load_average": {
            "start_1_5_15": [4.0, 4.0, 4.0],
            "end_1_5_15": [2.0, 3.0, 4.0],
            "max_1min_during": 9.0,
        },
    }
    out = tmp_path / "runs.jsonl"
    out.write_text(
        json.dumps(record) + "\n" + json.dumps({**record, "counts": {"scene": "9000/9000"}}) + "\n"
    )
    degraded, complete = table(out)
    assert "**not met**: scene 9000/9000; loudness 293/298" in degraded
    assert "loudness: 5 of 298 results never arrived" in degraded
    assert "every count met: scene 9000/9000" in complete
    assert "| faces 98/120 |" in complete
