"""Build a video's reconstruction: its shots, per-second timeline and per-analyzer state.

Pure functions over stored rows (no Kafka, no ClickHouse), so the aggregator, the tests and a rebuild from
ClickHouse all produce the same document: a schemas.reconstruction.ReconstructionDocument, documented in
docs/reconstruction.md.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import defaultdict
from typing import Any

from reelscope.analyzers.base import Analyzer, ItemResult
from reelscope.analyzers.common.active_speaker import on_screen_during
from reelscope.analyzers.registry import all_analyzers
from reelscope.schemas.events import economy_stride, shed_stride
from reelscope.schemas.reconstruction import AnalyzerState, ReconstructionDocument
from reelscope.schemas.records import Media, VideoStatus
from reelscope.sinks.about import about
from reelscope.sinks.speaking import speaking

_DONE = (AnalyzerState.COMPLETE, AnalyzerState.NOT_APPLICABLE)
"""Analyzer states of a complete video: one without an audio (or video) stream lost nothing."""


PEOPLE_FINDERS = ("faces", "objects", "pose")
"""Analyzers that would see a person: while any of them lacks results, no caption says there is none."""


def _analyzer_states(
    expected: dict[str, int],
    counts: dict[str, tuple[int, int]],
    enabled: dict[str, type[Analyzer]],
    models: dict[str, tuple[str, str]],
    has: dict[str, bool],
) -> dict[str, dict[str, Any]]:
    """Each analyzer's AnalyzerState, with the numbers behind it."""
    states: dict[str, dict[str, Any]] = {}
    for name, cls in enabled.items():
        want = expected.get(name, 0)
        got, errors = counts.get(name, (0, 0))
        if want == 0:
            state = AnalyzerState.NOT_APPLICABLE if not has.get(cls.input, True) else AnalyzerState.MISSING
        elif got - errors >= want and errors == 0:
            state = AnalyzerState.COMPLETE
        elif got == 0:
            state = AnalyzerState.MISSING
        elif errors >= got:
            state = AnalyzerState.FAILED
        else:
            state = AnalyzerState.PARTIAL
        model, provenance = models.get(name, (cls.model_name, cls.provenance))
        states[name] = {
            "state": state,
            "expected": want,
            "received": got,
            "errors": errors,
            "model": model,
            "provenance": provenance,
        }
    return states


def gap_warnings(
    states: dict[str, dict[str, Any]], first_errors: dict[str, str], groups: dict[str, str] | None = None
) -> list[str]:
    """One warning per analyzer short of its count in a finished video: how short, and why (with the
    processor group that owed the results: the one that stopped or got stuck)."""
    groups = groups or {}
    out = []
    for name, st in states.items():
        if st["state"] in (AnalyzerState.COMPLETE, AnalyzerState.NOT_APPLICABLE):
            continue
        want, got, errors = st["expected"], st["received"], st["errors"]
        if want == 0:
            out.append(f"{name}: no items were published for it")
            continue
        if got < want:
            out.append(
                f"{name}: {want - got} of {want} results never arrived (finished without them after the "
                f"completion timeout passed with no progress of its group {groups.get(name, '?')})"
            )
        if errors:
            out.append(
                f"{name}: {errors} of {want} items failed ({first_errors.get(name, 'no reason given')})"
            )
    return out


def shed_notes(states: dict[str, dict[str, Any]], shed: dict[str, list[int]]) -> list[str]:
    """Per analyzer whose group shed load for the video: how many items it skipped and at which stride
    (recorded in its state too). Stated, not a loss: the video stays complete."""
    notes = []
    for name, strides in sorted(shed.items()):
        if name in states:
            states[name]["shed"] = {"skipped": len(strides), "max_stride": max(strides)}
            notes.append(
                f"{name}: {len(strides)} of {states[name]['expected']} items not analyzed (load shedding: "
                f"its group was behind and analyzed every {max(strides)}th item of this video at most)"
            )
    return notes


