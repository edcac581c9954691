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
    appearing   dict[str, float] label -> when it first shows, as a share of the shot, for objects that
                                come into view during it (objects), e.g. {"cat": 0.6}
    faces       int             most faces visible at once (faces' face_count, max over the shot)
    shot_type   str             framing (faces' shot_type, its mode over the shot): "close-up",
                                "talking_head", "two_shot", "group", "wide"; "no_face" is left out
    text        list[str]       on-screen text lines in order of first appearance, each once (ocr_text)
    speech      str             words spoken during the shot, joined by spaces (transcription words)
    camera      str             camera motion (camera's label, the shot's longest run): "static",
                                "pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out",
                                "shake"; "unknown" is left out
    brightness  float           mean luma 0..1 over the shot (color's brightness)
    eye_contact bool            a face looks into the camera in most sampled frames (faces' face mesh)
    emotion     str             the face emotion seen most (faces), e.g. "happy"; "neutral" is left out
    gestures    list[str]       hand gestures seen in a quarter of the shot's frames or more (hands):
                                "pointing", "open_palm", "thumbs_up"
    body        list[str]       body cues seen as often (pose): "hands_raised", "arms_crossed", "pointing"
    speaker_on_screen bool|None the shot's speech comes from a visible face (True, its mouth moves), from
                                off-screen (False), or cannot be told (None): the document's `speaking`
    unseen      list[str]       the analyzers that find people (faces, objects, pose) whose results are
                                missing or failed: no caption then claims there are no people
    people_looked list[str]     the analyzers that find people with results in this shot (set when the
                                document has analyzer states): empty, no caption claims there are none

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
from pydantic import BaseModel, Field
from reelscope.analyzers.base import ItemResult, Runtime, Sampling, ShotAnalyzer, ShotItem
from reelscope.analyzers.common.compose_caption import MAX_CAPTION_CHARS, clean_text, compose_caption
from reelscope.analyzers.common.describe import (
    MAX_DESCRIPTION_CHARS,
    RANDOM_TEST_MARKER,
    TextModel,
    compose_description,
    describe,
    stop_ids,
)
from reelscope.analyzers.common.torch_device import resolve_device, resolve_dtype
from reelscope.schemas.events import Provenance

log = logging.getLogger(__name__)

COMPOSED = "composed"

CaptionFamily = Literal["auto", "blip", "blip2", "qwen2_vl", "qwen2_5_vl", "llava_next_video", "smolvlm"]


class CaptionsOptions(BaseModel):
    """Shot captioning and the whole-video description (REELSCOPE_CAPTIONS__*)."""

    model: str = ""
    """Local directory or a model id already in the local Hugging Face cache; empty: composed captions."""
    family: CaptionFamily = "auto"
    """`auto` reads it from the model's config (model_type)."""
    device: str = "auto"
    """`auto`: cuda when available, else cpu; or any torch device string ("cuda:1")."""
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"
    """`auto`: float32 on CPU, bfloat16 on a GPU that supports it, else float16."""
    quantization: Literal["none", "8bit", "4bit"] = "none"
    """8bit/4bit load through bitsandbytes (not a default dependency)."""
    frames_per_shot: int = Field(default=0, ge=0, le=32)
    """K frames spread across the shot; 0: 4 for multi-frame families, 1 (the middle frame) for BLIP."""
    prompt: str = ""
    """Empty: the family's default (a chat instruction, or no prefix for BLIP's plain captioning)."""
    max_new_tokens: int = Field(default=40, ge=1, le=512)
    batch_size: int = Field(default=8, ge=1)
    """Shots per `generate` call; a processor batch is split into chunks of this size."""
    provenance: Literal["", "configured", "random-test"] = ""
    """Empty: `configured`, unless the model's config marks it random-test."""
    text_model: str = ""
    """Optional causal language model (directory or cached id) for the whole-video description; empty: the
    captioning model itself when it can generate from text alone, else a composed description."""
    description_max_new_tokens: int = Field(default=120, ge=1, le=1024)


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


# --- the analyzer --------------------------------------------------------------------------------------


class CaptionAnalyzer(ShotAnalyzer):
    """One caption per shot with its time span; see the module docstring for the two modes."""

    name = "captions"
    group = "describe"
    sampling = Sampling(fps=2.0, max_side=448)
    requires = ("transformers", "torch")
    model_name = COMPOSED
    provenance: Provenance = "composed"
    options_model = CaptionsOptions
    options: CaptionsOptions
    describes_video = True
    summary_promoted = True

    def __init__(self, options: CaptionsOptions | None = None, runtime: Runtime | None = None) -> None:
        super().__init__(options, runtime)
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
        return bool(self.options.model)

    def describe_model(self) -> tuple[str, Provenance]:
        if not self.generated:
            return COMPOSED, "composed"
        return self.options.model, self._provenance if self._model is not None else self._configured()

    def _configured(self) -> Provenance:
        return "random-test" if self.options.provenance == "random-test" else "configured"

    @property
    def frames_per_shot(self) -> int:
        spec = FAMILIES[self.family or "qwen2_vl"]
        return self.options.frames_per_shot or spec.default_frames

    @property
    def prompt(self) -> str:
        return self.options.prompt or FAMILIES[self.family or "qwen2_vl"].default_prompt

    # -- loading --------------------------------------------------------------------------------------

    def load(self) -> None:
        """Load model and processor once, time it, and run one warm-up batch; composed mode loads nothing."""
        if not self.generated:
            log.info("captions: no model configured; shot captions are composed from other analyzers")
            return
        import transformers

        started = time.perf_counter()
        source = self.options.model
        try:
            config = transformers.AutoConfig.from_pretrained(source, local_files_only=True)
            model_type = getattr(config, "model_type", "")
            if model_type not in _MODEL_TYPES:
                raise ValueError(
                    f"model_type {model_type!r} is not a supported captioning architecture "
                    f"({', '.join(sorted(_MODEL_TYPES))})"
                )
            family, class_name = _MODEL_TYPES[model_type]
            if self.options.family not in ("auto", family):
                raise ValueError(f"captions.family is {self.options.family!r} but the model is {family!r}")
            self._device = resolve_device(self.options.device, "captions")
            self._dtype = resolve_dtype(self.options.dtype, self._device, prefer_bfloat16=True)
            kwargs: dict[str, Any] = {"dtype": self._dtype, "local_files_only": True}
            if self.options.quantization != "none":
                kwargs.update(_quantization_kwargs(self.options.quantization, self._dtype, self._device))
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
        if self.options.text_model:
            self._text_model = TextModel(
                self.options.text_model, self._device, self._dtype, self.options.provenance
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
        self._generate(shots[: max(1, min(2, self.options.batch_size))], min(4, self.options.max_new_tokens))

    # -- analysis -------------------------------------------------------------------------------------

    def analyze(self, items: Sequence[ShotItem]) -> list[dict[str, Any]]:
        shots = list(items)
        if self.generated and self._model is None:
            raise RuntimeError("CaptionAnalyzer.load() was not called")
        payloads: list[dict[str, Any] | None] = [None] * len(shots)
        todo: list[tuple[int, list[int]]] = []
        for i, shot in enumerate(shots):
            if self.generated and shot.frames:
                todo.append((i, pick_frames(len(shot.frames), self.frames_per_shot)))
            else:
                payloads[i] = self._composed(shot)
        size = self.options.batch_size
        for start in range(0, len(todo), size):
            chunk = todo[start : start + size]
            frames = [[shots[i].frames[j] for j in picked] for i, picked in chunk]
            for (i, picked), (caption, tokens) in zip(
                chunk, self._generate(frames, self.options.max_new_tokens), strict=True
            ):
                shot = shots[i]
                payloads[i] = {
                    **self._span(shot),
                    "caption": caption,
                    "model": self.options.model,
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
            self.options.description_max_new_tokens,
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

    @classmethod
    def document_fields(cls, summary: dict[str, Any]) -> dict[str, Any]:
        """`description`, the document's headline: the text with the model that wrote it and where from."""
        if not summary.get("description"):
            return {}
        return {"description": {k: summary.get(k) for k in ("description", "model", "provenance", "mode")}}

    @classmethod
    def shot_fields(cls, results: list[ItemResult], shots: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
        """Each shot's `caption` (text, mode, model, provenance) from its result (item key `s<index>`)."""
        out: dict[int, dict[str, Any]] = {}
        for r in results:
            index = int(r.item_key[1:]) if r.item_key.startswith("s") and r.item_key[1:].isdigit() else -1
            if 0 <= index < len(shots) and r.payload.get("caption"):
                out[index] = {
                    "caption": {
                        "text": r.payload["caption"],
                        "mode": r.payload.get("mode"),
                        "model": r.payload.get("model", r.model),
                        "provenance": r.provenance,
                    }
                }
        return out


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
