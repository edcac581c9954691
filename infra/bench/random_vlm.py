"""Tiny (or real-size) vision-language models with random weights, built offline from configs.

Weights cannot be downloaded here, so the captioning benchmark and the tests build a model of the real
architecture from its config, with a tokenizer and processors made locally, save it with
`save_pretrained`, and load it back through the analyzer's own `from_pretrained` path. Random weights
compute exactly what trained ones do, so timings hold for the real model; the text they produce is noise,
and the saved config carries the random-test marker so every result says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reelscope.analyzers.common.describe import RANDOM_TEST_MARKER

__all__ = ["BUILDERS", "RANDOM_TEST_MARKER", "build_random_vlm", "fast_word_tokenizer"]


QWEN_SPECIALS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
"""Qwen2's special tokens in their real order (ids 151643.. in the 2B vocabulary)."""

QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""Qwen2-VL-Instruct's chat template, as published with the model."""

LLAVA_NEXT_VIDEO_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}"
    "{% endif %}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>\n' }}"
    "{% endfor %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
"""LLaVA-NeXT-Video's chat template (its generation markers left out)."""

SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
"""SmolVLM-Instruct's chat template."""

WORDS = """a an the of in on at to with and is are one two three this that shot video picture frame describe
sentence you helpful assistant system user person people man woman child car dog cat street room table phone
screen sign text walking talking sitting standing holding red blue green white black bright dark indoor outdoor
city kitchen food camera close up view background"""
PUNCTUATION = ".,:;!?'\"()-"
TINY = 0.5
"""Initializer range of the tiny models: wide enough that their output depends on the picture."""


def build_word_tokenizer(vocab_size: int, specials: tuple[str, ...], special_at: int | None = None) -> Any:
    """A word-level fast tokenizer of exactly `vocab_size` ids: English words and punctuation, filler words
    `w0, w1, ...`, and `specials` as added tokens starting at id `special_at` (default: after the words)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers

    words = list(dict.fromkeys([*WORDS.split(), *PUNCTUATION]))
    start = len(words) + 16 if special_at is None else special_at
    if start + len(specials) > vocab_size or start < len(words):
        raise ValueError(
            f"vocab_size {vocab_size} too small for {len(words)} words and {len(specials)} specials"
        )
    filler = [f"w{i}" for i in range(vocab_size - len(words) - len(specials))]
    plain = [*words, *filler]
    tokens = [*plain[:start], *specials, *plain[start:]]
    tokenizer = Tokenizer(models.WordLevel({t: i for i, t in enumerate(tokens)}, unk_token="w0"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tokenizer.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tokenizer


def fast_word_tokenizer(
    vocab_size: int, specials: tuple[str, ...], special_at: int | None = None, **roles: str
) -> tuple[Any, dict[str, int]]:
    """A transformers fast tokenizer over `build_word_tokenizer`, and the ids of its special tokens."""
    from transformers import PreTrainedTokenizerFast

    backend = build_word_tokenizer(vocab_size, specials, special_at)
    if "cls_token" in roles:  # BERT-style: [CLS] text [SEP], as BLIP's tokenizer writes it
        from tokenizers import processors

        cls, sep = roles["cls_token"], roles["sep_token"]
        backend.post_processor = processors.TemplateProcessing(
            single=f"{cls} $A {sep}", special_tokens=[(t, backend.token_to_id(t)) for t in (cls, sep)]
        )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **{"unk_token": "w0", **roles})
    return tokenizer, {t: tokenizer.convert_tokens_to_ids(t) for t in specials}


def _save(path: Path, config: Any, model_class: Any, processor: Any, **generation: Any) -> Path:
    """Mark the config random-test, build the model with random weights and save it with its processor."""
    setattr(config, RANDOM_TEST_MARKER, "random-test")
    model = model_class(config)
    for key, value in generation.items():
        setattr(model.generation_config, key, value)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def _qwen_tokenizer(vocab_size: int, special_at: int | None) -> tuple[Any, dict[str, int]]:
    return fast_word_tokenizer(
        vocab_size, QWEN_SPECIALS, special_at, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )


def _qwen_ids(ids: dict[str, int]) -> dict[str, int]:
    """The Qwen-VL config fields that name special tokens."""
    return {
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
    }


def _qwen_text(ids: dict[str, int], vocab_size: int, **dims: Any) -> dict[str, Any]:
    return {
        **dims,
        "vocab_size": vocab_size,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }


_TINY_LLM = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
    "initializer_range": TINY,
}
_TINY_MROPE = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]}
_TINY_QWEN_PIXELS = {"size": {"shortest_edge": 28 * 28 * 4, "longest_edge": 28 * 28 * 16}}
"""Tiny Qwen-VL processors resize a 252x448 frame to 84x140: 15 tokens per pair of frames."""


def build_qwen2_vl(path: Path, size: str = "tiny") -> Path:
    """A random Qwen2-VL (`tiny`, or `2b` / `7b`: Qwen2-VL-2B/7B-Instruct's published dimensions) with its
    processor."""
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    if size == "7b":
        vocab_size, special_at = 152064, 151643
        text = {
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_hidden_layers": 28,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "max_position_embeddings": 32768,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
        }
        vision: dict[str, Any] = {"depth": 32, "embed_dim": 1280, "num_heads": 16, "mlp_ratio": 4}
        pixels: dict[str, Any] = {}
    elif size == "2b":
        vocab_size, special_at = 151936, 151643
        text = {
            "hidden_size": 1536,
            "intermediate_size": 8960,
            "num_hidden_layers": 28,
            "num_attention_heads": 12,
            "num_key_value_heads": 2,
            "max_position_embeddings": 32768,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
        }
        vision = {"depth": 32, "embed_dim": 1280, "num_heads": 16, "mlp_ratio": 4}
        pixels = {}
    else:
        vocab_size, special_at = 256, None
        text = {**_TINY_LLM, "rope_parameters": _TINY_MROPE}
        vision = {"depth": 2, "embed_dim": 32, "num_heads": 2, "mlp_ratio": 2, "initializer_range": TINY}
        pixels = _TINY_QWEN_PIXELS
    tokenizer, ids = _qwen_tokenizer(vocab_size, special_at)
    config = Qwen2VLConfig(
        text_config=_qwen_text(ids, vocab_size, **text),
        vision_config={
            **vision,
            "hidden_size": text["hidden_size"],
            "patch_size": 14,
            "temporal_patch_size": 2,
        },
        tie_word_embeddings=size == "2b",
        **_qwen_ids(ids),
    )
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**pixels),
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )
    eos = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    return _save(
        path, config, Qwen2VLForConditionalGeneration, processor, eos_token_id=eos, pad_token_id=eos[1]
    )


def build_qwen2_5_vl(path: Path, size: str = "tiny") -> Path:
    """A tiny random Qwen2.5-VL (windowed attention in the vision tower) with its processor."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer, ids = _qwen_tokenizer(256, None)
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64}
    config = Qwen2_5_VLConfig(
        text_config=_qwen_text(ids, 256, **_TINY_LLM, rope_parameters=_TINY_MROPE),
        vision_config={**vision, "fullatt_block_indexes": [1], "window_size": 56, "initializer_range": TINY},
        **_qwen_ids(ids),
    )
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**_TINY_QWEN_PIXELS),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**_TINY_QWEN_PIXELS),
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )
    eos = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    return _save(
        path, config, Qwen2_5_VLForConditionalGeneration, processor, eos_token_id=eos, pad_token_id=eos[1]
    )


