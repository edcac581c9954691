"""Captioning benchmark: load time and shots per second of a vision-language model, at fixed token counts.

Weights cannot be downloaded here, so the model is built from a config with random weights (a 2B-class
Qwen2-VL written down from the published Qwen2-VL-2B dimensions, or a tiny one), saved with
`save_pretrained`, and loaded back through the analyzer's own `from_pretrained` path. Its tokenizer and
processors are built locally too. Random weights compute exactly what trained ones do, so the timings hold
for the real model; the text they produce is noise (provenance `random-test`).

    python -m infra.bench_vlm --family qwen2_vl --size 2b --device cuda --batches 1,2,4,8,16,32 \
        --prompt-tokens 32 --new-tokens 32 --out results.json

Every shot carries K frames of a vertical 252x448 picture (what the producer publishes at max_side 448)
and a prompt of exactly `--prompt-tokens` text tokens; `min_new_tokens = max_new_tokens` forces exactly
`--new-tokens` generated tokens per shot, so batch sizes compare like for like. The tiny builders are
also what tests/test_captions.py loads.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from analyzers.base import ShotItem
from analyzers.describe import RANDOM_TEST_MARKER

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

WORDS = [
    "a",
    "an",
    "the",
    "of",
    "in",
    "on",
    "at",
    "to",
    "with",
    "and",
    "is",
    "are",
    "one",
    "two",
    "three",
    "this",
    "that",
    "shot",
    "video",
    "picture",
    "frame",
    "describe",
    "sentence",
    "you",
    "helpful",
    "assistant",
    "system",
    "user",
    "person",
    "people",
    "man",
    "woman",
    "child",
    "car",
    "dog",
    "cat",
    "street",
    "room",
    "table",
    "phone",
    "screen",
    "sign",
    "text",
    "walking",
    "talking",
    "sitting",
    "standing",
    "holding",
    "red",
    "blue",
    "green",
    "white",
    "black",
    "bright",
    "dark",
    "indoor",
    "outdoor",
    "city",
    "kitchen",
    "food",
    "camera",
    "close",
    "up",
    "view",
    "background",
]
PUNCTUATION = tuple(".,:;!?'\"()-")


def build_word_tokenizer(vocab_size: int, specials: tuple[str, ...], special_at: int | None = None) -> Any:
    """A word-level fast tokenizer of exactly `vocab_size` ids: English words and punctuation, filler words
    `w0, w1, ...`, and `specials` as added tokens starting at id `special_at` (default: after the words)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers

    words = list(dict.fromkeys([*WORDS, *PUNCTUATION]))
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


