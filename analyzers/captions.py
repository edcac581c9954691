"""Shot captions: one sentence per shot from a vision-language model, or composed from what the others found.

Generated mode (`captions.model` set): a transformers vision-language model, loaded once with
`from_pretrained` from a local directory or a model id already in the local cache (nothing is downloaded).
Image-text families (BLIP, BLIP-2) caption the shot's middle frame; multi-frame families caption K frames
spread across the shot, as a video (Qwen2-VL, Qwen2.5-VL, LLaVA-NeXT-Video) or as K pictures (SmolVLM).
Shots of several videos share one `generate` call per batch (left-padded prompts for the decoder-only
families), decoding is greedy and bounded by `max_new_tokens`.

Composed mode (no model configured, the default): every shot still gets a caption, written from the
shot's `ShotItem.context`, which the describe group fills from the other analyzers' results. The caption
says what was found, never more, and is labelled `composed`. Context keys (all optional):

    objects     dict[str, int]  label -> most visible at once in the shot (objects' `counts`, max over
                                the shot's frames), e.g. {"person": 2, "car": 1}
    faces       int             most faces visible at once (faces' face_count, max over the shot)
    shot_type   str             framing (faces' shot_type, its mode over the shot): "close-up",
                                "talking_head", "two_shot", "group", "wide"; "no_face" is left out
    text        list[str]       on-screen text lines in order of first appearance, each once (ocr_text)
    speech      str             words spoken during the shot, joined by spaces (transcription words)
    camera      str             camera motion (camera's label, the shot's longest run): "static",
                                "pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out",
                                "shake"; "unknown" is left out
    brightness  float           mean luma 0..1 over the shot (color's brightness)

A model whose config.json carries `"reelscope_provenance": "random-test"` (what the tests and the
benchmark write next to their random models) is reported as random-test whatever the settings say.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from reelscope.analyzers.base import Analyzer, Item, ItemResult, Sampling, ShotItem
from reelscope.analyzers.describe import (
    MAX_DESCRIPTION_CHARS,
    RANDOM_TEST_MARKER,
    TextModel,
    compose_description,
    describe,
    stop_ids,
)
from reelscope.infra.core.settings import CaptionSettings
from reelscope.schemas.events import Provenance

log = logging.getLogger(__name__)

MAX_CAPTION_CHARS = 400
"""Belt and braces over max_new_tokens: a caption never exceeds this, so payloads stay small."""
COMPOSED = "composed"


@dataclass(frozen=True)
class _FamilySpec:
    visual: Literal["image", "video", "images"]
    """image: one picture; video: K frames as one clip; images: K frames as K pictures."""
    chat: bool
    """Prompted through the processor's chat template (decoder-only, left-padded)."""
    default_frames: int
    default_prompt: str


_CHAT_PROMPT = "Describe this video shot in one sentence."
FAMILIES: dict[str, _FamilySpec] = {
    "blip": _FamilySpec("image", chat=False, default_frames=1, default_prompt=""),
    "blip2": _FamilySpec("image", chat=False, default_frames=1, default_prompt=""),
    "qwen2_vl": _FamilySpec("video", chat=True, default_frames=4, default_prompt=_CHAT_PROMPT),
    "qwen2_5_vl": _FamilySpec("video", chat=True, default_frames=4, default_prompt=_CHAT_PROMPT),
    "llava_next_video": _FamilySpec("video", chat=True, default_frames=4, default_prompt=_CHAT_PROMPT),
    "smolvlm": _FamilySpec("images", chat=True, default_frames=4, default_prompt=_CHAT_PROMPT),
}
_MODEL_TYPES: dict[str, tuple[str, str]] = {
    "blip": ("blip", "BlipForConditionalGeneration"),
    "blip-2": ("blip2", "Blip2ForConditionalGeneration"),
    "qwen2_vl": ("qwen2_vl", "Qwen2VLForConditionalGeneration"),
    "qwen2_5_vl": ("qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration"),
    "llava_next_video": ("llava_next_video", "LlavaNextVideoForConditionalGeneration"),
    "smolvlm": ("smolvlm", "SmolVLMForConditionalGeneration"),
    "idefics3": ("smolvlm", "Idefics3ForConditionalGeneration"),
}
"""config.json model_type -> (family, model class); idefics3 is SmolVLM v1's architecture."""


