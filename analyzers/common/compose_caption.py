"""Composed shot captions: one sentence per shot written from what the other analyzers found in it (its
`ShotItem.context`; the keys are listed in analyzers/captions.py). It says what was found, never more."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MAX_CAPTION_CHARS = 400
"""Belt and braces over max_new_tokens: a caption never exceeds this, so payloads stay small."""


def clean_text(text: str, limit: int = MAX_CAPTION_CHARS) -> str:
    """One line, single spaces, at most `limit` characters (cut at a word boundary)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"


_NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_IRREGULAR = {"person": "people", "man": "men", "woman": "women", "child": "children", "mouse": "mice"}
_INVARIANT = {"sheep", "skis", "scissors", "glasses", "people"}


def _plural(label: str) -> str:
    if label in _IRREGULAR:
        return _IRREGULAR[label]
    if label in _INVARIANT:
        return label
    last = label.rsplit(" ", 1)[-1]
    if last.endswith(("s", "x", "z", "ch", "sh")):
        return label + "es"
    if last.endswith("y") and len(last) > 1 and last[-2] not in "aeiou":
        return label[:-1] + "ies"
    return label + "s"


def counted(n: int, label: str) -> str:
    """'a car', 'an apple', 'two people', '12 cars'."""
    if n == 1:
        return ("an " if label[:1] in "aeiou" else "a ") + label
    return f"{_NUMBERS[n] if 0 <= n < len(_NUMBERS) else n} {_plural(label)}"


def _join(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _camera_phrase(label: str) -> str:
    label = " ".join(label.lower().replace("_", " ").split())
    if label in ("", "unknown"):
        return ""
    if label in ("static", "still", "fixed"):
        return "static camera"
    if label in ("shake", "shaky", "handheld"):
        return "handheld camera"
    verb, _, rest = label.partition(" ")
    if verb in ("pan", "tilt", "zoom", "dolly", "truck", "rotate"):
        return f"camera {verb}s {rest}".strip()
    return f"camera {label}"


_SHOT_TYPES = {"talking_head": "talking-head", "two_shot": "two-person", "no_face": ""}
"""faces' shot_type labels as words before 'shot'."""


def _quote(text: str, limit: int) -> str:
    return "'" + clean_text(text.replace("'", "’"), limit) + "'"


_GESTURES = {
    "pointing": "pointing",
    "open_palm": "showing an open palm",
    "thumbs_up": "giving a thumbs-up",
    "hands_raised": "hands raised",
    "arms_crossed": "arms crossed",
}


def _behaviour(context: dict[str, Any], speaks: bool) -> str:
    """'a person talks to the camera, pointing': eye contact (faces), gestures (hands, pose), emotion.
    Talks only when the speech was placed on a visible face (`speaker_on_screen`); else it looks."""
    seen = [*(context.get("gestures") or []), *(context.get("body") or [])]
    gestures = [_GESTURES[g] for g in dict.fromkeys(seen) if g in _GESTURES]
    head = ""
    if context.get("eye_contact"):
        talks = speaks and context.get("speaker_on_screen") is True
        head = "a person talks to the camera" if talks else "a person looks into the camera"
    emotion = str(context.get("emotion") or "")
    tail = gestures + ([f"looking {emotion}"] if emotion and emotion != "neutral" else [])
    return ", ".join(([head] if head else []) + tail)


def _nothing_found(unseen: Sequence[str], looked: Sequence[str] | None) -> str:
    """What an empty shot is called: 'no people' only when every analyzer that finds people had its
    results and one of them looked at this shot; else it says which ones are missing, or that none looked,
    so no absence is claimed that was not looked for. `looked` None: the context does not say (old
    callers), only missing finders count."""
    if unseen:
        return f"nothing detected, but {_join(list(unseen))} results are missing, so people may be present"
    if looked is not None and not looked:
        return "nothing detected (no analyzer that finds people looked at this shot)"
    return "no people or objects detected"


def compose_caption(duration_s: float, context: dict[str, Any]) -> str:
    """A caption written from the other analyzers' findings for one shot (keys: the module docstring)."""
    objects = {str(k): int(v) for k, v in (context.get("objects") or {}).items() if int(v) > 0}
    order = sorted(objects, key=lambda k: (k != "person", -objects[k], k))
    subjects = [counted(objects[k], k) for k in order[:4]]
    if len(order) > 4:
        subjects.append(f"{len(order) - 4} other kinds of object")
    faces = int(context.get("faces") or 0)
    if faces and "person" not in objects:
        subjects.insert(0, counted(faces, "face"))
    shot_type = str(context.get("shot_type") or "").strip()
    shot_type = _SHOT_TYPES.get(shot_type, shot_type.replace("_", " "))
    head = f"{duration_s:.1f} s {shot_type + ' ' if shot_type else ''}shot: "
    parts = [
        _join(subjects)
        if subjects
        else _nothing_found(context.get("unseen") or [], context.get("people_looked"))
    ]
    appearing = sorted((float(v), str(k)) for k, v in (context.get("appearing") or {}).items())
    parts += [f"{counted(1, label)} appears {share * duration_s:.1f} s in" for share, label in appearing[:3]]
    lines = [clean_text(t, 60) for t in context.get("text") or [] if str(t).strip()]
    if lines:
        shown = ", ".join(_quote(t, 40) for t in lines[:3])
        parts.append(
            f"on-screen text {shown}" + (f" and {len(lines) - 3} more lines" if len(lines) > 3 else "")
        )
    words = str(context.get("speech") or "").split()
    if behaviour := _behaviour(context, bool(words)):
        parts.append(behaviour)
    if words:
        spoken = " ".join(words[:15]) + (" …" if len(words) > 15 else "")
        voice = "off-screen speech" if context.get("speaker_on_screen") is False else "speech"
        parts.append(f"{voice}: {_quote(spoken, 120)}")
    if camera := _camera_phrase(str(context.get("camera") or "")):
        parts.append(camera)
    brightness = context.get("brightness")
    if isinstance(brightness, int | float) and not isinstance(brightness, bool):
        if brightness < 0.2:
            parts.append("dark")
        elif brightness > 0.8:
            parts.append("bright")
    return clean_text(head + "; ".join(parts) + ".")