def build_qwen2_vl(path: Path, size: str = "tiny", seed: int = 0) -> Path:
    """Save a random Qwen2-VL (`tiny`, or `2b`: Qwen2-VL-2B-Instruct's dimensions) with its processor."""
    import torch
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    if size == "2b":
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
        vision = {"depth": 32, "embed_dim": 1280, "num_heads": 16, "mlp_ratio": 4, "hidden_size": 1536}
        pixels: dict[str, dict[str, int]] = {}
        tie = True
    elif size == "tiny":
        vocab_size, special_at = 256, None
        text = {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 2048,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
            "initializer_range": 0.5,
        }
        vision = {"depth": 2, "embed_dim": 32, "num_heads": 2, "mlp_ratio": 2, "hidden_size": 64}
        vision["initializer_range"] = 0.5
        pixels = {"size": {"shortest_edge": 28 * 28 * 4, "longest_edge": 28 * 28 * 16}}
        tie = False
    else:
        raise ValueError(f"unknown size {size!r}: tiny or 2b")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=build_word_tokenizer(vocab_size, QWEN_SPECIALS, special_at),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="w0",
        additional_special_tokens=list(QWEN_SPECIALS[1:]),
    )
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIALS}
    config = Qwen2VLConfig(
        text_config={
            **text,
            "vocab_size": vocab_size,
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={**vision, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2},
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=tie,
    )
    setattr(config, RANDOM_TEST_MARKER, "random-test")
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    if size == "2b":
        model = model.to(torch.bfloat16)
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.eos_token_id = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**pixels),
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def build_blip(path: Path, size: str = "tiny", seed: int = 0) -> Path:
    """Save a random BLIP captioner (`tiny`, or `base`: blip-image-captioning-base's dimensions)."""
    import torch
    from transformers import (
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
        PreTrainedTokenizerFast,
    )

    specials = ("[PAD]", "[CLS]", "[SEP]", "[MASK]", "[DEC]")
    if size == "base":
        vocab_size, image_side = 30524, 384
        width, layers, heads, patch = 768, 12, 12, 16
        init = {}
    elif size == "tiny":
        vocab_size, image_side = 128, 32
        width, layers, heads, patch = 32, 2, 2, 8
        init = {"initializer_range": 0.5}
    else:
        raise ValueError(f"unknown size {size!r}: tiny or base")
    from tokenizers import processors

    backend = build_word_tokenizer(vocab_size, specials)
    ids = {t: backend.token_to_id(t) for t in specials}
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        bos_token="[DEC]",
        unk_token="w0",
    )
    config = BlipConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": width,
            "encoder_hidden_size": width,
            "intermediate_size": 4 * width,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "max_position_embeddings": 512,
            "bos_token_id": ids["[DEC]"],
            "sep_token_id": ids["[SEP]"],
            "eos_token_id": ids["[SEP]"],
            "pad_token_id": ids["[PAD]"],
            **init,
        },
        vision_config={
            "hidden_size": width,
            "intermediate_size": 4 * width,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "image_size": image_side,
            "patch_size": patch,
            **init,
        },
        projection_dim=width,
    )
    setattr(config, RANDOM_TEST_MARKER, "random-test")
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(config)
    processor = BlipProcessor(
        image_processor=BlipImageProcessor(size={"height": image_side, "width": image_side}),
        tokenizer=tokenizer,
    )
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


BUILDERS = {"qwen2_vl": (build_qwen2_vl, ("tiny", "2b")), "blip": (build_blip, ("tiny", "base"))}


def build_random_vlm(family: str, size: str, path: Path, seed: int = 0, device: str = "cpu") -> Path:
    """Build, initialise (on `device`, which is much faster on a GPU for 2B weights) and save a random model."""
    import torch

    if family not in BUILDERS or size not in BUILDERS[family][1]:
        raise ValueError(
            f"no {family!r} of size {size!r}; known: { {f: s for f, (_, s) in BUILDERS.items()} }"
        )
    with torch.device(device):
        return BUILDERS[family][0](path, size, seed)


