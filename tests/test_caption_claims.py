"""A composed caption never claims "no people" that no analyzer looked for (issue 15, item 7).

The document is built from stored result rows (sinks/reconstruction.build), the shot context from it, and
the caption from the context, as the finalize group and the captions analyzer do.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from reelscope.analyzers.common.compose_caption import compose_caption
from reelscope.analyzers.common.describe import compose_description
from reelscope.analyzers.registry import all_analyzers
from reelscope.sinks import reconstruction

from tests.test_active_speaker import rows

SECONDS = 4


def _caption(analyzers: dict[str, list[tuple[float, float, dict[str, Any] | None]]]) -> str:
    """The caption of the first shot of a 4 s video whose analyzers stored these results (expected: one
    result per second for each)."""
    enabled = {n: all_analyzers()[n] for n in ("color", *analyzers)}
    colour = [(float(i), i + 1.0, {"brightness": 0.5, "palette": []}) for i in range(SECONDS)]
    stored = rows("color", colour) + [r for n, results in analyzers.items() for r in rows(n, results)]
    expected = {"color": SECONDS, **{n: SECONDS for n in analyzers}}
    video = {
        "video_id": "v",
        "duration_s": float(SECONDS),
        "has_video": True,
        "has_audio": False,
        "expected": json.dumps(expected),
    }
    doc = reconstruction.build(video, stored, enabled, 1.0, enrich=False)
    context = reconstruction.shot_context(doc, doc["shots"][0])
    caption = compose_caption(float(SECONDS), context)
    description = compose_description([{**doc["shots"][0], "caption": caption}], "", [], doc)
    assert "no people" not in description or "no people" in caption  # the description only repeats it
    return caption


EMPTY_FACES = {"faces": [], "face_count": 0}


def test_faces_that_looked_and_found_nobody_may_say_so() -> None:
    faces = [(float(i), i + 1.0, EMPTY_FACES) for i in range(SECONDS)]
    assert "no people" in _caption({"faces": faces})


@pytest.mark.parametrize(
    ("case", "analyzers"),
    [
        ("faces failed on every item", {"faces": [(float(i), i + 1.0, None) for i in range(SECONDS)]}),
        ("faces failed on one item", {"faces": [(0.0, 1.0, None)] + [(float(i), i + 1.0, EMPTY_FACES) for i in range(1, SECONDS)]}),
        ("faces results missing", {"faces": [(0.0, 1.0, EMPTY_FACES)]}),
        ("pose failed while faces found nobody", {
            "faces": [(float(i), i + 1.0, EMPTY_FACES) for i in range(SECONDS)],
            "pose": [(float(i), i + 1.0, None) for i in range(SECONDS)],
        }),
        ("no analyzer that finds people ran", {}),
    ],
)  # fmt: skip
def test_no_caption_claims_no_people_when_a_finder_failed_or_was_absent(
    case: str, analyzers: dict[str, list[tuple[float, float, dict[str, Any] | None]]]
) -> None:
    caption = _caption(analyzers)
    assert "no people" not in caption, (case, caption)
    assert "nothing detected" in caption, (case, caption)
