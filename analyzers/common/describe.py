"""The whole-video description, built once a video's shots are captioned.

`compose_description` needs no model: it lays out what is known (length, framing, the shot captions in
time order, on-screen text, speech), so every video gets a description even when no language model is
configured; it is labelled `composed`. `generate_description` hands the same notes to a loaded generative
model (the captioning model when it can write from text alone, or a configured text model) and labels the
result with that model's provenance; `describe` picks between the two.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

from reelscope.analyzers.base import RANDOM_TEST_MARKER
from reelscope.schemas.events import Provenance

MAX_DESCRIPTION_CHARS = 2000
MAX_SHOTS_LISTED = 12
MAX_TEXT_LINES = 6
MAX_SPEECH_WORDS = 60
MAX_NOTES_CHARS = 3000
"""Prompt budget for the notes a model summarises (about 800 tokens)."""
_COMPOSED_HEAD = re.compile(r"^\d+(?:\.\d+)? s (?:(?P<kind>.+?) )?shot: ")
DESCRIPTION_PROMPT = (
    "Write a description of this short video in two or three sentences, using only these notes.\n"
    "{notes}\nDescription:"
)


class TextGenerator(Protocol):
    """A loaded model that writes text from a text prompt."""

    def describe_model(self) -> tuple[str, Provenance]: ...

    def generate_text(self, prompt: str, max_new_tokens: int) -> tuple[str, int]:
        """(text without the prompt, generated token count)."""
        ...


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def _span(shot: dict[str, Any]) -> str:
    return f"{float(shot['start_s']):.1f}–{float(shot['end_s']):.1f} s"


def _shot_text(caption: str) -> str:
    """A composed caption without its own 'N s <kind> shot:' head (the listing gives the time span)."""
    match = _COMPOSED_HEAD.match(caption)
    if not match:
        return caption
    rest = caption[match.end() :]
    return f"{match['kind']}: {rest}" if match["kind"] else rest


def _overview(
    shots: Sequence[dict[str, Any]], transcript: str, texts: Sequence[str], meta: dict[str, Any]
) -> str:
    duration = float(meta.get("duration_s") or max((float(s["end_s"]) for s in shots), default=0.0))
    width, height = int(meta.get("width") or 0), int(meta.get("height") or 0)
    shape = ""
    if width and height:
        shape = "vertical " if height > 1.1 * width else "horizontal " if width > 1.1 * height else "square "
    n = len(shots)
    line = f"A {duration:.1f} s {shape}video" + (f" in {n} shot{'s' if n != 1 else ''}" if n else "")
    extras = [
        x
        for x, present in (
            ("speech", transcript.strip()),
            ("on-screen text", any(str(t).strip() for t in texts)),
        )
        if present
    ]
    if extras:
        line += " with " + " and ".join(extras)
    if title := str(meta.get("title") or "").strip():
        line += f", titled '{_clip(title, 80)}'"
    return line + "."


def _notes(
    shots: Sequence[dict[str, Any]], transcript: str, texts: Sequence[str], meta: dict[str, Any]
) -> list[str]:
    """The description's sentences: overview, shots in time order, on-screen text, speech."""
    ordered = sorted(shots, key=lambda s: float(s["start_s"]))
    out = [_overview(ordered, transcript, texts, meta)]
    listed = [
        f"{_span(s)}: {_shot_text(str(s['caption']))}" for s in ordered[:MAX_SHOTS_LISTED] if s.get("caption")
    ]
    if listed:
        more = len(ordered) - MAX_SHOTS_LISTED
        out.append(
            "Shots: "
            + "; ".join(s.rstrip(".") for s in listed)
            + (f"; and {more} more shots." if more > 0 else ".")
        )
    lines = list(dict.fromkeys(_clip(t, 60) for t in texts if str(t).strip()))
    if lines:
        shown = ", ".join(f"'{t}'" for t in lines[:MAX_TEXT_LINES])
        out.append(f"On-screen text: {shown}" + (" …" if len(lines) > MAX_TEXT_LINES else "") + ".")
    words = transcript.split()
    if words:
        out.append(
            "Speech: '"
            + " ".join(words[:MAX_SPEECH_WORDS])
            + (" …" if len(words) > MAX_SPEECH_WORDS else "")
            + "'."
        )
    return out