def economy_notes(
    states: dict[str, dict[str, Any]], economy: dict[str, list[int]], enabled: dict[str, type[Analyzer]]
) -> list[str]:
    """Per analyzer that ran its economy mode for some of the video's items because its group was behind:
    how many results, at which stride and what that mode gives up (recorded in its state too). A finding
    made with less, stated: the video stays complete."""
    notes = []
    for name, strides in sorted(economy.items()):
        if name in states and name in enabled:
            gives_up = enabled[name].economy
            states[name]["economy"] = {"results": len(strides), "max_stride": max(strides), "mode": gives_up}
            notes.append(
                f"{name}: {len(strides)} results made in economy mode ({gives_up}; load shedding: its group "
                f"was behind, at stride {max(strides)} at most)"
            )
    return notes


def _document_fields(
    summaries: dict[str, dict[str, Any]], enabled: dict[str, type[Analyzer]]
) -> dict[str, Any]:
    """The top-level fields that analyzers fill from their video summaries (`document_fields`), each with
    its empty value when no enabled analyzer fills it."""
    fields: dict[str, Any] = {
        "cuts": [],
        "transitions": [],
        "description": None,
        "transcript": None,
        "text_events": [],
        "tracks": [],
        "faces": None,
        "camera": None,
    }
    for name, summary in summaries.items():
        filled = enabled[name].document_fields(summary)
        if filled.keys() - fields.keys():
            raise ValueError(f"{name} fills unknown document fields {sorted(filled.keys() - fields.keys())}")
        fields.update(filled)
    return fields


def shot_bounds(cuts: list[dict[str, Any]], transitions: list[dict[str, Any]]) -> list[float]:
    """Where shots change: each hard cut, and the middle of each transition that joins different pictures
    (`new_shot`: a fade through black into another shot, a dissolve); a fade back into the same shot is none."""
    joins = [(t["start_s"] + t["end_s"]) / 2 for t in transitions if t.get("new_shot")]
    return sorted([float(c["time_s"]) for c in cuts] + [round(float(t), 4) for t in joins])


def shots_from_cuts(cuts: list[float], start_s: float, end_s: float) -> list[dict[str, Any]]:
    """Shots in order; a new shot starts at each boundary (`shot_bounds`)."""
    bounds = [start_s] + [c for c in sorted(cuts) if start_s < c < end_s] + [end_s]
    return [
        {"index": i, "start_s": round(a, 4), "end_s": round(b, 4)}
        for i, (a, b) in enumerate(itertools.pairwise(bounds))
    ]


def _segment_index(t: float, origin: float, segment_s: float) -> int:
    return max(0, math.floor((t - origin) / segment_s + 1e-9))


def build_segments(
    by_analyzer: dict[str, list[ItemResult]],
    enabled: dict[str, type[Analyzer]],
    shots: list[dict[str, Any]],
    origin: float,
    end_s: float,
    segment_s: float,
) -> list[dict[str, Any]]:
    """Per-segment fields: each analyzer's `segment_fields` over the items that fall in the segment."""
    count = max(1, math.ceil((end_s - origin) / segment_s - 1e-9))
    buckets: list[dict[str, list[dict[str, Any]]]] = [defaultdict(list) for _ in range(count)]
    for name, results in by_analyzer.items():
        for r in enabled[name].timeline_results(results, segment_s) if name in enabled else results:
            first = _segment_index(r.start_s, origin, segment_s)
            # an audio chunk covers [start, end): it feeds every segment it overlaps
            last = _segment_index(max(r.start_s, r.end_s - 1e-6), origin, segment_s)
            for i in range(first, min(last, count - 1) + 1):
                buckets[i][name].append(r.payload)
    segments = []
    for i, bucket in enumerate(buckets):
        start = origin + i * segment_s
        mid = start + segment_s / 2
        shot = next((s["index"] for s in shots if s["start_s"] <= mid < s["end_s"]), shots[-1]["index"])
        fields = {
            name: enabled[name].segment_fields(payloads)
            for name, payloads in bucket.items()
            if name in enabled and payloads
        }
        segments.append(
            {
                "index": i,
                "start_s": round(start, 4),
                "end_s": round(min(start + segment_s, end_s), 4),
                "shot": shot,
                **fields,
            }
        )
    return segments


