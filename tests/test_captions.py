"""Shot captions and the whole-video description.

Composed mode is checked word for word against the context it was given. Generated mode runs tiny random
models of the real architectures (BLIP, Qwen2-VL), built from configs with locally built tokenizers and
processors by infra/bench/vlm.py, saved with save_pretrained and loaded through the product's own
from_pretrained path. Their captions are noise, so the checks are on what does not depend on the weights
being trained: batching across videos gives each shot exactly the caption it gets alone (padding and order
are right), the frames used, the token bound, and the provenance.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from reelscope.analyzers.base import ItemResult, ShotItem
from reelscope.analyzers.captions import CaptionAnalyzer, CaptionsOptions, pick_frames
from reelscope.analyzers.common.compose_caption import compose_caption
from reelscope.analyzers.common.describe import compose_description

needs_transformers = pytest.mark.skipif(
    not CaptionAnalyzer.available(), reason="transformers and torch are not installed"
)


def shot(
    video: str, index: int, start: float, end: float, size: tuple[int, int], frames: int, seed: int
) -> ShotItem:
    rng = np.random.default_rng(seed)
    pictures = tuple(rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(frames))
    times = tuple(start + (end - start) * (j + 0.5) / frames for j in range(frames))
    return ShotItem(video, index, start, end, pictures, times, {})


# --- composed ------------------------------------------------------------------------------------------


def test_composed_caption_says_what_was_found() -> None:
    context = {
        "objects": {"car": 1, "person": 2, "dog": 0},
        "faces": 2,
        "text": ["SALE 50%", "Today only"],
        "speech": "hello everyone and welcome back",
        "camera": "pan_left",
        "brightness": 0.12,
    }
    assert compose_caption(3.24, context) == (
        "3.2 s shot: two people and a car; on-screen text 'SALE 50%', 'Today only'; "
        "speech: 'hello everyone and welcome back'; camera pans left; dark."
    )
    faces_only = {"faces": 1, "shot_type": "talking_head", "camera": "static", "brightness": 0.5}
    assert compose_caption(1.0, faces_only) == "1.0 s talking-head shot: a face; static camera."
    assert compose_caption(0.5, {"camera": "unknown"}) == "0.5 s shot: no people or objects detected."


def test_composed_mode_captions_every_shot_in_order_without_a_model() -> None:
    analyzer = CaptionAnalyzer()
    analyzer.load()
    shots = [
        ShotItem("a", 0, 0.0, 2.0, (), (), {"objects": {"car": 3}}),
        ShotItem("b", 0, 0.0, 4.0, (), (), {"text": ["BIG NEWS"], "camera": "zoom_in"}),
        ShotItem("a", 1, 2.0, 2.5, (), (), {"objects": {"apple": 1}, "speech": "look at this"}),
    ]
    payloads = analyzer.analyze(shots)
    assert [p["caption"] for p in payloads] == [
        "2.0 s shot: three cars.",
        "4.0 s shot: no people or objects detected; on-screen text 'BIG NEWS'; camera zooms in.",
        "0.5 s shot: an apple; speech: 'look at this'.",
    ]
    assert {p["mode"] for p in payloads} == {"composed"}
    assert {p["provenance"] for p in payloads} == {"composed"}
    assert [(p["start_s"], p["end_s"]) for p in payloads] == [(0.0, 2.0), (0.0, 4.0), (2.0, 2.5)]
    assert analyzer.describe_model() == ("composed", "composed")


def test_compose_description_lays_out_shots_text_and_speech() -> None:
    shots = [
        {"start_s": 3.0, "end_s": 7.5, "caption": "4.5 s close-up shot: a dog."},
        {"start_s": 0.0, "end_s": 3.0, "caption": "a man walks down a street"},
    ]
    text = compose_description(
        shots, "hi there", ["SALE 50%", "SALE 50%"], {"duration_s": 7.5, "width": 720, "height": 1280}
    )
    assert text == (
        "A 7.5 s vertical video in 2 shots with speech and on-screen text. "
        "Shots: 0.0–3.0 s: a man walks down a street; 3.0–7.5 s: close-up: a dog. "
        "On-screen text: 'SALE 50%'. Speech: 'hi there'."
    )


def test_video_summary_prefers_a_stored_description() -> None:
    results = [
        ItemResult("s1", 2.0, 4.0, {"caption": "b", "mode": "generated"}),
        ItemResult("s0", 0.0, 2.0, {"caption": "a", "mode": "generated"}),
    ]
    summary = CaptionAnalyzer.video_summary(sorted(results, key=lambda r: r.start_s))
    assert summary is not None
    assert [s["caption"] for s in summary["shots"]] == ["a", "b"]
    assert summary["description"] == "A 4.0 s video in 2 shots. Shots: 0.0–2.0 s: a; 2.0–4.0 s: b."
    assert summary["provenance"] == "composed"
    stored = {"description": "A cat video.", "model": "m", "provenance": "configured", "mode": "generated"}
    summary = CaptionAnalyzer.video_summary([*results, ItemResult("description", 0.0, 4.0, stored)])
    assert summary is not None and summary["description"] == "A cat video."
    assert summary["provenance"] == "configured"


def test_pick_frames_spreads_across_the_shot() -> None:
    assert pick_frames(6, 4) == [0, 2, 3, 5]
    assert pick_frames(7, 1) == [3]
    assert pick_frames(2, 4) == [0, 0, 1, 1]
    assert pick_frames(0, 4) == []


# --- generated, with tiny random models -----------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from reelscope.infra.bench.random_vlm import build_random_vlm

    root = tmp_path_factory.mktemp("vlm")
    return {family: build_random_vlm(family, "tiny", root / family) for family in ("qwen2_vl", "blip")}


@pytest.fixture(scope="module")
def qwen(model_dirs: dict[str, Path]) -> CaptionAnalyzer:
    analyzer = CaptionAnalyzer(
        CaptionsOptions(
            model=str(model_dirs["qwen2_vl"]), max_new_tokens=12, batch_size=8, description_max_new_tokens=16
        )
    )
    analyzer.load()
    return analyzer


def _interleaved_shots() -> list[ShotItem]:
    """Shots of two videos of different sizes and frame counts, interleaved as a processor batch mixes them."""
    return [
        shot("vertical", 0, 0.0, 3.0, (448, 252), 6, seed=1),
        shot("landscape", 0, 0.0, 1.5, (252, 448), 3, seed=2),
        shot("vertical", 1, 3.0, 4.0, (448, 252), 2, seed=3),
        shot("landscape", 1, 1.5, 6.0, (252, 448), 9, seed=4),
    ]


@needs_transformers
def test_qwen2_vl_batches_shots_of_two_videos(qwen: CaptionAnalyzer) -> None:
    assert qwen.family == "qwen2_vl" and qwen.frames_per_shot == 4
    assert qwen.load_seconds is not None and qwen.warmup_seconds is not None
    assert qwen.describe_model() == (qwen.options.model, "random-test")
    shots = _interleaved_shots()
    payloads = qwen.analyze(shots)
    alone = [qwen.analyze([s])[0] for s in shots]
    assert [p["caption"] for p in payloads] == [p["caption"] for p in alone]
    assert len({p["caption"] for p in payloads}) == len(shots)  # the random model does see the pictures
    assert all(p["caption"] for p in payloads)
    assert [p["frames_used"] for p in payloads] == [
        [round(s.frame_times[j], 3) for j in pick_frames(len(s.frames), 4)] for s in shots
    ]
    assert [(p["start_s"], p["end_s"]) for p in payloads] == [(s.start_s, s.end_s) for s in shots]
    assert {(p["mode"], p["provenance"], p["model"]) for p in payloads} == {
        ("generated", "random-test", qwen.options.model)
    }
    assert all(1 <= p["tokens"] <= 12 for p in payloads)


@needs_transformers
def test_captions_are_bounded_by_max_new_tokens(qwen: CaptionAnalyzer) -> None:
    shots = _interleaved_shots()
    assert max(p["tokens"] for p in qwen.analyze(shots)) > 3
    config = qwen.options
    qwen.options = config.model_copy(update={"max_new_tokens": 3})
    try:
        bounded = qwen.analyze(shots)
        qwen.generate_overrides = {"min_new_tokens": 3}
        forced = qwen.analyze(shots)
    finally:
        qwen.options, qwen.generate_overrides = config, {}
    assert all(p["tokens"] <= 3 and len(p["caption"].split()) <= 3 for p in bounded)
    assert [p["tokens"] for p in forced] == [3] * len(shots)


@needs_transformers
def test_generated_description_carries_its_provenance(qwen: CaptionAnalyzer) -> None:
    shots = [
        {"start_s": 0.0, "end_s": 2.0, "caption": "a dog"},
        {"start_s": 2.0, "end_s": 3.0, "caption": "a cat"},
    ]
    described = qwen.describe_video(shots, "hello", ["SALE"], {"duration_s": 3.0})
    assert described["mode"] == "generated" and described["provenance"] == "random-test"
    assert described["model"] == qwen.options.model
    assert described["description"] and 1 <= described["tokens"] <= 16


@needs_transformers
def test_blip_captions_the_middle_frame(model_dirs: dict[str, Path]) -> None:
    analyzer = CaptionAnalyzer(CaptionsOptions(model=str(model_dirs["blip"]), max_new_tokens=6, batch_size=3))
    analyzer.load()
    assert analyzer.family == "blip" and analyzer.describe_model()[1] == "random-test"
    shots = _interleaved_shots()
    payloads = analyzer.analyze(shots)  # two generate calls: 3 shots, then 1
    assert [p["caption"] for p in payloads] == [analyzer.analyze([s])[0]["caption"] for s in shots]
    assert [p["frames_used"] for p in payloads] == [
        [round(s.frame_times[len(s.frames) // 2], 3)] for s in shots
    ]
    assert all(p["provenance"] == "random-test" and 1 <= p["tokens"] <= 6 for p in payloads)
    # BLIP writes no text without a picture: the whole-video description is composed
    described = analyzer.describe_video([{"start_s": 0.0, "end_s": 1.0, "caption": "x"}], "", [], {})
    assert described["mode"] == "composed" and described["provenance"] == "composed"


@needs_transformers
def test_a_configured_text_model_writes_the_description(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    import torch
    from reelscope.infra.bench.random_vlm import RANDOM_TEST_MARKER, fast_word_tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer, ids = fast_word_tokenizer(
        128, ("<s>", "</s>", "<pad>"), bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    config = LlamaConfig(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        bos_token_id=ids["<s>"],
        eos_token_id=ids["</s>"],
        pad_token_id=ids["<pad>"],
    )
    setattr(config, RANDOM_TEST_MARKER, "random-test")
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "llm")
    tokenizer.save_pretrained(tmp_path / "llm")
    analyzer = CaptionAnalyzer(
        CaptionsOptions(
            model=str(model_dirs["blip"]), text_model=str(tmp_path / "llm"), description_max_new_tokens=7
        )
    )
    analyzer.load()
    described = analyzer.describe_video([{"start_s": 0.0, "end_s": 1.0, "caption": "a dog"}], "woof", [], {})
    assert (described["mode"], described["model"], described["provenance"]) == (
        "generated",
        str(tmp_path / "llm"),
        "random-test",
    )
    assert 1 <= described["tokens"] <= 7 and len(described["description"].split()) <= 7


@needs_transformers
@pytest.mark.parametrize("family", ["blip2", "qwen2_5_vl", "llava_next_video", "smolvlm"])
def test_every_family_captions_a_mixed_batch(family: str, tmp_path: Path) -> None:
    """The other supported architectures, tiny and random, through the same load and batch path."""
    if family == "smolvlm" and importlib.util.find_spec("num2words") is None:
        pytest.skip("SmolVLM's processor needs num2words")
    from reelscope.infra.bench.random_vlm import build_random_vlm

    path = build_random_vlm(family, "tiny", tmp_path / family)
    analyzer = CaptionAnalyzer(CaptionsOptions(model=str(path), max_new_tokens=5))
    analyzer.load()
    assert analyzer.family == family
    shots = _interleaved_shots()
    payloads = analyzer.analyze(shots)
    assert [p["caption"] for p in payloads] == [analyzer.analyze([s])[0]["caption"] for s in shots]
    assert all(p["provenance"] == "random-test" and 1 <= p["tokens"] <= 5 for p in payloads)
    k = 1 if family == "blip2" else 4
    assert [len(p["frames_used"]) for p in payloads] == [k] * len(shots)


@needs_transformers
def test_a_model_that_cannot_load_fails_loudly(tmp_path: Path, model_dirs: dict[str, Path]) -> None:
    with pytest.raises(RuntimeError, match="cannot load the captioning model"):
        CaptionAnalyzer(CaptionsOptions(model=str(tmp_path / "missing"))).load()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(RuntimeError, match="not a supported captioning architecture"):
        CaptionAnalyzer(CaptionsOptions(model=str(tmp_path / "broken"))).load()
    with pytest.raises(RuntimeError, match="family is 'blip' but the model is 'qwen2_vl'"):
        CaptionAnalyzer(CaptionsOptions(model=str(model_dirs["qwen2_vl"]), family="blip")).load()
    if importlib.util.find_spec("bitsandbytes") is None:
        with pytest.raises(RuntimeError, match="needs the bitsandbytes package"):
            CaptionAnalyzer(CaptionsOptions(model=str(model_dirs["blip"]), quantization="8bit")).load()
