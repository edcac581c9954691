"""The readable summary of a reconstruction that `analyze` and `push --wait` print, one line per aspect."""

from __future__ import annotations

from typing import Any

from reelscope.schemas.records import VideoStatus


def summary_lines(doc: dict[str, Any]) -> list[str]:
    """A readable summary of one reconstruction."""
    lines = [
        f"{doc['video_id']}: {doc['status'].upper()}" + (f" - {doc['error']}" if doc.get("error") else "")
    ]
    if doc["status"] == VideoStatus.FAILED:
        return lines
    media = doc.get("media", {})
    lines.append(
        f"  duration {doc['duration_s']:.2f} s from {doc['start_s']:.3f} s, "
        f"{media.get('width')}x{media.get('height')}, video={media.get('video_codec')}, "
        f"audio={media.get('audio_codec')}"
    )
    if doc.get("description"):
        d = doc["description"]
        lines.append(f"  description [{d['provenance']}]: {d['description'][:400]}")
    cuts = ", ".join(f"{c['time_s']:.2f}s" for c in doc.get("cuts", [])) or "none"
    lines.append(f"  shots {len(doc['shots'])}; hard cuts: {cuts}")
    for t in doc.get("transitions", []):
        lines.append(f"  transition {t['kind']} {t['start_s']:.2f}-{t['end_s']:.2f} s")
    for e in doc.get("text_events", [])[:8]:
        lines.append(f"  on screen {e['start_s']:.1f}-{e['end_s']:.1f} s: {e['text'][:80]}")
    about = doc.get("about") or {}
    if about.get("topics") or about.get("keywords"):
        topics = ", ".join(t["label"] for t in about.get("topics", []))
        keywords = ", ".join(k["text"] for k in about.get("keywords", [])[:6])
        lines.append(f"  about: topics {topics or '-'}; keywords {keywords or '-'}")
    loud = doc.get("summaries", {}).get("loudness")
    if loud:
        spans = ", ".join(f"{s['start_s']:.1f}-{s['end_s']:.1f}s" for s in loud["silences"]) or "none"
        lines.append(f"  audio level {loud['mean_rms_dbfs']} dBFS; silence: {spans}")
    transcript = doc.get("transcript")
    if transcript and transcript.get("text"):
        lines.append(f"  transcript: {transcript['text'][:300]}")
    lines += vision_lines(doc)
    for name, state in doc["analyzers"].items():
        lines.append(
            f"  {name:<14} {state['state']:<15} {state['received']}/{state['expected']} "
            f"[{state['model']}, {state['provenance']}]"
        )
    lines += [f"  warning: {w}" for w in doc.get("warnings", [])]
    lines.append(f"  segments: {len(doc['segments'])} x {doc['segment_s']} s")
    return lines


def _gesture_spans(gestures: list[dict[str, Any]] | None) -> str:
    spans = [f"{g['kind']} {g['start_s']:.1f}-{g['end_s']:.1f}s" for g in (gestures or [])[:6]]
    return ", ".join(spans) or "none"


def vision_lines(doc: dict[str, Any]) -> list[str]:
    """What the vision analyzers saw: objects, bodies, hands, faces (gaze, emotion), person segmentation."""
    summaries = doc.get("summaries", {})
    lines = []
    if objects := summaries.get("objects"):
        counts = ", ".join(f"{k} x{v}" for k, v in list(objects.get("max_counts", {}).items())[:8]) or "none"
        lines.append(f"  objects: {counts}; tracks: {objects.get('track_count', 0)}")
    if pose := summaries.get("pose"):
        lines.append(
            f"  bodies: up to {pose.get('max_count', 0)} at once; gestures: {_gesture_spans(pose.get('gestures'))}"
        )
    if hands := summaries.get("hands"):
        lines.append(
            f"  hands: up to {hands.get('max_count', 0)} at once, in {hands.get('hand_share', 0):.0%} of frames; "
            f"gestures: {_gesture_spans(hands.get('gestures'))}"
        )
    faces = doc.get("faces") or {}
    if faces.get("track_count"):
        emotions = ", ".join(
            f"face {t['id']} {t['emotion']}" for t in faces.get("tracks", [])[:4] if t.get("emotion")
        )
        gaze = (
            f"eye contact {faces['eye_contact_share']:.0%}, mouth open {faces['mouth_open_share']:.0%}; "
            if "eye_contact_share" in faces
            else ""
        )
        lines.append(
            f"  faces: up to {faces.get('max_faces', 0)} at once ({faces.get('shot_type')}); {gaze}"
            f"emotion: {emotions or 'not measured'}"
        )
    if segmentation := summaries.get("segmentation"):
        changes = ", ".join(f"{c['at_s']:.1f}s" for c in segmentation.get("background_changes", [])[:6])
        lines.append(
            f"  people fill {segmentation['mean_person_share']:.0%} of the frame; green screen "
            f"{segmentation['green_screen_share']:.0%}; background changes: {changes or 'none'}"
        )
    return lines