def build_llava_next_video(path: Path, size: str = "tiny") -> Path:
    """A tiny random LLaVA-NeXT-Video (CLIP vision tower, Llama language model) with its processor."""
    from transformers import (
        LlavaNextImageProcessor,
        LlavaNextVideoConfig,
        LlavaNextVideoForConditionalGeneration,
        LlavaNextVideoProcessor,
        LlavaNextVideoVideoProcessor,
    )

    specials = ("<unk>", "<s>", "</s>", "<video>", "<image>")
    tokenizer, ids = fast_word_tokenizer(256, specials, bos_token="<s>", eos_token="</s>", pad_token="<unk>")
    side, patch, pinpoints = 28, 7, [[28, 28], [28, 56], [56, 28]]
    config = LlavaNextVideoConfig(
        vision_config={
            "model_type": "clip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": side,
            "patch_size": patch,
            "projection_dim": 32,
            "initializer_range": TINY,
        },
        text_config={
            **_TINY_LLM,
            "model_type": "llama",
            "vocab_size": 256,
            "bos_token_id": ids["<s>"],
            "eos_token_id": ids["</s>"],
            "pad_token_id": ids["<unk>"],
        },
        image_token_index=ids["<image>"],
        video_token_index=ids["<video>"],
        image_grid_pinpoints=pinpoints,
    )
    crop = {"size": {"shortest_edge": side}, "crop_size": {"height": side, "width": side}}
    processor = LlavaNextVideoProcessor(
        video_processor=LlavaNextVideoVideoProcessor(**crop),
        image_processor=LlavaNextImageProcessor(**crop, image_grid_pinpoints=pinpoints),
        tokenizer=tokenizer,
        chat_template=LLAVA_NEXT_VIDEO_CHAT_TEMPLATE,
        patch_size=patch,
        vision_feature_select_strategy="default",
    )
    return _save(path, config, LlavaNextVideoForConditionalGeneration, processor, pad_token_id=ids["<unk>"])


