"""Who speaks on screen on real recordings: a man talking to the camera, with his own voice.

The clips are PsychoPy's (its wheel, GPL-3.0, installed by .ci/install for its media only):
`demos/coder/stimuli/jwpIntro.mp4` and `tests/data/testMovie.mp4`. What they show, by eye and ear (frames
every 0.5 s, the audio's level every 0.1 s, the transcript):

- jwpIntro.mp4 (5.8 s, 640x480): one man facing the camera throughout, in front of a bookshelf. Silent,
  mouth closed, until 0.9 s; then "Hi, I'm Jon Peirce, I'm a lecturer at the University of Nottingham and
  I'm the creator of PsychoPy" until 4.8 s (a breath at 3.4-3.8 s); silent, mouth closed, to the end.
- testMovie.mp4 (7.8 s, 352x288): the same man in another room. Silent until 1.2 s (smiling at 0.5 s);
  "Hi, I'm Jon Peirce, I'm a lecturer in psychology at the University of Nottingham. I'm the principal
  author of PsychoPy" until 6.4 s (a pause at 4.3-4.9 s); silent, mouth closed, to the end.

So every second of speech comes from the one visible face. Each clip goes the product's way (the producer's
events into the faces and speakers analyzers, then the reconstruction), as `reelscope eval` runs files.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from reelscope.analyzers.common.active_speaker import MOVING, on_screen_during
from reelscope.analyzers.registry import all_analyzers
from reelscope.infra.bench.scorecard import document as run

CLIPS = {
    # clip inside PsychoPy's package: the spans of speech (s) the recording shows
    "demos/coder/stimuli/jwpIntro.mp4": [(0.9, 4.8)],
    "tests/data/testMovie.mp4": [(1.2, 6.4)],
}


def psychopy_media(relative: str) -> Path:
    """A clip in the PsychoPy wheel, located without importing PsychoPy (it is installed without its
    dependencies, for its media)."""
    spec = importlib.util.find_spec("psychopy")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("PsychoPy's wheel (its talking-face clips) is not installed (.ci/install installs it)")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        pytest.skip(f"{relative} is not in the installed PsychoPy")
    return path


def document(path: Path) -> dict[str, Any]:
    if importlib.util.find_spec("mediapipe") is None:
        pytest.skip("mediapipe (the face mesh that measures mouths) is not installed")
    if not all_analyzers()["speakers"].available():
        pytest.skip("the Resemblyzer wheel (the speakers analyzer's voice turns) is not installed")
    return run(path, ["faces", "speakers"])


@pytest.mark.parametrize("relative", list(CLIPS))
def test_the_man_talking_to_the_camera_is_the_on_screen_speaker(relative: str) -> None:
    doc = document(psychopy_media(relative))
    speaking = doc["speaking"]
    assert speaking is not None and speaking["source"] == "speakers", doc["analyzers"]
    (track,) = doc["faces"]["tracks"]  # one face, seen throughout
    assert speaking["measured_frames"] >= 10 and speaking["turns"], speaking
    for turn in speaking["turns"]:
        assert (turn["where"], turn["track_id"]) == ("on_screen", track["id"]), turn
        assert turn["mouth_motion"] >= MOVING, turn
    longest = max(speaking["turns"], key=lambda t: t["end_s"] - t["start_s"])
    assert longest["confidence"] >= 0.9, longest
    assert speaking["off_screen_s"] == 0 and speaking["unknown_s"] == 0
    for start, end in CLIPS[relative]:  # the speech the recording shows is placed on his face
        assert on_screen_during(speaking["turns"], start, end) is True
    for speaker in speaking["speakers"].values():  # each voice the speakers analyzer tells apart is his
        assert (speaker["where"], speaker["track_id"]) == ("on_screen", track["id"]), speaking["speakers"]


def main() -> None:
    """`python -m tests.test_speaking_real OUT.json`: the scorecard figure (speech seconds placed on his
    face) and each clip's placed turns, with the CPU seconds and load they were measured at."""
    clips: dict[str, Any] = {}
    for relative, truth in CLIPS.items():
        cpu = time.process_time()
        speaking = document(psychopy_media(relative))["speaking"]
        clips[relative] = {
            "truth_speech_s": truth,
            "cpu_s": round(time.process_time() - cpu, 1),
            "load_average": os.getloadavg()[0],
            **{k: speaking[k] for k in ("source", "on_screen_s", "off_screen_s", "unknown_s", "speakers")},
            "turns": speaking["turns"],
        }
    placed = sum(c["on_screen_s"] for c in clips.values())
    total = placed + sum(c["off_screen_s"] + c["unknown_s"] for c in clips.values())
    out = {"on_screen_s": round(placed, 3), "speech_turn_s": round(total, 3), "clips": clips}
    Path(sys.argv[1]).write_text(json.dumps(out, indent=1) + "\n")
    print(f"{placed:.1f}/{total:.1f} s of speech on the talking face")


if __name__ == "__main__":
    main()