def compose_description(
    shots: Sequence[dict[str, Any]], transcript: str, texts: Sequence[str], meta: dict[str, Any]
) -> str:
    """A description written from what the analyzers found, without a model.

    shots: dicts with start_s, end_s and caption (generated or composed); transcript: the video's speech;
    texts: on-screen text events in order; meta: duration_s, width, height (upright) and optional title.
    """
    return _clip(" ".join(_notes(shots, transcript, texts, meta)), MAX_DESCRIPTION_CHARS)


def composed(
    shots: Sequence[dict[str, Any]], transcript: str, texts: Sequence[str], meta: dict[str, Any]
) -> dict[str, Any]:
    """The composed description as a payload."""
    return {
        "description": compose_description(shots, transcript, texts, meta),
        "model": "composed",
        "provenance": "composed",
        "mode": "composed",
        "tokens": 0,
    }


def generate_description(
    generator: TextGenerator,
    shots: Sequence[dict[str, Any]],
    transcript: str,
    texts: Sequence[str],
    meta: dict[str, Any],
    max_new_tokens: int = 120,
) -> dict[str, Any]:
    """The description a generative model writes from the notes; its model and provenance travel with it.
    A model that writes nothing gets the composed description instead (so labelled)."""
    notes = _clip("\n".join(_notes(shots, transcript, texts, meta)), MAX_NOTES_CHARS)
    text, tokens = generator.generate_text(DESCRIPTION_PROMPT.format(notes=notes), max_new_tokens)
    text = _clip(text, MAX_DESCRIPTION_CHARS)
    if not text:
        return composed(shots, transcript, texts, meta)
    model, provenance = generator.describe_model()
    return {
        "description": text,
        "model": model,
        "provenance": provenance,
        "mode": "generated",
        "tokens": tokens,
    }


def describe(
    generator: TextGenerator | None,
    shots: Sequence[dict[str, Any]],
    transcript: str,
    texts: Sequence[str],
    meta: dict[str, Any],
    max_new_tokens: int = 120,
) -> dict[str, Any]:
    """Generated when a generator is loaded, else composed."""
    if generator is None:
        return composed(shots, transcript, texts, meta)
    return generate_description(generator, shots, transcript, texts, meta, max_new_tokens)


def stop_ids(model: Any, tokenizer: Any) -> set[int]:
    """Token ids that end generated text: the generation config's EOS ids and the padding id."""
    stops: set[int] = set()
    for value in (
        getattr(model.generation_config, "eos_token_id", None),
        getattr(model.generation_config, "pad_token_id", None),
        getattr(tokenizer, "eos_token_id", None),
        getattr(tokenizer, "pad_token_id", None),
    ):
        if isinstance(value, int):
            stops.add(value)
        elif isinstance(value, list | tuple):
            stops.update(int(v) for v in value)
    return stops


class TextModel:
    """A configured causal language model (directory or cached id) that writes the description."""

    def __init__(self, source: str, device: Any, dtype: Any, provenance: str = "") -> None:
        self.source = source
        self.device = device
        self.dtype = dtype
        self.provenance: Provenance = "random-test" if provenance == "random-test" else "configured"
        self._model: Any = None
        self._tokenizer: Any = None

    def load(self) -> TextModel:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            self._tokenizer = AutoTokenizer.from_pretrained(self.source, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(self.source, dtype=self.dtype, local_files_only=True)
        except Exception as exc:
            raise RuntimeError(f"captions: cannot load the text model {self.source!r}: {exc}") from exc
        self._model = model.to(self.device).eval()
        if getattr(model.config, RANDOM_TEST_MARKER, None) == "random-test":
            self.provenance = "random-test"
        return self

    def describe_model(self) -> tuple[str, Provenance]:
        return self.source, self.provenance

    def generate_text(self, prompt: str, max_new_tokens: int) -> tuple[str, int]:
        import torch

        tokenizer = self._tokenizer
        if getattr(tokenizer, "chat_template", None):
            prompt = tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
            )
        inputs = tokenizer(prompt, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            out = self._model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
        new = out[0, inputs["input_ids"].shape[1] :].tolist()
        stops = stop_ids(self._model, tokenizer)
        tokens = next((n for n, t in enumerate(new) if t in stops), len(new))
        return " ".join(tokenizer.decode(new[:tokens], skip_special_tokens=True).split()), tokens