def media_span(
    video: dict[str, Any],
    by_analyzer: dict[str, list[ItemResult]],
    enabled: dict[str, type[Analyzer]],
    segment_s: float,
    max_span_s: float | None,
) -> tuple[float, float]:
    """(start, end) of the media: what its items cover, not what its header (or a forged event) claims.

    The header's end stands when items reach it (the last frame lasts past its timestamp), but never more
    than one segment past the last item, and the span never exceeds max_span_s: an audio stream that
    starts at 80,000 s makes 4 segments, not 80,004, and a claimed 2,000,000 s makes none extra."""
    start_s = float(video.get("start_s") or 0.0)
    end_s = max(float(video.get("duration_s") or 0.0), start_s)
    media = [n for n in by_analyzer if n in enabled and enabled[n].input in ("frame", "audio")]
    items = [r for n in media for r in by_analyzer[n]]
    if items:  # frames and audio chunks carry the media's own timestamps (shots and descriptions do not)
        start_s = min(r.start_s for r in items)
        end_s = max(start_s, min(end_s, max(r.end_s for r in items) + segment_s))
    if max_span_s is not None:
        end_s = min(end_s, start_s + max_span_s)
    return start_s, end_s


def build(
    video: dict[str, Any],
    rows: list[dict[str, Any]],
    enabled: dict[str, type[Analyzer]],
    segment_s: float,
    failed_reason: str | None = None,
    enrich: bool = True,
    max_span_s: float | None = None,
) -> dict[str, Any]:
    """The reconstruction document for one video from its videos row and stored results.

    `enrich` adds what it is about (keywords, topics, calls to action; an embedding model), the shot
    thumbnails and a warning per analyzer gap: the final document has them, the aggregator's look at a video's shots does not need them."""
    expected: dict[str, int] = json.loads(video.get("expected") or "{}")
    registry = all_analyzers()
    # the producer's view (what it published for) wins over this process's configuration
    enabled = {**enabled, **{n: registry[n] for n in expected if n in registry}}
    by_analyzer: dict[str, list[ItemResult]] = defaultdict(list)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    models: dict[str, tuple[str, str]] = {}
    first_errors: dict[str, str] = {}
    shed: dict[str, list[int]] = defaultdict(list)
    economy: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        counts[row["analyzer"]][0] += 1
        if row["error"]:
            counts[row["analyzer"]][1] += 1
            first_errors.setdefault(row["analyzer"], row["error"])
            continue
        models[row["analyzer"]] = (row["model"], row["provenance"])
        payload = json.loads(row["payload"])
        if stride := shed_stride(payload):  # received, not analyzed: stated below, never a finding
            shed[row["analyzer"]].append(stride)
            continue
        if stride := economy_stride(payload):  # analyzed in a cheaper mode: a finding, stated below
            economy[row["analyzer"]].append(stride)
        by_analyzer[row["analyzer"]].append(
            ItemResult(
                row["item_key"], row["start_s"], row["end_s"], payload, row["model"], row["provenance"]
            )
        )
    for results in by_analyzer.values():
        results.sort(key=lambda r: (r.start_s, r.item_key))
    has = {
        "frame": bool(video.get("has_video")),
        "audio": bool(video.get("has_audio")),
        "shot": bool(video.get("has_video")),
    }
    states = _analyzer_states(expected, {k: (v[0], v[1]) for k, v in counts.items()}, enabled, models, has)
    notes = shed_notes(states, shed) + economy_notes(states, economy, enabled)
    summaries = {
        name: summary
        for name, results in by_analyzer.items()
        if name in enabled and (summary := enabled[name].video_summary(results)) is not None
    }
    start_s, end_s = media_span(video, by_analyzer, enabled, segment_s, max_span_s)
    fields = _document_fields(summaries, enabled)
    bounds = shot_bounds(fields["cuts"], fields["transitions"])
    origin = math.floor(max(start_s, 0.0) / segment_s) * segment_s
    shots = shots_from_cuts(bounds, start_s, end_s) if end_s > start_s else []
    segments = build_segments(by_analyzer, enabled, shots, origin, end_s, segment_s) if shots else []
    for name, results in by_analyzer.items():
        if name in enabled:
            for index, added in enabled[name].shot_fields(results, shots).items():
                shots[index].update(added)
    warnings = list(video.get("warnings") or [])
    if enrich and not failed_reason:
        warnings += gap_warnings(states, first_errors, {n: c.group for n, c in enabled.items()})
    metadata = json.loads(video.get("metadata") or "{}")
    if failed_reason:
        status = VideoStatus.FAILED
    elif warnings or any(s["state"] not in _DONE for s in states.values()):
        status = VideoStatus.DEGRADED
    else:
        status = VideoStatus.COMPLETE
    about_block = None
    if enrich and not failed_reason:
        for name, results in by_analyzer.items():
            if name in enabled:
                for index, uri in enabled[name].shot_thumbnails(results, shots).items():
                    shots[index]["thumbnail"] = uri
        about_block = about(fields["transcript"], fields["text_events"], metadata)
    return ReconstructionDocument(
        video_id=video["video_id"],
        status=status,
        error=failed_reason,
        uri=video.get("uri", ""),
        metadata=metadata,
        options=json.loads(video.get("options") or "{}"),
        duration_s=round(end_s, 4),
        start_s=round(start_s, 4),
        media=Media.model_validate(video),
        shots=shots,
        cuts=fields["cuts"],
        transitions=fields["transitions"],
        segment_s=segment_s,
        segments=segments,
        analyzers=states,
        description=fields["description"],
        transcript=fields["transcript"],
        text_events=fields["text_events"],
        tracks=fields["tracks"],
        faces=fields["faces"],
        camera=fields["camera"],
        speaking=speaking(by_analyzer, summaries, states),
        about=about_block,
        summaries={k: v for k, v in summaries.items() if not enabled[k].summary_promoted},
        warnings=warnings,
        notes=notes,
        absent_streams=[] if failed_reason else [k for k in ("video", "audio") if not video.get(f"has_{k}")],
    ).model_dump()