def pick_frames(count: int, k: int) -> list[int]:
    """Indices of k frames spread evenly across `count` (the centres of k equal parts; k=1: the middle).
    A shot with fewer frames repeats some, so every clip of a batch has K frames (LLaVA-NeXT-Video stacks
    them into one tensor)."""
    if count <= 0:
        return []
    return [min(count - 1, math.floor((i + 0.5) * count / k)) for i in range(k)]


def clean_text(text: str, limit: int = MAX_CAPTION_CHARS) -> str:
    """One line, single spaces, at most `limit` characters (cut at a word boundary)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"


# --- composed captions -------------------------------------------------------------------------------

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
    parts = [_join(subjects) if subjects else "no people or objects detected"]
    lines = [clean_text(t, 60) for t in context.get("text") or [] if str(t).strip()]
    if lines:
        shown = ", ".join(_quote(t, 40) for t in lines[:3])
        parts.append(
            f"on-screen text {shown}" + (f" and {len(lines) - 3} more lines" if len(lines) > 3 else "")
        )
    words = str(context.get("speech") or "").split()
    if words:
        spoken = " ".join(words[:15]) + (" …" if len(words) > 15 else "")
        parts.append(f"speech: {_quote(spoken, 120)}")
    if camera := _camera_phrase(str(context.get("camera") or "")):
        parts.append(camera)
    brightness = context.get("brightness")
    if isinstance(brightness, int | float) and not isinstance(brightness, bool):
        if brightness < 0.2:
            parts.append("dark")
        elif brightness > 0.8:
            parts.append("bright")
    return clean_text(head + "; ".join(parts) + ".")


# --- the analyzer --------------------------------------------------------------------------------------


class CaptionAnalyzer(Analyzer):
    """One caption per shot with its time span; see the module docstring for the two modes."""

    name = "captions"
    input = "shot"
    group = "describe"
    sampling = Sampling(fps=2.0, max_side=448)
    requires = ("transformers", "torch")
    model_name = COMPOSED
    provenance: Provenance = "composed"

    def __init__(self, settings: Any = None, config: CaptionSettings | None = None) -> None:
        super().__init__(settings)
        self.config = config or (settings.captions if settings is not None else CaptionSettings())
        self.family: str | None = None
        self.load_seconds: float | None = None
        self.warmup_seconds: float | None = None
        self.generate_overrides: dict[str, Any] = {}
        """Extra `generate` arguments; the benchmark pins the output length with min_new_tokens."""
        self._model: Any = None
        self._processor: Any = None
        self._device: Any = None
        self._dtype: Any = None
        self._provenance: Provenance = "configured"
        self._text_model: Any = None

    # -- model identity -------------------------------------------------------------------------------

    @property
    def generated(self) -> bool:
        return bool(self.config.model)

    def describe_model(self) -> tuple[str, Provenance]:
        if not self.generated:
            return COMPOSED, "composed"
        return self.config.model, self._provenance if self._model is not None else self._configured()

    def _configured(self) -> Provenance:
        return "random-test" if self.config.provenance == "random-test" else "configured"

    @property
    def frames_per_shot(self) -> int:
        spec = FAMILIES[self.family or "qwen2_vl"]
        return self.config.frames_per_shot or spec.default_frames

    @property
    def prompt(self) -> str:
        return self.config.prompt or FAMILIES[self.family or "qwen2_vl"].default_prompt

    # -- loading --------------------------------------------------------------------------------------

    def load(self) -> None:
        """Load model and processor once, time it, and run one warm-up batch; composed mode loads nothing."""
        if not self.generated:
            log.info("captions: no model configured; shot captions are composed from other analyzers")
            return
        import transformers

        started = time.perf_counter()
        source = self.config.model
        try:
            config = transformers.AutoConfig.from_pretrained(source, local_files_only=True)
            model_type = getattr(config, "model_type", "")
            if model_type not in _MODEL_TYPES:
                raise ValueError(
                    f"model_type {model_type!r} is not a supported captioning architecture "
                    f"({', '.join(sorted(_MODEL_TYPES))})"
                )
            family, class_name = _MODEL_TYPES[model_type]
            if self.config.family not in ("auto", family):
                raise ValueError(f"captions.family is {self.config.family!r} but the model is {family!r}")
            self._device = _resolve_device(self.config.device)
            self._dtype = _resolve_dtype(self.config.dtype, self._device)
            kwargs: dict[str, Any] = {"dtype": self._dtype, "local_files_only": True}
            if self.config.quantization != "none":
                kwargs.update(_quantization_kwargs(self.config.quantization, self._dtype, self._device))
            model = getattr(transformers, class_name).from_pretrained(source, **kwargs)
            if "quantization_config" not in kwargs:
                model = model.to(self._device)
            self._model = model.eval()
            self._processor = transformers.AutoProcessor.from_pretrained(source, local_files_only=True)
        except Exception as exc:
            raise RuntimeError(f"captions: cannot load the captioning model {source!r}: {exc}") from exc
        self.family = family
        self._provenance = (
            "random-test"
            if getattr(config, RANDOM_TEST_MARKER, None) == "random-test"
            else self._configured()
        )
        if FAMILIES[family].chat:
            tokenizer = self._processor.tokenizer
            tokenizer.padding_side = "left"
            if not getattr(self._processor, "chat_template", None):
                raise RuntimeError(f"captions: the processor of {source!r} has no chat template")
        if self.config.text_model:
            self._text_model = TextModel(
                self.config.text_model, self._device, self._dtype, self.config.provenance
            ).load()
        self.load_seconds = time.perf_counter() - started
        started = time.perf_counter()
        try:
            self._warm_up()
        except Exception as exc:
            raise RuntimeError(f"captions: the warm-up batch failed on {source!r}: {exc}") from exc
        self.warmup_seconds = time.perf_counter() - started
        log.info(
            "captions: loaded %s (%s, %s, %s, %s) in %.2f s; warm-up batch %.2f s",
            source,
            family,
            self._device,
            str(self._dtype).removeprefix("torch."),
            self._provenance,
            self.load_seconds,
            self.warmup_seconds,
        )

    def _warm_up(self) -> None:
        """Caption two synthetic shots of different shapes, so the first real batch pays no set-up cost and
        a model that cannot caption fails here, at start."""
        rng = np.random.default_rng(0)
        shots = [
            [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(self.frames_per_shot)]
            for h, w in ((448, 252), (252, 448))
        ]
        self._generate(shots[: max(1, min(2, self.config.batch_size))], min(4, self.config.max_new_tokens))

    # -- analysis -------------------------------------------------------------------------------------

    def analyze(self, items: Sequence[Item]) -> list[dict[str, Any]]:
        shots = []
        for item in items:
            if not isinstance(item, ShotItem):
                raise TypeError(f"captions takes shots, got {type(item).__name__}")
            shots.append(item)
        if self.generated and self._model is None:
            raise RuntimeError("CaptionAnalyzer.load() was not called")
        payloads: list[dict[str, Any] | None] = [None] * len(shots)
        todo: list[tuple[int, list[int]]] = []
        for i, shot in enumerate(shots):
            if self.generated and shot.frames:
                todo.append((i, pick_frames(len(shot.frames), self.frames_per_shot)))
            else:
                payloads[i] = self._composed(shot)
        size = self.config.batch_size
        for start in range(0, len(todo), size):
            chunk = todo[start : start + size]
            frames = [[shots[i].frames[j] for j in picked] for i, picked in chunk]
            for (i, picked), (caption, tokens) in zip(
                chunk, self._generate(frames, self.config.max_new_tokens), strict=True
            ):
                shot = shots[i]
                payloads[i] = {
                    **self._span(shot),
                    "caption": caption,
                    "model": self.config.model,
                    "provenance": self._provenance,
                    "mode": "generated",
                    "frames_used": [round(float(shot.frame_times[j]), 3) for j in picked],
                    "tokens": tokens,
                }
        return [p for p in payloads if p is not None]

    @staticmethod
    def _span(shot: ShotItem) -> dict[str, Any]:
        return {"start_s": round(shot.start_s, 3), "end_s": round(shot.end_s, 3)}

    def _composed(self, shot: ShotItem) -> dict[str, Any]:
        return {
            **self._span(shot),
            "caption": compose_caption(shot.end_s - shot.start_s, shot.context),
            "model": COMPOSED,
            "provenance": "composed",
            "mode": "composed",
            "frames_used": [],
            "tokens": 0,
        }

    def _generate(self, shots: list[list[np.ndarray]], max_new_tokens: int) -> list[tuple[str, int]]:
        """One `generate` call for a batch of shots (each a list of RGB frames): (caption, tokens) each."""
        import torch

        inputs = self._inputs(shots)
        with torch.inference_mode():
            out = self._model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                **self.generate_overrides,
            )
        return self._decode(out, inputs.get("input_ids"), max_new_tokens)

    def _inputs(self, shots: list[list[np.ndarray]]) -> Any:
        spec = FAMILIES[self.family or ""]
        shots = [_same_size(frames) for frames in shots]
        processor = self._processor
        if not spec.chat:
            images = [frames[len(frames) // 2] for frames in shots]
            text = [self.prompt] * len(shots) if self.prompt or self.family == "blip2" else None
            inputs = processor(images=images, text=text, return_tensors="pt", padding=True)
        else:
            texts = [
                processor.apply_chat_template(
                    [{"role": "user", "content": [*self._visual_content(spec, len(f)), _text(self.prompt)]}],
                    add_generation_prompt=True,
                    tokenize=False,
                )
                for f in shots
            ]
            if spec.visual == "video":
                inputs = processor(
                    text=texts, videos=[np.stack(f) for f in shots], return_tensors="pt", padding=True
                )
            else:
                inputs = processor(
                    text=texts, images=[list(f) for f in shots], return_tensors="pt", padding=True
                )
        return inputs.to(self._device).to(self._dtype)

    @staticmethod
    def _visual_content(spec: _FamilySpec, frames: int) -> list[dict[str, str]]:
        return [{"type": "video"}] if spec.visual == "video" else [{"type": "image"} for _ in range(frames)]

    def _decode(
        self, out: Any, input_ids: Any, max_new_tokens: int, limit: int = MAX_CAPTION_CHARS
    ) -> list[tuple[str, int]]:
        """Captions and generated-token counts from `generate`'s output, without the prompt or padding."""
        tokenizer = getattr(self._processor, "tokenizer", self._processor)
        stops = stop_ids(self._model, tokenizer)
        if self.family == "blip":
            # BLIP's decoder continues the prompt (its [SEP] dropped, [CLS] replaced by [DEC]): keep the prompt
            # as the caption's start, as BLIP's own examples do, and count only what it added
            prefix = input_ids.shape[1] - 1 if input_ids is not None else 1
            keep_prompt = True
        elif (
            input_ids is not None
            and out.shape[1] >= input_ids.shape[1]
            and bool((out[:, : input_ids.shape[1]] == input_ids).all())
        ):
            prefix, keep_prompt = input_ids.shape[1], False
        else:
            # encoder-decoder language models (BLIP-2 with Flan-T5) return the decoder sequence only, opened
            # by its start token (T5's is the padding id)
            start = {getattr(self._model.generation_config, "decoder_start_token_id", None), *stops}
            prefix = 1 if out.shape[1] and all(t in start for t in out[:, 0].tolist()) else 0
            keep_prompt = False
        results = []
        for row in out.tolist():
            new = row[prefix:]
            tokens = next((n for n, t in enumerate(new) if t in stops), len(new))
            tokens = min(tokens, max_new_tokens)
            ids = row[: prefix + tokens] if keep_prompt else new[:tokens]
            results.append((clean_text(tokenizer.decode(ids, skip_special_tokens=True), limit), tokens))
        return results

    # -- whole-video description ----------------------------------------------------------------------

    def describe_video(
        self,
        shots: list[dict[str, Any]],
        transcript: str = "",
        texts: Sequence[str] = (),
        meta: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The whole-video description once a video's shots are captioned: generated by the configured text
        model, else by the captioning model when it can write from text alone, else composed."""
        return describe(
            self.text_generator(),
            shots,
            transcript,
            texts,
            meta or {},
            self.config.description_max_new_tokens,
        )

    def text_generator(self) -> Any:
        """What writes the whole-video description (a `describe.TextGenerator`), or None: composed."""
        if self._text_model is not None:
            return self._text_model
        if self._model is not None and self.family is not None and FAMILIES[self.family].chat:
            return self
        return None

    def generate_text(self, prompt: str, max_new_tokens: int) -> tuple[str, int]:
        """Text-only generation with the loaded chat model (describe.TextGenerator)."""
        import torch

        processor = self._processor
        text = processor.apply_chat_template(
            [{"role": "user", "content": [_text(prompt)]}], add_generation_prompt=True, tokenize=False
        )
        inputs = processor(text=[text], return_tensors="pt", padding=True).to(self._device)
        with torch.inference_mode():
            out = self._model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
        return self._decode(out, inputs["input_ids"], max_new_tokens, MAX_DESCRIPTION_CHARS)[0]

    # -- aggregation ----------------------------------------------------------------------------------

    @classmethod
    def segment_fields(cls, payloads: list[dict[str, Any]]) -> dict[str, Any]:
        captions = list(dict.fromkeys(p["caption"] for p in payloads if p.get("caption")))
        if not captions:
            return {}
        return {"caption": " | ".join(captions), "caption_mode": payloads[0].get("mode", COMPOSED)}

    @classmethod
    def video_summary(cls, results: list[ItemResult]) -> dict[str, Any] | None:
        """The shot captions in time order and the whole-video description: a stored payload with a
        `description` (from `describe_video`) when there is one, else composed from the captions alone."""
        shots = [
            {
                "start_s": round(r.start_s, 3),
                "end_s": round(r.end_s, 3),
                "caption": r.payload["caption"],
                "mode": r.payload.get("mode", COMPOSED),
            }
            for r in results
            if r.payload.get("caption")
        ]
        described = next((r.payload for r in reversed(results) if r.payload.get("description")), None)
        if not shots and described is None:
            return None
        if described is None:
            described = {
                "description": compose_description(shots, "", [], {}),
                "model": COMPOSED,
                "provenance": "composed",
                "mode": "composed",
            }
        return {"shots": shots, **{k: described[k] for k in ("description", "model", "provenance", "mode")}}


def _text(text: str) -> dict[str, str]:
    return {"type": "text", "text": text}


def _same_size(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Frames of one clip must share a shape; the producer sends them so, this guards against one that
    does not (a mid-stream resolution change) by resizing to the first frame's size."""
    h, w = frames[0].shape[:2]
    if all(f.shape[:2] == (h, w) for f in frames):
        return frames
    from PIL import Image

    return [f if f.shape[:2] == (h, w) else np.asarray(Image.fromarray(f).resize((w, h))) for f in frames]


def _resolve_device(name: str) -> Any:
    import torch

    if name in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"captions.device is {name!r} but no CUDA device is available")
    return device


def _resolve_dtype(name: str, device: Any) -> Any:
    import torch

    if name != "auto":
        return getattr(torch, name)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _quantization_kwargs(mode: str, dtype: Any, device: Any) -> dict[str, Any]:
    """from_pretrained arguments for bitsandbytes 8-bit or 4-bit weights; fails clearly without it."""
    if importlib.util.find_spec("bitsandbytes") is None:
        raise RuntimeError(
            f"captions.quantization={mode} needs the bitsandbytes package (pip install bitsandbytes)"
        )
    from transformers import BitsAndBytesConfig

    if mode == "8bit":
        config = BitsAndBytesConfig(load_in_8bit=True)
    else:
        config = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_compute_dtype=dtype, bnb_4bit_quant_type="nf4"
        )
    return {"quantization_config": config, "device_map": {"": device}}
