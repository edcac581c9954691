"""Exports of a reconstruction: WebVTT subtitles and a Markdown report.

Pure functions over the reconstruction dict (docs/reconstruction.md), so the API, the CLI and tests render
the same thing. Every field may be absent: a failed video, an audio-only clip or a reconstruction written
before an analyzer existed still exports.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

MAX_CUE_S = 7.0
"""A subtitle cue longer than this is hard to read along with."""
MAX_LINE_CHARS = 42
MAX_LINES = 2
MAX_GAP_S = 1.0
"""A pause this long between two words starts a new cue."""
MIN_CUE_S = 0.2
TEXT_CUE_SETTINGS = "line:8% position:50% align:center"
"""On-screen text cues sit near the top, clear of the speech cues at the bottom."""
MAX_TABLE_ROWS = 200


# --- WebVTT -----------------------------------------------------------------------------------------------


def vtt_time(t: float) -> str:
    """HH:MM:SS.mmm, as WebVTT requires (hours always present, so long videos need no special case)."""
    ms = max(0, round(t * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    seconds, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{ms:03d}"


def _vtt_escape(text: str) -> str:
    """Cue text may not hold '<', '&', '-->' or blank lines (they would end or corrupt the cue)."""
    text = " ".join(text.split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text


def wrap(text: str, width: int = MAX_LINE_CHARS) -> list[str]:
    """Greedy word wrap; a single word longer than `width` keeps its own line."""
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def _speech_cues(transcript: dict[str, Any]) -> list[tuple[float, float, str | None, str]]:
    """(start, end, speaker, text) groups of one speaker's consecutive words, at most MAX_CUE_S long and
    two lines of MAX_LINE_CHARS, broken at pauses and after sentence ends. Speakers are grouped apart, so
    two people talking at once give two overlapping cues, not a word-by-word interleave."""
    words = [w for w in transcript.get("words") or [] if str(w.get("word", "")).strip()]
    if not words:  # older or word-less transcripts: one cue per segment
        return [
            (float(s["start_s"]), float(s["end_s"]), s.get("speaker"), str(s.get("text", "")).strip())
            for s in transcript.get("segments") or []
            if str(s.get("text", "")).strip() and "start_s" in s and "end_s" in s
        ]
    by_speaker: dict[str | None, list[dict[str, Any]]] = {}
    for w in words:
        by_speaker.setdefault(w.get("speaker"), []).append(w)
    cues: list[tuple[float, float, str | None, str]] = []
    for speaker, own in by_speaker.items():
        start = end = 0.0
        text = ""
        for w in sorted(own, key=lambda w: float(w.get("start_s", 0.0))):
            word = str(w["word"]).strip()
            w_start = float(w.get("start_s", end))
            w_end = max(float(w.get("end_s", w_start)), w_start)
            if text and (
                w_end - start > MAX_CUE_S
                or len(wrap(f"{text} {word}")) > MAX_LINES
                or w_start - end > MAX_GAP_S
                or (text[-1] in ".?!" and end - start >= 1.5)
            ):
                cues.append((start, end, speaker, text))
                text = ""
            if not text:
                start = w_start
            text = f"{text} {word}" if text else word
            end = w_end
        if text:
            cues.append((start, end, speaker, text))
    return cues


def text_events(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """On-screen text events: the document's `text_events`, else the ocr_text summary's."""
    events = doc.get("text_events")
    if events is None:
        events = ((doc.get("summaries") or {}).get("ocr_text") or {}).get("events")
    return [e for e in events or [] if isinstance(e, dict)]


def summary(doc: dict[str, Any], name: str) -> dict[str, Any] | None:
    """An analyzer's whole-video summary, promoted to the top level (faces, camera) or in `summaries`."""
    value = doc.get(name)
    if not isinstance(value, dict):
        value = (doc.get("summaries") or {}).get(name)
    return value if isinstance(value, dict) else None


