"""Hashtags, @mentions and links in text: what on-screen text (ocr_text) and a video's "about" part
(sinks/about.py, over speech and metadata too) both look for."""

from __future__ import annotations

import re
from collections.abc import Sequence

HASHTAG = re.compile(r"(?<![\w#])#(\w+)")
MENTION = re.compile(r"(?<![\w@])@(\w(?:[\w.]*\w)?)")
LINK = re.compile(
    r"\b(?:https?://\S+|www\.\S+|[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\."
    r"(?:com|net|org|io|co|tv|me|ly|gg|app|shop|store|link|bio|xyz|info|dev|ai)(?:/\S*)?)",
    re.IGNORECASE,
)


def extract_entities(texts: Sequence[str]) -> dict[str, list[str]]:
    """Hashtags, @mentions and links found in the texts, each once, in order of first appearance."""
    found: dict[str, dict[str, None]] = {"hashtags": {}, "mentions": {}, "links": {}}
    for text in texts:
        for tag in HASHTAG.findall(text):
            found["hashtags"].setdefault("#" + tag, None)
        for handle in MENTION.findall(text):
            found["mentions"].setdefault("@" + handle, None)
        for link in LINK.findall(text):
            found["links"].setdefault(link.rstrip(".,;:!?)"), None)
    return {k: list(v) for k, v in found.items()}
