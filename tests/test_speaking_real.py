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
The off-screen case has no real recording here: its test is a composite of real parts, said as such.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from reelscope.analyzers.common.active_speaker import MOVING, on_screen_during
from reelscope.analyzers.registry import all_analyzers
from reelscope.infra.bench.scorecard import document as run
from reelscope.infra.sample_media import write_video

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


VOICE = Path("/usr/share/asterisk/sounds/en/confbridge-begin-leader.wav")
"""A real woman's voice (Asterisk's English prompts, 3.0 s), not his."""


def silent_face_under_a_voice(folder: Path) -> Path:
    """A composite of real parts, not a recording: testMovie.mp4's last second (from 6.8 s: he has stopped
    talking, mouth closed, his face and the camera still live) played forward and back for 6 s, under 1.5 s
    of silence, the Asterisk prompt, then silence: a voice-over while the one visible face is silent."""
    if not VOICE.is_file():
        pytest.skip("asterisk-core-sounds-en-wav is not installed (.ci/run installs it)")
    with av.open(str(psychopy_media("tests/data/testMovie.mp4"))) as clip:
        tail = [f.to_ndarray(format="rgb24") for f in clip.decode(video=0) if f.time >= 6.8]
    with av.open(str(VOICE)) as prompt:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=16_000)
        voice = np.concatenate(
            [f.to_ndarray().reshape(-1) for fr in prompt.decode(audio=0) for f in resampler.resample(fr)]
        )
    silence = np.zeros(24_000, np.float32)
    audio = np.concatenate([silence, voice, silence])
    cycle = tail + tail[::-1]
    frames = int(len(audio) / 16_000 * 30)
    return write_video(folder / "voice_over.mp4", frames, 30, lambda i: cycle[i % len(cycle)], audio, 16_000)


def test_the_same_face_silent_under_another_voice_is_no_speaker(tmp_path: Path) -> None:
    speaking = document(silent_face_under_a_voice(tmp_path))["speaking"]
    assert speaking is not None and speaking["turns"], speaking
    for turn in speaking["turns"]:  # his face is seen and measured, and does not move: an off-screen voice
        assert turn["visible_tracks"] and turn["measured_tracks"] == 1, turn
        assert (turn["where"], turn["reason"]) == ("off_screen", "no mouth moves"), turn
    assert speaking["on_screen_s"] == 0 and speaking["off_screen_s"] >= 2.5


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
