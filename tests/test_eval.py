"""`reelscope eval` as CI runs it: each aspect's figure must meet its target (docs/quality.md).

The clips are generated (the layouts users post, fades and dissolves between shots) and go through the
producer, the analyzers and the reconstruction as a pushed video does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reelscope.infra.cli import main

pytest.importorskip("scenedetect", reason="the test extra installs PySceneDetect, the cut reference")


def test_cuts_and_shots_meet_their_targets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval.json"
    assert main(["eval", "cuts", "shots", "--out", str(out)]) == 0, capsys.readouterr().out
    scores = json.loads(out.read_text())
    ours = scores["cuts: reelscope"]["detail"]
    letterboxed = ours["letterbox_caption_sticker"]
    assert letterboxed["reelscope"] == letterboxed["truth"] == [38, 80, 117]
    assert scores["cuts: PySceneDetect's true cuts that reelscope misses"]["figure"] == "0"
    shots = scores["shots: transitions into another shot delimit shots, same-shot fades do not"]["detail"]
    assert shots["fade_to_black_new_shot"]["shots"] == 3 and shots["fade_to_black_same_shot"]["shots"] == 2
    assert shots["dissolve"]["shots"] == 3
    assert "| cuts: reelscope | 21/21 within ±1 frame, 0 false" in capsys.readouterr().out
