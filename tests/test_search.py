"""Search over a real embedded ClickHouse holding a few hundred generated videos' rows (written through the
store, as the aggregator writes them), the skip indexes it relies on, and their migration."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from reelscope.infra.core.settings import Settings
from reelscope.schemas.tables import SCHEMA_VERSION, SCHEMA_VERSIONS, ddl
from reelscope.sinks.aggregator import empty_video
from reelscope.sinks.search import SearchFilters, search, tokens
from reelscope.sinks.store import Store, now

VIDEOS = 300
FILLER = ["the", "and", "then", "we", "cut", "stir", "pan", "hot", "good", "look", "at", "this"]
LABELS = ["cup", "bowl", "knife", "person", "car"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(Settings(state_dir=tmp_path))
    s.create_tables()
    yield s
    s.close()


def generated_doc(i: int, rng: random.Random) -> dict[str, Any]:
    """Video i: filler speech on two channels, with `onion` spoken by ch1 at i/10 s in every 7th video;
    on-screen text `SALE {i}`; a knife in every 5th; a face track; a sound event; a topic."""
    words = []
    t = 0.0
    for n in range(40):
        words.append({"start_s": t, "end_s": t + 0.3, "word": rng.choice(FILLER), "speaker": f"ch{n % 2}"})
        t += 0.4
    if i % 7 == 0:
        words.append({"start_s": i / 10, "end_s": i / 10 + 0.4, "word": "Onion,", "speaker": "ch1"})
    return {
        "duration_s": 10.0 + i % 50,
        "transcript": {"language": "de" if i % 2 else "en", "words": words if i % 3 else []},
        "text_events": [
            {"text": f"SALE {i} today", "start_s": 1.5, "end_s": 3.0, "box": [0.1, 0.1, 0.5, 0.2]}
        ],
        "tracks": [
            {
                "track_id": 1,
                "label": "knife" if i % 5 == 0 else rng.choice(LABELS[:2]),
                "first_s": 2.0,
                "last_s": 4.0,
                "frames": 10,
            }
        ],
        "faces": {
            "tracks": [{"id": 0, "start_s": 0.5, "end_s": 2.5, "conf": 0.93, "box": [0.4, 0.2, 0.6, 0.5]}]
        },
        "summaries": {
            "sound_events": {
                "events": [
                    {
                        "label": "Applause" if i % 4 == 0 else "Speech",
                        "start_s": 5.0,
                        "end_s": 6.0,
                        "score": 0.8,
                    }
                ]
            }
        },
        "about": {"topics": [{"label": "cooking" if i % 2 == 0 else "cars", "score": 0.4}]},
        "shots": [],
    }


def fill(store: Store, count: int = VIDEOS) -> None:
    rng = random.Random(7)
    base = now() - timedelta(days=count)
    for i in range(count):
        video_id = f"gen-{i:03d}"
        doc = generated_doc(i, rng)
        store.upsert_video(
            {
                **empty_video(video_id),
                "uri": f"file:///media/{video_id}.mp4",
                "status": "failed" if i % 10 == 9 else "complete",
                "duration_s": doc["duration_s"],
                "submitted_at": base + timedelta(days=i),
            }
        )
        store.write_details(video_id, doc)
        store.save_reconstruction(video_id, "complete", 1, json.dumps(doc))


def test_tokens_are_lower_cased_words() -> None:
    assert tokens("  Onion, onion!  SALE-42 ") == ["onion", "sale", "42"]
    assert tokens("...") == []


def test_search_finds_every_kind_of_moment_across_hundreds_of_videos(store: Store) -> None:
    fill(store)
    every = SearchFilters(limit=1000)

    spoken = search(store, "onion", SearchFilters(kinds=["word"], limit=1000)).moments
    expected = {f"gen-{i:03d}" for i in range(VIDEOS) if i % 7 == 0 and i % 3}
    assert {m.video_id for m in spoken} == expected
    hit = next(m for m in spoken if m.video_id == "gen-014")
    assert (hit.start_s, hit.detail, hit.text) == (1.4, "ch1", "Onion,")  # the word as spoken, its channel

    sale = search(store, "sale 42", every).moments
    assert [(m.video_id, m.kind, m.start_s) for m in sale] == [("gen-042", "text", 1.5)]
    knives = search(store, "KNIFE", SearchFilters(kinds=["object"], limit=1000)).moments
    assert {m.video_id for m in knives} == {f"gen-{i:03d}" for i in range(0, VIDEOS, 5)}
    faces = search(store, "face 0", SearchFilters(kinds=["face"], limit=5)).moments
    assert len(faces) == 5 and faces[0].conf == pytest.approx(0.93)
    applause = search(store, "applause", every).moments
    assert {m.kind for m in applause} == {"sound"} and len(applause) == VIDEOS // 4
    cooking = search(store, "cooking", every).moments
    assert {m.kind for m in cooking} == {"topic"} and len(cooking) == VIDEOS // 2
    # newest video first
    assert cooking[0].video_id == f"gen-{VIDEOS - 2:03d}"

    # filters narrow the videos
    def videos(**f: Any) -> set[str]:
        return {m.video_id for m in search(store, "cooking", SearchFilters(limit=1000, **f)).moments}

    assert all(int(v[4:]) % 10 != 9 for v in videos(status="complete"))
    assert videos(status="failed") == {f"gen-{i:03d}" for i in range(0, VIDEOS, 2) if i % 10 == 9}
    assert videos(has_speech=False) == {f"gen-{i:03d}" for i in range(0, VIDEOS, 6)}
    assert videos(language="de") == set()  # every cooking video is an even one, spoken in English
    assert len(videos(language="en")) == VIDEOS // 2
    assert videos(min_duration_s=58) == {f"gen-{i:03d}" for i in range(0, VIDEOS, 2) if i % 50 >= 48}
    since = now() - timedelta(days=3)
    assert videos(since=since) == {f"gen-{VIDEOS - 2:03d}"}
    assert search(store, "zebra", every).moments == []


def test_the_queries_use_the_token_skip_indexes(store: Store) -> None:
    """ClickHouse picks the bloom filter for the searched expression, FINAL included, as search reads
    (EXPLAIN indexes = 1)."""
    fill(store, 3)
    for table, column, index in [
        ("words", "word", "word_tokens"),
        ("text_events", "text", "text_tokens"),
        ("tracks", "label", "label_tokens"),
        ("moments", "text", "moment_tokens"),
    ]:
        plan = "\n".join(
            r[0]
            for r in store.client.query(
                f"EXPLAIN indexes = 1 SELECT * FROM {store.db}.{table} FINAL "
                f"WHERE hasToken(lower({column}), 'onion')"
            ).result_rows
        )
        assert index in plan, plan


def test_a_version_2_database_gets_the_search_indexes(tmp_path: Path) -> None:
    store = Store(Settings(state_dir=tmp_path))
    try:
        db = store.db
        for statement in ddl(db, 0):
            store.client.command(statement)
        for table, index in [
            ("words", "word_tokens"),
            ("text_events", "text_tokens"),
            ("tracks", "label_tokens"),
        ]:
            store.client.command(f"ALTER TABLE {db}.{table} DROP INDEX {index}")
        store.insert(SCHEMA_VERSIONS, [{"version": 2, "applied_at": now()}])

        store.create_tables()

        indexes = {
            (r["table"], r["name"], r["type"])
            for r in store.rows(
                "SELECT table, name, type FROM system.data_skipping_indices WHERE database = %(d)s", d=db
            )
        }
        for table, index in [
            ("words", "word_tokens"),
            ("text_events", "text_tokens"),
            ("tracks", "label_tokens"),
            ("moments", "moment_tokens"),
        ]:
            assert (table, index, "tokenbf_v1") in indexes
        assert store.scalar(f"SELECT max(version) FROM {db}.schema_version") == SCHEMA_VERSION
    finally:
        store.close()


def test_delete_video_removes_its_rows_from_every_table(store: Store) -> None:
    fill(store, 3)
    store.delete_video("gen-001")
    for table in ["videos", "words", "text_events", "tracks", "moments", "reconstructions"]:
        left = store.scalar(f"SELECT count() FROM {store.db}.{table} WHERE video_id = 'gen-001'")
        kept = store.scalar(f"SELECT count() FROM {store.db}.{table} WHERE video_id = 'gen-002'")
        assert (left, kept > 0) == (0, True), table
    assert store.video("gen-001") is None and search(store, "sale 1", SearchFilters()).moments == []
