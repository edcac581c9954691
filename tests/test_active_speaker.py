"""Who speaks on screen (analyzers/common/active_speaker.py) on synthetic mouth series, its place in the
document and the shot context, and captions that never claim "no people" when a people finder failed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from reelscope.analyzers.common.active_speaker import MOVING, Mouth, Turn, assign, on_screen_during, summary
from reelscope.analyzers.common.compose_caption import compose_caption
from reelscope.analyzers.registry import all_analyzers
from reelscope.sinks import reconstruction

from tests.media import spoken, write_video

FPS = 2.0
TALK = (0.05, 0.3, 0.12, 0.02, 0.25, 0.08)
"""A speaking mouth caught at random phases by 2 fps sampling."""


def ultralytics_asset(name: str) -> Path:
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("ultralytics (its sample photos) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "assets" / name


def mouths(track: int, start: float, end: float, opening: Any) -> list[Mouth]:
    n = round((end - start) * FPS)
    return [Mouth(start + i / FPS, track, opening(i)) for i in range(n)]


def visible(series: list[Mouth]) -> list[tuple[float, int]]:
    return [(m.t, m.track_id) for m in series]


def test_the_face_whose_mouth_moves_during_the_turn_is_its_speaker() -> None:
    # track 1 talks during 2-6 s and is still before and after; track 2 holds its mouth still throughout
    one = mouths(1, 0, 10, lambda i: TALK[i % len(TALK)] if 4 <= i < 12 else 0.03)
    two = mouths(2, 0, 10, lambda i: 0.04 + 0.005 * (i % 2))
    series = one + two
    (turn,) = assign([Turn(2.0, 6.0, "S0")], series, visible(series))
    assert (turn["where"], turn["track_id"], turn["speaker"]) == ("on_screen", 1, "S0")
    assert turn["confidence"] > 0.7
    # the other face speaks in a second turn: each turn gets its own face
    two = mouths(2, 0, 10, lambda i: TALK[i % len(TALK)] if 14 <= i < 20 else 0.04)
    series = one + two
    first, second = assign([Turn(2.0, 6.0, "S0"), Turn(7.0, 10.0, "S1")], series, visible(series))
    assert (first["track_id"], second["track_id"]) == (1, 2)


def test_still_mouths_make_an_off_screen_voice_and_a_mouth_that_always_moves_is_discounted() -> None:
    still = mouths(1, 0, 8, lambda i: 0.03 + 0.004 * (i % 3))
    (turn,) = assign([Turn(1.0, 5.0, "S0")], still, visible(still))
    assert (turn["where"], turn["track_id"]) == ("off_screen", None)
    assert turn["confidence"] > 0.5 and turn["reason"] == "no mouth moves"
    # a mouth agape the whole time does not vary: not speaking either
    agape = mouths(1, 0, 8, lambda i: 0.4)
    assert assign([Turn(1.0, 5.0)], agape, visible(agape))[0]["where"] == "off_screen"
    # chewing: the mouth moves as much in silence as in the turn, so the turn is not its speech
    chewing = mouths(1, 0, 8, lambda i: TALK[i % len(TALK)])
    assert assign([Turn(1.0, 5.0)], chewing, visible(chewing))[0]["where"] == "off_screen"


# The faces analyzer's mouth openings at 2 fps on PsychoPy's jwpIntro.mp4, a real man talking to the camera
# from 0.9 s to 4.8 s (tests/test_speaking_real.py runs the clip itself), and the speakers analyzer's turn.
JWP = ((0.0, 0.003), (0.5, 0.005), (1.0, 0.321), (1.5, 0.176), (2.0, 0.292), (2.5, 0.276), (3.0, 0.251),
       (3.5, 0.225), (4.0, 0.024), (4.5, 0.289), (5.005, 0.303), (5.506, 0.003))  # fmt: skip


def test_a_mouth_still_closing_after_the_turn_is_no_silence_baseline() -> None:
    # the sample 5 ms after the turn ends still has the mouth open: left out of the silence baseline, the
    # turn's spread stands, and the man is its speaker (with it, he "moved as much in silence")
    series = [Mouth(t, 1, opening) for t, opening in JWP]
    (turn,) = assign([Turn(0.0, 5.0, "S0")], series, visible(series))
    assert (turn["where"], turn["track_id"]) == ("on_screen", 1) and turn["confidence"] > 0.9, turn
    # the same series with its silence sampled away from the turn: that baseline still counts
    chewing_after = series + [Mouth(6.0 + i / FPS, 1, TALK[i % len(TALK)]) for i in range(8)]
    (turn,) = assign([Turn(0.0, 5.0, "S0")], chewing_after, visible(chewing_after))
    assert turn["where"] == "off_screen", turn


def test_no_face_no_mesh_and_too_few_frames_are_told_apart() -> None:
    still = mouths(1, 5, 8, lambda i: 0.03)
    no_face = assign([Turn(0.0, 4.0)], still, visible(still))[0]
    assert (no_face["where"], no_face["reason"]) == ("off_screen", "no face visible")
    unmeasured = assign([Turn(5.0, 8.0)], [], visible(still))[0]
    assert (unmeasured["where"], unmeasured["confidence"]) == ("unknown", 0.0)
    assert unmeasured["reason"] == "mouths not measured (no face mesh)"
    short = assign([Turn(5.0, 5.4)], still, visible(still))[0]
    assert (short["where"], short["reason"]) == ("unknown", "too few frames in the turn")
    # two frames of a turn give little confidence either way
    brief = assign([Turn(5.0, 6.0)], still, visible(still))[0]
    assert brief["where"] == "off_screen" and brief["confidence"] <= 1 / 3


def test_summary_maps_each_speaker_and_a_shot_reads_its_turns() -> None:
    one = mouths(1, 0, 10, lambda i: TALK[i % len(TALK)] if 4 <= i < 12 else 0.03)
    turns = [Turn(2.0, 6.0, "S0"), Turn(7.0, 9.0, "S1")]
    out = summary(turns, one, visible(one))
    assert out["speakers"]["S0"] == {"where": "on_screen", "track_id": 1, "share": 1.0}
    assert out["speakers"]["S1"]["where"] == "off_screen"
    assert (out["on_screen_s"], out["off_screen_s"]) == (4.0, 2.0)
    assert on_screen_during(out["turns"], 0.0, 6.5) is True
    assert on_screen_during(out["turns"], 6.5, 10.0) is False
    assert on_screen_during(out["turns"], 9.5, 10.0) is None


def rows(analyzer: str, results: list[tuple[float, float, dict[str, Any] | None]]) -> list[dict[str, Any]]:
    """Stored result rows; a None payload is an error row."""
    return [
        {
            "analyzer": analyzer,
            "item_key": f"{analyzer}-{i}",
            "start_s": a,
            "end_s": b,
            "payload": json.dumps(p or {}),
            "error": "" if p is not None else "RuntimeError: boom",
            "model": "m",
            "provenance": "packaged",
        }
        for i, (a, b, p) in enumerate(results)
    ]


def face(opening: float) -> dict[str, Any]:
    box = [0.4, 0.2, 0.6, 0.5]
    return {"box": box, "size_share": 0.06, "position": "center", "mouth_opening": opening, "mouth_open": False,
            "eye_contact": True, "facing": "center", "conf": 0.99}  # fmt: skip


def build(frames: list[dict[str, Any]], voiced: list[tuple[float, float]], faces_ok: bool = True) -> dict:
    enabled = {n: all_analyzers()[n] for n in ("faces", "speakers")}
    face_rows = [(i / FPS, (i + 1) / FPS, p if faces_ok else None) for i, p in enumerate(frames)]
    embedding = [1.0] + [0.0] * 255
    speech = [(a, b, {"embedding": embedding, "threshold": 0.5, "min_chunks": 1}) for a, b in voiced]
    video = {
        "video_id": "v",
        "duration_s": len(frames) / FPS,
        "has_video": True,
        "has_audio": True,
        "expected": json.dumps({"faces": len(frames), "speakers": len(voiced)}),
    }
    return reconstruction.build(
        video, rows("faces", face_rows) + rows("speakers", speech), enabled, 1.0, enrich=False
    )


def test_the_document_places_the_speech_and_the_shot_context_and_caption_follow() -> None:
    talking = [
        {"faces": [face(TALK[i % len(TALK)] if 2 <= i < 8 else 0.03)], "face_count": 1} for i in range(10)
    ]
    doc = build(talking, [(1.0, 2.0), (2.0, 3.0), (3.0, 4.0)])
    speaking = doc["speaking"]
    assert speaking["source"] == "speakers" and speaking["frame_interval_s"] == 0.5
    (turn,) = speaking["turns"]
    assert (turn["speaker"], turn["where"], turn["track_id"]) == ("S0", "on_screen", 1)
    context = reconstruction.shot_context(doc, doc["shots"][0])
    assert context["speaker_on_screen"] is True and context["unseen"] == []
    context["speech"] = "hello there"
    assert "a person talks to the camera" in compose_caption(5.0, context)

    still = [{"faces": [face(0.03)], "face_count": 1} for _ in range(10)]
    doc = build(still, [(1.0, 2.0), (2.0, 3.0), (3.0, 4.0)])
    assert doc["speaking"]["turns"][0]["where"] == "off_screen"
    context = {**reconstruction.shot_context(doc, doc["shots"][0]), "speech": "hello there"}
    assert context["speaker_on_screen"] is False
    caption = compose_caption(5.0, context)
    assert "talks to the camera" not in caption and "off-screen speech: 'hello there'" in caption


def test_failed_faces_place_no_speech_and_no_caption_claims_no_people() -> None:
    frames = [{"faces": [], "face_count": 0} for _ in range(10)]
    doc = build(frames, [(1.0, 2.0)], faces_ok=False)
    assert doc["analyzers"]["faces"]["state"] == "failed"
    assert doc["speaking"] is None  # missing frames would read as "no face visible"
    context = reconstruction.shot_context(doc, doc["shots"][0])
    assert context["unseen"] == ["faces"] and context["faces"] == 0
    caption = compose_caption(5.0, context)
    assert "no people" not in caption
    assert caption == "5.0 s shot: nothing detected, but faces results are missing, so people may be present."
    # the same video with its faces in: an empty picture may say so
    doc = build(frames, [(1.0, 2.0)])
    context = reconstruction.shot_context(doc, doc["shots"][0])
    assert context["unseen"] == []
    assert compose_caption(5.0, context) == "5.0 s shot: no people or objects detected."


SENTENCE = "Good evening, and welcome to the match."


def still_with_speech(tmp_path: Path) -> Path:
    """zidane.jpg (two real faces) held still for 1.5 s, then espeak-ng speech, then 1.5 s of silence: the
    photo shifts by a pixel or two between frames (a hand-held still), so no two frames are identical."""
    still = np.asarray(Image.open(ultralytics_asset("zidane.jpg")).convert("RGB").resize((640, 360)))
    silence = np.zeros(int(1.5 * 48_000), np.float32)
    audio = np.concatenate([silence, spoken(tmp_path, SENTENCE), silence])
    fps = 10  # the faces analyzer's 2 fps falls on frames: every 0.5 s (at 5 fps it would be 0.6 s)
    return write_video(
        tmp_path / "still.mp4",
        int(len(audio) / 48_000 * fps),
        fps,
        lambda i: np.roll(still, (i % 3, (i // 3) % 3), axis=(0, 1)).copy(),
        audio=audio,
    )


def assert_off_screen(doc: dict[str, Any]) -> None:
    """Both faces are seen, the face mesh measures a mouth, but none moves: every turn is off-screen (the
    photo cannot be speaking), and the composed caption does not make the face talk."""
    speaking = doc["speaking"]
    assert speaking["source"] == "speakers" and speaking["frame_interval_s"] == 0.5
    assert speaking["measured_frames"] > 0 and speaking["turns"], speaking
    for turn in speaking["turns"]:
        assert turn["visible_tracks"] and turn["measured_tracks"] >= 1, turn
        assert (turn["where"], turn["track_id"], turn["reason"]) == ("off_screen", None, "no mouth moves"), (
            turn
        )
        assert turn["mouth_spread"] < MOVING
    assert speaking["on_screen_s"] == 0 and speaking["off_screen_s"] >= 1
    captions = [shot["caption"]["text"] for shot in doc["shots"]]
    assert not any("talks to the camera" in c for c in captions), captions
    if doc["transcript"] and doc["transcript"]["words"]:  # the words are told as an off-screen voice
        assert any("off-screen speech: '" in c for c in captions), captions
