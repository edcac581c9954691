"""Hostile messages written straight onto the topics of a real stack (issue 15, cases 1, 2 and 5): each
costs only itself (its video fails with a reason, or it is dead-lettered), the good videos pushed around it
complete with no process restarted by hand, and every completion is published exactly once."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from aiokafka import AIOKafkaProducer
from reelscope.infra.core.ingest import request_for_path
from reelscope.infra.core.settings import Settings
from reelscope.infra.stack import running
from reelscope.schemas.events import DeadLetter, IngestRequest, Reconstruction, VideoPart, encode

from tests.conftest import stack_env, stack_running
from tests.media import cut_clip
from tests.test_pipeline import _push, read_topic, wait_done

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    env = stack_env(
        broker,
        tmp_path_factory.mktemp("hostile"),
        REELSCOPE_ANALYZERS='["scene", "color"]',
        REELSCOPE_TOPICS__PARTITIONS="4",
    )
    with stack_running(env) as settings:
        yield settings


async def write_raw(settings: Settings, messages: list[tuple[str, bytes, bytes]]) -> None:
    """Messages as they are, with a client that allows them large (what a hostile client could send)."""
    producer = AIOKafkaProducer(**settings.kafka.client_kwargs(), max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        for topic, key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def raw_request(video_id: str, uri: str, **fields: Any) -> bytes:
    """A schema-valid IngestRequest with fields pydantic accepts but the pipeline may choke on."""
    body = msgpack.unpackb(encode(IngestRequest(video_id=video_id, uri=uri)))
    body.update(fields)
    return msgpack.packb(body, use_bin_type=True)


def test_hostile_ingest_requests_fail_only_their_own_video(stack: Settings, tmp_path: Path) -> None:
    settings = stack
    loop = tmp_path / "loop.mp4"
    os.symlink(loop, loop)  # a symlink to itself: resolving it raises, not the URI check's rejection
    clip = cut_clip(tmp_path / "ok.mp4", frames=20)
    uri = clip.resolve().as_uri()
    hostile = {
        "far-future": raw_request("far-future", uri, submitted_at=1e20),
        "bytes-metadata": raw_request("bytes-metadata", uri, metadata={"blob": b"\x00\xff"}),
        "wrong-options": raw_request("wrong-options", uri, options={"hotwords": 5}),
        "symlink-loop": raw_request("symlink-loop", loop.as_uri()),
    }
    before = request_for_path(str(clip), video_id="good-before")
    after = request_for_path(str(clip), video_id="good-after")
    asyncio.run(_push(settings, [before]))
    asyncio.run(write_raw(settings, [(settings.topics.ingest, k.encode(), v) for k, v in hostile.items()]))
    asyncio.run(_push(settings, [after]))
    docs = {name: wait_done(settings, name, timeout_s=120) for name in hostile}
    assert wait_done(settings, "good-before")["status"] == "complete"
    assert wait_done(settings, "good-after")["status"] == "complete"
    problems = {
        n: (d["status"], d.get("error")) for n, d in docs.items() if d["status"] != "failed" or not d["error"]
    }
    assert not problems, problems
    assert "wrong-options" in docs and "TypeError" in docs["wrong-options"]["error"]
    assert "ymlink" in docs["symlink-loop"]["error"] or "loop" in docs["symlink-loop"]["error"]
    assert set(running(settings)) >= {"serve", "group-light-0", "group-finalize-0"}  # nothing died


def test_a_message_too_large_to_embed_is_dead_lettered_and_the_group_goes_on(
    stack: Settings, tmp_path: Path
) -> None:
    settings = stack
    garbage = os.urandom(2 * 1024 * 1024)
    asyncio.run(write_raw(settings, [(settings.topics.frames, b"huge", garbage)]))
    good = request_for_path(str(cut_clip(tmp_path / "after-huge.mp4", frames=20)), video_id="after-huge")
    asyncio.run(_push(settings, [good]))
    assert wait_done(settings, "after-huge", timeout_s=120)["status"] == "complete"
    letters = asyncio.run(
        read_topic(
            settings,
            settings.topics.dead_letter,
            lambda evs: any(isinstance(e, DeadLetter) and e.original_size == len(garbage) for e in evs),
            timeout_s=60,
        )
    )
    letter = next(e for e in letters if isinstance(e, DeadLetter) and e.original_size == len(garbage))
    assert letter.truncated and garbage.startswith(letter.original) and len(letter.original) < len(garbage)
    assert letter.original_sha256 == hashlib.sha256(garbage).hexdigest()
    assert letter.source_topic == settings.topics.frames


def test_thirty_concurrent_videos_are_each_published_exactly_once(stack: Settings, tmp_path: Path) -> None:
    settings = stack
    clip = cut_clip(tmp_path / "short.mp4", cut_frame=5, frames=10, fps=10, size=(96, 64))
    requests = [request_for_path(str(clip), video_id=f"many-{i:02d}") for i in range(30)]
    asyncio.run(_push(settings, requests))
    docs = [wait_done(settings, r.video_id, timeout_s=300) for r in requests]
    assert all(d["status"] == "complete" for d in docs), [(d["video_id"], d["status"]) for d in docs]
    ids = {r.video_id for r in requests}

    def whole(events: list[Any]) -> bool:
        return {e.video_id for e in events if isinstance(e, Reconstruction)} >= ids

    recon = asyncio.run(read_topic(settings, settings.topics.reconstructions, whole, timeout_s=60))
    asyncio.run(asyncio.sleep(3 * settings.aggregator.check_interval_s))  # periodic checks had their chance
    recon = asyncio.run(read_topic(settings, settings.topics.reconstructions, whole, timeout_s=60))
    per_video = Counter(e.video_id for e in recon if isinstance(e, Reconstruction) and e.video_id in ids)
    assert per_video == dict.fromkeys(ids, 1)
    assert all(json.loads(e.document)["completion_id"] == e.completion_id for e in recon if e.video_id in ids)
    shots = asyncio.run(
        read_topic(
            settings,
            settings.topics.part("shots"),
            lambda evs: {e.video_id for e in evs} >= ids,
            timeout_s=60,
        )
    )
    assert Counter(
        e.video_id for e in shots if isinstance(e, VideoPart) and e.video_id in ids
    ) == dict.fromkeys(ids, 1)