def build_smolvlm(path: Path, size: str = "tiny") -> Path:
    """A tiny random SmolVLM (SigLIP-style vision tower, Llama language model); its processor needs the
    `num2words` package."""
    from transformers import (
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
    )

    specials = ("<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>")
    specials += ("<global-img>",)
    tokenizer, ids = fast_word_tokenizer(
        256, specials, bos_token="<|im_start|>", eos_token="<end_of_utterance>", pad_token="<|endoftext|>"
    )
    side, patch = 28, 7
    config = SmolVLMConfig(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": side,
            "patch_size": patch,
            "initializer_range": TINY,
        },
        text_config={
            **_TINY_LLM,
            "model_type": "llama",
            "vocab_size": 256,
            "bos_token_id": ids["<|im_start|>"],
            "eos_token_id": ids["<end_of_utterance>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        image_token_id=ids["<image>"],
        scale_factor=2,
        pad_token_id=ids["<|endoftext|>"],
    )
    edge = {"longest_edge": side}
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(do_image_splitting=False, size=edge, max_image_size=edge),
        tokenizer=tokenizer,
        video_processor=SmolVLMVideoProcessor(),
        image_seq_len=(side // patch) ** 2 // 4,
        chat_template=SMOLVLM_CHAT_TEMPLATE,
    )
    return _save(path, config, SmolVLMForConditionalGeneration, processor)


def build_blip(path: Path, size: str = "tiny") -> Path:
    """A random BLIP captioner (`tiny`, or `base`: blip-image-captioning-base's dimensions)."""
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    if size == "base":
        vocab_size, side, width, layers, heads, patch, init = 30524, 384, 768, 12, 12, 16, 0.02
    else:
        vocab_size, side, width, layers, heads, patch, init = 128, 32, 32, 2, 2, 8, TINY
    roles = {"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"}
    tokenizer, ids = fast_word_tokenizer(vocab_size, (*roles.values(), "[DEC]"), bos_token="[DEC]", **roles)
    layer = {
        "hidden_size": width,
        "intermediate_size": 4 * width,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "initializer_range": init,
    }
    config = BlipConfig(
        text_config={
            **layer,
            "vocab_size": vocab_size,
            "encoder_hidden_size": width,
            "bos_token_id": ids["[DEC]"],
            "sep_token_id": ids["[SEP]"],
            "eos_token_id": ids["[SEP]"],
            "pad_token_id": ids["[PAD]"],
        },
        vision_config={**layer, "image_size": side, "patch_size": patch},
        projection_dim=width,
    )
    processor = BlipProcessor(
        image_processor=BlipImageProcessor(size={"height": side, "width": side}), tokenizer=tokenizer
    )
    return _save(path, config, BlipForConditionalGeneration, processor)


def build_blip2(path: Path, size: str = "tiny") -> Path:
    """A tiny random BLIP-2 (Q-Former, OPT language model) with its processor."""
    from transformers import Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, BlipImageProcessor

    specials = ("<pad>", "</s>", "<image>")
    tokenizer, ids = fast_word_tokenizer(256, specials, bos_token="</s>", eos_token="</s>", pad_token="<pad>")
    tokenizer.image_token = "<image>"
    layer = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = Blip2Config(
        vision_config={**layer, "image_size": 28, "patch_size": 7, "initializer_range": TINY},
        qformer_config={**layer, "encoder_hidden_size": 32, "vocab_size": 64},
        text_config={
            "model_type": "opt",
            "hidden_size": 64,
            "word_embed_proj_dim": 64,
            "ffn_dim": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "vocab_size": 256,
            "init_std": TINY,
            "bos_token_id": ids["</s>"],
            "eos_token_id": ids["</s>"],
            "pad_token_id": ids["<pad>"],
        },
        num_query_tokens=4,
        image_token_index=ids["<image>"],
    )
    processor = Blip2Processor(
        image_processor=BlipImageProcessor(size={"height": 28, "width": 28}),
        tokenizer=tokenizer,
        num_query_tokens=4,
    )
    return _save(path, config, Blip2ForConditionalGeneration, processor)


BUILDERS = {
    "qwen2_vl": (build_qwen2_vl, ("tiny", "2b", "7b")),
    "qwen2_5_vl": (build_qwen2_5_vl, ("tiny",)),
    "llava_next_video": (build_llava_next_video, ("tiny",)),
    "smolvlm": (build_smolvlm, ("tiny",)),
    "blip": (build_blip, ("tiny", "base")),
    "blip2": (build_blip2, ("tiny",)),
}
"""Family -> (builder, sizes). `tiny` models are for tests; the others have a real checkpoint's dimensions."""


def build_random_vlm(family: str, size: str, path: Path, seed: int = 0, device: str = "cpu") -> Path:
    """Build, initialise and save a random model. Real-size ones are made in bfloat16 (half the memory, as
    their checkpoints are published) and on `device` (a GPU initialises 2B weights in a second)."""
    import torch

    if family not in BUILDERS or size not in BUILDERS[family][1]:
        raise ValueError(
            f"no {family!r} of size {size!r}; known: { {f: s for f, (_, s) in BUILDERS.items()} }"
        )
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32 if size == "tiny" else torch.bfloat16)
    torch.manual_seed(seed)
    try:
        with torch.device(device):
            return BUILDERS[family][0](path, size)
    finally:
        torch.set_default_dtype(default)
