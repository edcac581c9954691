"""SRT and TTML renderings of a reconstruction's subtitle cues (exports.cues), for editors and broadcast
tools that take no WebVTT. SRT has no styling, so several speakers are named in brackets and on-screen text
is prefixed; TTML (IMSC-style) puts speech at the bottom and on-screen text at the top, in two regions.
"""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

from reelscope.sinks.exports import Track, cues, several_speakers, vtt_time, wrap

TTML_NS = "http://www.w3.org/ns/ttml"
TTS_NS = "http://www.w3.org/ns/ttml#styling"
TTM_NS = "http://www.w3.org/ns/ttml#metadata"
XML_NS = "http://www.w3.org/XML/1998/namespace"


def srt_time(t: float) -> str:
    """HH:MM:SS,mmm: WebVTT's time with SRT's comma before the milliseconds."""
    return vtt_time(t).replace(".", ",")


def to_srt(doc: dict[str, Any], track: Track = "all") -> str:
    """Numbered blocks separated by a blank line; cue text has no blank lines (they would end the block)."""
    found = cues(doc, track)
    several = several_speakers(found)
    blocks = []
    for i, cue in enumerate(found, 1):
        text = " ".join(cue.text.split())
        if cue.kind == "speech" and several and cue.speaker:
            text = f"[{cue.speaker}] {text}"
        elif cue.kind == "text" and track == "all":
            text = f"TEXT: {text}"
        blocks.append(f"{i}\n{srt_time(cue.start)} --> {srt_time(cue.end)}\n" + "\n".join(wrap(text)) + "\n")
    return "\n".join(blocks)


def to_ttml(doc: dict[str, Any], track: Track = "all") -> str:
    """A TTML document: one <p> per cue in the speech or text region, lines split by <br/>, the speaker
    named before the text when there are several; the XML writer escapes every text."""
    ET.register_namespace("", TTML_NS)
    ET.register_namespace("tts", TTS_NS)
    ET.register_namespace("ttm", TTM_NS)
    tt = ET.Element(f"{{{TTML_NS}}}tt", {f"{{{XML_NS}}}lang": _language(doc)})
    head = ET.SubElement(tt, f"{{{TTML_NS}}}head")
    metadata = ET.SubElement(head, f"{{{TTML_NS}}}metadata")
    ET.SubElement(metadata, f"{{{TTM_NS}}}title").text = str(doc.get("video_id", ""))
    layout = ET.SubElement(head, f"{{{TTML_NS}}}layout")
    for name, origin in (("speech", "10% 80%"), ("text", "10% 5%")):
        ET.SubElement(
            layout,
            f"{{{TTML_NS}}}region",
            {f"{{{XML_NS}}}id": name, f"{{{TTS_NS}}}origin": origin, f"{{{TTS_NS}}}extent": "80% 15%"},
        )
    div = ET.SubElement(ET.SubElement(tt, f"{{{TTML_NS}}}body"), f"{{{TTML_NS}}}div")
    found = cues(doc, track)
    several = several_speakers(found)
    for cue in found:
        p = ET.SubElement(
            div,
            f"{{{TTML_NS}}}p",
            {"begin": vtt_time(cue.start), "end": vtt_time(cue.end), "region": cue.kind},
        )
        lines = wrap(" ".join(cue.text.split()))
        if cue.kind == "speech" and several and cue.speaker:
            lines[0] = f"{cue.speaker}: {lines[0]}"
        p.text = lines[0]
        for line in lines[1:]:
            ET.SubElement(p, f"{{{TTML_NS}}}br").tail = line
    return ET.tostring(tt, encoding="unicode", xml_declaration=True)


def _language(doc: dict[str, Any]) -> str:
    language = (doc.get("transcript") or {}).get("language")
    return str(language) if language else "und"