def to_webvtt(doc: dict[str, Any]) -> str:
    """Speech cues (with `<v speaker>` when there are several speakers) and on-screen text cues
    (prefixed `TEXT:`, placed at the top), ordered by start time as WebVTT requires."""
    cues: list[tuple[float, float, str, str]] = []  # start, end, settings, payload
    speech = _speech_cues(doc.get("transcript") or {})
    several = len({spk for _, _, spk, _ in speech if spk}) > 1
    for start, end, speaker, text in speech:
        lines = [_vtt_escape(line) for line in wrap(text)]
        if several and speaker:
            lines[0] = f"<v {_vtt_escape(str(speaker))}>{lines[0]}"
        cues.append((start, end, "", "\n".join(lines)))
    for ev in text_events(doc):
        text = str(ev.get("text", "")).strip()
        if text and "start_s" in ev:
            start = float(ev["start_s"])
            end = float(ev.get("end_s", start))
            lines = [_vtt_escape(line) for line in wrap(f"TEXT: {text}")]
            cues.append((start, end, TEXT_CUE_SETTINGS, "\n".join(lines)))
    cues.sort(key=lambda c: (c[0], c[1]))
    out = ["WEBVTT", ""]
    for i, (start, end, settings, payload) in enumerate(cues, 1):
        end = max(end, start + MIN_CUE_S)
        timing = f"{vtt_time(start)} --> {vtt_time(end)}" + (f" {settings}" if settings else "")
        out += [str(i), timing, payload, ""]
    return "\n".join(out)


# --- Markdown ---------------------------------------------------------------------------------------------


def _inline(text: Any) -> str:
    """Submitted or recognised text on one line, with HTML disarmed (Markdown renderers pass HTML)."""
    return " ".join(str(text).split()).replace("<", "&lt;").replace(">", "&gt;")


def _cell(value: Any) -> str:
    """A table cell: one line, pipes escaped."""
    if value is None:
        return ""
    if isinstance(value, float):
        value = f"{value:g}"
    elif isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False)
    return _inline(value).replace("|", "\\|")


def _table(headers: list[str], rows: Iterable[list[Any]]) -> list[str]:
    rows = list(rows)
    out = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---" for _ in headers) + " |",
    ]
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows[:MAX_TABLE_ROWS]]
    if len(rows) > MAX_TABLE_ROWS:
        out.append(f"\n_{len(rows) - MAX_TABLE_ROWS} more rows not shown._")
    return out


def _clock(t: Any) -> str:
    """m:ss.s for readers (the WebVTT export has the exact times)."""
    if not isinstance(t, int | float):
        return ""
    minutes, seconds = divmod(float(t), 60)
    return f"{int(minutes)}:{seconds:04.1f}"


def description_text(doc: dict[str, Any]) -> str | None:
    """The whole-video description: the document's own, else the captions analyzer's."""
    described = doc.get("description")
    if isinstance(described, dict):
        described = described.get("description") or described.get("text")
    if not described:
        described = ((doc.get("summaries") or {}).get("captions") or {}).get("description")
    text = str(described or "").strip()
    return text or None


def shot_captions(doc: dict[str, Any]) -> dict[int, str]:
    """Shot index -> caption: the shot's own field, else the captions summary entry overlapping it most."""
    shots = doc.get("shots") or []
    entries = ((doc.get("summaries") or {}).get("captions") or {}).get("shots") or []
    out: dict[int, str] = {}
    for i, shot in enumerate(shots):
        index = shot.get("index", i)
        own = shot.get("caption")
        if isinstance(own, dict):
            own = own.get("text")
        if own:
            out[index] = str(own)
            continue
        best, overlap = None, 0.0
        for e in entries:
            o = min(shot.get("end_s", 0.0), e.get("end_s", 0.0)) - max(
                shot.get("start_s", 0.0), e.get("start_s", 0.0)
            )
            if e.get("caption") and o > overlap:
                best, overlap = str(e["caption"]), o
        if best:
            out[index] = best
    return out


def _summary_lines(name: str, summary: dict[str, Any]) -> list[str]:
    """Scalars as a bullet list; nested values as compact JSON, cut short."""
    lines = [f"### {name}", ""]
    for key, value in summary.items():
        if isinstance(value, dict | list):
            text = json.dumps(value, ensure_ascii=False)
            value = text if len(text) <= 300 else text[:297] + "..."
        lines.append(f"- **{key}**: {value}")
    return [*lines, ""]


def _faces(summary: dict[str, Any]) -> list[str]:
    lines = [
        "### Faces",
        "",
        f"Faces visible {summary.get('face_share', 0) * 100:.0f}% of the time, at most "
        f"{summary.get('max_faces', 0)} at once; {summary.get('track_count', 0)} tracks; "
        f"shot type {summary.get('shot_type') or 'unknown'}.",
        "",
    ]
    tracks = summary.get("tracks") or []
    if tracks:
        lines += _table(
            ["track", "from", "to", "frames", "size share", "facing"],
            [
                [
                    t.get("id"),
                    _clock(t.get("start_s")),
                    _clock(t.get("end_s")),
                    t.get("frames"),
                    t.get("mean_size_share"),
                    t.get("facing"),
                ]
                for t in tracks
            ],
        )
        lines.append("")
    return lines