def shot_context(doc: dict[str, Any], shot: dict[str, Any]) -> dict[str, Any]:
    """What the other analyzers found during one shot, in the keys shot analyzers read (see captions.py):
    each analyzer's `shot_context` over its segment fields in the shot."""
    segments = [s for s in doc["segments"] if s["shot"] == shot["index"]]
    context: dict[str, Any] = {}
    for name, cls in all_analyzers().items():  # every key present, empty when its analyzer did not run
        context.update(cls.shot_context([s[name] for s in segments if name in s]))
    turns = (doc.get("speaking") or {}).get("turns") or []
    context["speaker_on_screen"] = on_screen_during(turns, shot["start_s"], shot["end_s"])
    states = doc.get("analyzers") or {}  # a partial document (the shot captioner's tests) has none
    context["unseen"] = [
        name for name in PEOPLE_FINDERS if name in states and states[name]["state"] not in _DONE
    ]
    if states:  # which finders looked at this shot: done, with results in it (not disabled, not unsampled)
        context["people_looked"] = [
            name
            for name in PEOPLE_FINDERS
            if name in states and states[name]["state"] in _DONE and any(name in s for s in segments)
        ]
    return context


def for_event(doc: dict[str, Any], limit_bytes: int) -> str:
    """The document as JSON for the reconstructions topic, kept under the broker's message limit: shot
    thumbnails go first, then the per-second segments (both stay in ClickHouse and the API); what was left
    out is named in `omitted`."""
    document = json.dumps(doc, separators=(",", ":"))
    if len(document) <= limit_bytes:
        return document
    slim = {
        **doc,
        "shots": [{k: v for k, v in shot.items() if k != "thumbnail"} for shot in doc["shots"]],
        "omitted": ["shots[].thumbnail"],
    }
    document = json.dumps(slim, separators=(",", ":"))
    if len(document) <= limit_bytes:
        return document
    slim = {**slim, "segments": [], "omitted": ["shots[].thumbnail", "segments"]}
    return json.dumps(slim, separators=(",", ":"))


def part_for_event(doc: dict[str, Any], part: str, limit_bytes: int) -> str:
    """One part of the document as JSON for its topic; shots lose their thumbnails if they would not fit."""
    document = json.dumps(doc[part], separators=(",", ":"))
    if part == "shots" and len(document) > limit_bytes:
        document = json.dumps(
            [{k: v for k, v in shot.items() if k != "thumbnail"} for shot in doc[part]], separators=(",", ":")
        )
    return document
