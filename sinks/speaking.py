"""Who speaks on screen, for the document: the speech turns and the face tracks' mouths of one video,
handed to analyzers/common/active_speaker.py (the join itself)."""

from __future__ import annotations

from typing import Any

from reelscope.analyzers.base import ItemResult
from reelscope.analyzers.common.active_speaker import Mouth, Turn, summary
from reelscope.analyzers.faces import tracks_of
from reelscope.schemas.reconstruction import AnalyzerState


def speech_turns(summaries: dict[str, dict[str, Any]]) -> tuple[str, list[Turn]]:
    """The video's speech turns from the best source present: diarization turns (they carry who), else the
    transcript's segments, else the spans the sound events call speech. ("", []) without speech."""
    turns = (summaries.get("speakers") or {}).get("turns") or []
    if turns:
        return "speakers", [Turn(t["start_s"], t["end_s"], t["speaker"]) for t in turns]
    segments = [s for s in (summaries.get("transcription") or {}).get("segments") or [] if s.get("text")]
    if segments:
        return "transcription", [Turn(s["start_s"], s["end_s"], s.get("speaker")) for s in segments]
    events = (summaries.get("sound_events") or {}).get("events") or []
    spans = [Turn(e["start_s"], e["end_s"]) for e in events if str(e["label"]).lower() == "speech"]
    return ("sound_events", spans) if spans else ("", [])


def speaking(
    by_analyzer: dict[str, list[ItemResult]],
    summaries: dict[str, dict[str, Any]],
    states: dict[str, dict[str, Any]],
) -> dict[str, Any] | None:
    """The document's `speaking` block; None without speech, or unless every faces result arrived (a
    missing frame would read as a face that is not there, i.e. as an off-screen voice)."""
    frames = by_analyzer.get("faces")
    if not frames or states.get("faces", {}).get("state") != AnalyzerState.COMPLETE:
        return None
    source, turns = speech_turns(summaries)
    if not turns:
        return None
    tracks, dt = tracks_of(frames)
    visible = [(t, track.id) for track in tracks for t in track.times]
    mouths = [
        Mouth(t, track.id, float(face["mouth_opening"]))
        for track in tracks
        for t, face in zip(track.times, track.faces, strict=True)
        if face.get("mouth_opening") is not None
    ]
    return {
        "source": source,
        "frame_interval_s": round(dt, 4),
        "measured_frames": len(mouths),
        **summary(turns, mouths, visible),
    }