def _objects(summary: dict[str, Any]) -> list[str]:
    lines = ["### Objects", ""]
    counts = summary.get("max_counts") or {}
    if counts:
        lines.append("Most at once: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + ".")
    by_label = summary.get("tracks_by_label") or {}
    if by_label:
        lines.append("Tracks: " + ", ".join(f"{k} {v}" for k, v in by_label.items()) + ".")
    tracks = summary.get("tracks") or []
    if tracks:
        lines += [
            "",
            *_table(
                ["track", "label", "from", "to", "frames", "confidence"],
                [
                    [
                        t.get("track_id"),
                        t.get("label"),
                        _clock(t.get("first_s")),
                        _clock(t.get("last_s")),
                        t.get("frames"),
                        t.get("mean_conf"),
                    ]
                    for t in tracks
                ],
            ),
        ]
    elif summary.get("tracker"):
        lines.append(f"Tracker: {summary['tracker']}.")
    return [*lines, ""]


def _camera(summary: dict[str, Any]) -> list[str]:
    lines = ["### Camera", "", f"Mostly {summary.get('dominant') or 'unknown'}."]
    seconds = summary.get("seconds") or {}
    if seconds:
        lines.append("Seconds by motion: " + ", ".join(f"{k} {v:g}" for k, v in seconds.items()) + ".")
    spans = summary.get("spans") or []
    if spans:
        lines += [
            "",
            *_table(
                ["motion", "direction", "from", "to"],
                [
                    [s.get("kind"), s.get("direction"), _clock(s.get("start_s")), _clock(s.get("end_s"))]
                    for s in spans
                ],
            ),
        ]
    return [*lines, ""]


def _about(about: dict[str, Any]) -> list[str]:
    """Topics, keywords, hashtags, mentions, links and calls to action (sinks/about.py)."""
    lines = ["## About", ""]
    facts = [
        ("Topics", [t.get("label") for t in about.get("topics") or [] if isinstance(t, dict)]),
        ("Keywords", [k.get("text") for k in about.get("keywords") or [] if isinstance(k, dict)]),
        ("Hashtags", about.get("hashtags") or []),
        ("Mentions", about.get("mentions") or []),
        ("Links", about.get("links") or []),
    ]
    lines += [
        f"- **{name}**: {', '.join(_inline(v) for v in values if v)}" for name, values in facts if values
    ]
    ctas = [c for c in about.get("ctas") or [] if isinstance(c, dict)]
    if ctas:
        lines += ["", "Calls to action:", ""]
        lines += _table(
            ["from", "to", "kind", "where", "text"],
            [
                [
                    _clock(c.get("start_s")),
                    _clock(c.get("end_s")),
                    c.get("kind"),
                    c.get("source"),
                    c.get("text"),
                ]
                for c in ctas
            ],
        )
    if len(lines) == 2:
        return []
    if about.get("model"):
        lines += ["", f"_By {_inline(about['model'])} ({about.get('provenance')})._"]
    return [*lines, ""]


def _transcript(transcript: dict[str, Any]) -> list[str]:
    lines = ["## Transcript", ""]
    if transcript.get("language"):
        lines += [f"Language: {transcript['language']}", ""]
    segments = [s for s in transcript.get("segments") or [] if str(s.get("text", "")).strip()]
    speakers = {s.get("speaker") for s in segments}
    if segments:
        for s in segments:
            who = f"**{s.get('speaker')}**: " if len(speakers) > 1 and s.get("speaker") else ""
            lines.append(f"- `{_clock(s.get('start_s'))}` {who}{_inline(s['text'])}")
    elif str(transcript.get("text", "")).strip():
        lines.append(_inline(transcript["text"]))
    else:
        lines.append("_No speech recognised._")
    return [*lines, ""]


def to_markdown(doc: dict[str, Any]) -> str:
    """A human-readable report of one reconstruction."""
    video_id = doc.get("video_id", "video")
    metadata = doc.get("metadata") or {}
    title = _inline(metadata.get("title") or metadata.get("filename") or video_id)
    lines = [f"# {title}", ""]
    description = description_text(doc)
    if description:
        lines += [f"> {_inline(description)}", ""]
        described = doc.get("description")
        if isinstance(described, dict) and described.get("model"):
            lines += [f"_Description by {_inline(described['model'])} ({described.get('provenance')})._", ""]
    status = str(doc.get("status", "unknown"))
    lines.append(f"**Status:** {status}" + (f" — {doc['error']}" if doc.get("error") else ""))
    absent = doc.get("absent_streams") or []
    if absent:
        lines += ["", f"**Streams absent:** {', '.join(absent)} (their analyzers are not applicable)"]
    lines.append("")

    media = doc.get("media") or {}
    facts: list[list[Any]] = [["video id", video_id], ["source", doc.get("uri")]]
    if "duration_s" in doc:
        facts.append(["duration", f"{doc['duration_s']:.2f} s (from {doc.get('start_s', 0.0):.3f} s)"])
    if media.get("width"):
        facts.append(["frame", f"{media['width']}x{media['height']}, rotation {media.get('rotation', 0)}"])
    if media.get("avg_fps"):
        facts.append(["frame rate", f"{media['avg_fps']:.2f} fps"])
    if media:
        facts.append(
            ["codecs", f"video {media.get('video_codec') or '-'}, audio {media.get('audio_codec') or '-'}"]
        )
    facts += [[k, v] for k, v in metadata.items() if v not in ("", None)]
    lines += ["## Video", "", *_table(["field", "value"], facts), ""]

    shots = doc.get("shots") or []
    if shots:
        captions = shot_captions(doc)
        lines += ["## Shots", ""]
        lines += _table(
            ["#", "start", "end", "length", "caption"],
            [
                [
                    s.get("index", i),
                    f"{s.get('start_s', 0.0):.2f}",
                    f"{s.get('end_s', 0.0):.2f}",
                    f"{s.get('end_s', 0.0) - s.get('start_s', 0.0):.2f} s",
                    captions.get(s.get("index", i), ""),
                ]
                for i, s in enumerate(shots)
            ],
        )
        lines.append("")
    transitions = doc.get("transitions") or []
    if transitions:
        lines += ["## Transitions", ""]
        lines += [
            f"- {t.get('kind')} {_clock(t.get('start_s'))}–{_clock(t.get('end_s'))}" for t in transitions
        ]
        lines.append("")

    if doc.get("transcript"):
        lines += _transcript(doc["transcript"])

    if isinstance(doc.get("about"), dict):
        lines += _about(doc["about"])
    events = text_events(doc)
    if events:
        lines += ["## On-screen text", ""]
        lines += _table(
            ["from", "to", "text"],
            [[_clock(e.get("start_s")), _clock(e.get("end_s")), e.get("text")] for e in events],
        )
        lines.append("")
    # shown above: captions with the shots and as the description, on-screen text as its own section
    others = {k: v for k, v in (doc.get("summaries") or {}).items() if k not in ("captions", "ocr_text")}
    objects = summary(doc, "objects") or ({"tracks": doc["tracks"]} if doc.get("tracks") else None)
    found = [(_faces, summary(doc, "faces")), (_objects, objects), (_camera, summary(doc, "camera"))]
    parts = [render(value) for render, value in found if value]
    for name in sorted(others):
        if name not in ("faces", "objects", "camera") and isinstance(others[name], dict):
            parts.append(_summary_lines(name, others[name]))
    if parts:
        lines += ["## Analysis", ""]
        for part in parts:
            lines += part

    analyzers = doc.get("analyzers") or {}
    if analyzers:
        lines += ["## Analyzers", ""]
        lines += _table(
            ["analyzer", "state", "received / expected", "errors", "model", "provenance"],
            [
                [
                    name,
                    a.get("state"),
                    f"{a.get('received', 0)} / {a.get('expected', 0)}",
                    a.get("errors", 0),
                    a.get("model"),
                    a.get("provenance"),
                ]
                for name, a in sorted(analyzers.items())
            ],
        )
        lines.append("")
    warnings = doc.get("warnings") or []
    if warnings:
        lines += ["## Warnings", "", *(f"- {w}" for w in warnings), ""]
    timings = doc.get("timings") or {}
    if any(timings.values()):
        lines += ["## Timings", "", *(f"- {k}: {v}" for k, v in timings.items() if v), ""]
    return "\n".join(lines).rstrip() + "\n"