def make_shots(count: int, frames: int, seed: int = 0) -> list[ShotItem]:
    """`count` 3-second shots of alternating videos, each with `frames` vertical 252x448 noise frames."""
    rng = np.random.default_rng(seed)
    shots = []
    for i in range(count):
        pictures = tuple(rng.integers(0, 256, (448, 252, 3), dtype=np.uint8) for _ in range(frames))
        times = tuple(3.0 * i + 3.0 * (j + 0.5) / frames for j in range(frames))
        shots.append(ShotItem(f"video-{i % 2}", i // 2, 3.0 * i, 3.0 * i + 3.0, pictures, times, {}))
    return shots


def run_bench(
    family: str,
    size: str,
    device: str,
    dtype: str,
    batches: list[int],
    prompt_tokens: int,
    new_tokens: int,
    frames: int,
    repeats: int,
    workdir: Path,
) -> dict[str, Any]:
    """Build and save the model, load it through CaptionAnalyzer, then time `repeats` batches per size."""
    import torch
    import transformers

    from analyzers.captions import CaptionAnalyzer, CaptionSettings

    started = time.perf_counter()
    path = build_random_vlm(family, size, workdir / f"{family}-{size}", device=device)
    build_s = time.perf_counter() - started
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    prompt = " ".join(f"w{i % 100}" for i in range(prompt_tokens))
    settings = CaptionSettings(
        model=str(path),
        device=device,
        dtype=dtype,
        frames_per_shot=frames,
        prompt=prompt,
        max_new_tokens=new_tokens,
        batch_size=max(batches),
    )
    analyzer = CaptionAnalyzer(config=settings)
    analyzer.load()
    analyzer.generate_overrides = {"min_new_tokens": new_tokens}
    frames = analyzer.frames_per_shot
    tokenizer = analyzer._processor.tokenizer
    measured_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    sample = make_shots(1, frames)[0]
    input_tokens = int(
        analyzer._inputs([list(sample.frames[: analyzer.frames_per_shot])])["input_ids"].shape[1]
    )
    params = sum(p.numel() for p in analyzer._model.parameters())
    rows = []
    for batch in batches:
        shots = make_shots(batch, frames, seed=batch)
        analyzer.analyze(shots)  # this batch shape's first run pays its own set-up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        for _ in range(repeats):
            payloads = analyzer.analyze(shots)
        elapsed = time.perf_counter() - started
        tokens = {p["tokens"] for p in payloads}
        if tokens != {new_tokens}:
            raise RuntimeError(f"batch {batch}: generated {sorted(tokens)} tokens, expected {new_tokens}")
        rows.append(
            {
                "batch": batch,
                "seconds_per_batch": round(elapsed / repeats, 4),
                "shots_per_s": round(batch * repeats / elapsed, 3),
                "new_tokens_per_s": round(batch * repeats * new_tokens / elapsed, 1),
                "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20)
                if device.startswith("cuda")
                else None,
            }
        )
        print(
            f"batch {batch:>3}: {rows[-1]['seconds_per_batch']:>9.4f} s/batch "
            f"{rows[-1]['shots_per_s']:>9.3f} shots/s {rows[-1]['new_tokens_per_s']:>9.1f} tok/s",
            flush=True,
        )
    return {
        "family": family,
        "size": size,
        "parameters": params,
        "device": str(analyzer._device),
        "device_name": torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor(),
        "dtype": str(analyzer._dtype).removeprefix("torch."),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "frames_per_shot": analyzer.frames_per_shot,
        "frame_size": [252, 448],
        "prompt_tokens": measured_prompt,
        "input_tokens_per_shot": input_tokens,
        "new_tokens": new_tokens,
        "repeats": repeats,
        "build_s": round(build_s, 2),
        "load_s": round(analyzer.load_seconds or 0.0, 3),
        "warmup_s": round(analyzer.warmup_seconds or 0.0, 3),
        "provenance": analyzer.describe_model()[1],
        "results": rows,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", default="qwen2_vl", choices=sorted(BUILDERS))
    parser.add_argument("--size", default="tiny", help="qwen2_vl: tiny|2b; blip: tiny|base")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32"])
    parser.add_argument("--batches", default="1,2,4,8,16,32")
    parser.add_argument("--prompt-tokens", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--frames", type=int, default=0, help="frames per shot; 0: the family's default")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the model is saved (default: a temp dir)"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    with tempfile.TemporaryDirectory(prefix="bench_vlm_") as tmp:
        result = run_bench(
            args.family,
            args.size,
            args.device,
            args.dtype,
            batches,
            args.prompt_tokens,
            args.new_tokens,
            args.frames,
            args.repeats,
            args.workdir or Path(tmp),
        )
    print(
        f"{result['family']} {result['size']} ({result['parameters'] / 1e6:.1f} M parameters) on "
        f"{result['device_name'] or result['device']}, {result['dtype']}: load {result['load_s']} s, warm-up "
        f"{result['warmup_s']} s; {result['frames_per_shot']} frames/shot, {result['input_tokens_per_shot']} input "
        f"tokens/shot ({result['prompt_tokens']} prompt), {result['new_tokens']} new tokens"
    )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
