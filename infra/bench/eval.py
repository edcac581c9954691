"""`reelscope eval`: the quality scorecard. Runs the product on media with known truth and prints, per
aspect, the figure and its target; exits 1 when one is below target (CI runs it as tests/test_eval.py).
docs/quality.md keeps the table and the command that produced it."""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from reelscope.infra.bench.eval_audio import score_labels, score_loudness
from reelscope.infra.bench.eval_language import score_language
from reelscope.infra.bench.eval_text import score_screen_text, score_topics, score_transcript
from reelscope.infra.bench.eval_video import score_cuts, score_shots
from reelscope.infra.bench.eval_vision import score_vision
from reelscope.infra.bench.scorecard import Score, table

ASPECTS: dict[str, Callable[[Path], list[Score]]] = {
    "cuts": score_cuts,
    "shots": score_shots,
    "loudness": score_loudness,
    "labels": score_labels,
    "transcript": score_transcript,
    "language": score_language,
    "text": score_screen_text,
    "topics": score_topics,
    "vision": score_vision,
}


def scorecard(aspects: list[str], folder: Path) -> list[Score]:
    """The scores of the named aspects (every aspect when none is named)."""
    scores: list[Score] = []
    for name in aspects or list(ASPECTS):
        scores += ASPECTS[name](folder)
    return scores


def run_eval(args: argparse.Namespace) -> int:
    """Print the scorecard (and write its details as JSON); 1 when an aspect is below its target."""
    with tempfile.TemporaryDirectory() as tmp:
        scores = scorecard(args.aspect or [], Path(tmp))
    print(table(scores))
    if args.out:
        details = {s.aspect: {"figure": s.figure, "met": s.met, "detail": s.detail} for s in scores}
        Path(args.out).write_text(json.dumps(details, indent=1, default=str))
    return 0 if all(s.met is not False for s in scores) else 1
