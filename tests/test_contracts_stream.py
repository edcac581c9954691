"""The published contracts on a real broker with a real video processed: every message on every topic has its
key and headers and validates against the JSON Schema in docs/schemas/, topics carry their configs, a
deleted video leaves tombstones, and the example consumer prints the reconstruction without reelscope."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from reelscope.infra.core.ingest import request_for_path
from reelscope.infra.core.settings import Settings
from reelscope.infra.core.topics import catalog
from reelscope.infra.stack import api_url
from reelscope.schemas.events import IngestRequest

from tests.conftest import stack_env, stack_running
from tests.media import cut_clip
from tests.test_contracts import SCHEMAS
from tests.test_pipeline import _push, wait_done

pytestmark = pytest.mark.integration

TOKEN = "contracts-token"
POISON = b"\x93not-an-event"
"""Sent raw (no headers) to the frames topic, so the dead-letter topic has an event too."""
ANALYZERS = '["scene", "loudness", "captions"]'
"""One cheap analyzer per input (frame, audio, shot), so every topic carries events."""
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "consumer.py"


@dataclass
class Published:
    settings: Settings
    video_id: str
    records: list[ConsumerRecord]
    """Everything on every topic of the catalog, from the beginning, but the poison sent raw."""


async def read_all(settings: Settings, done: Any, timeout_s: float = 60, quiet_s: float = 1.5) -> list[Any]:
    """Every record of every catalog topic from the beginning, once `done(records)` holds and nothing new
    arrived for `quiet_s`."""
    consumer = AIOKafkaConsumer(
        *(topic.name for topic in catalog(settings)),
        **settings.kafka.client_kwargs(),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        deadline, last_new = time.monotonic() + timeout_s, time.monotonic()
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            new = [r for part in batch.values() for r in part]
            if new:
                records += new
                last_new = time.monotonic()
            elif done(records) and time.monotonic() - last_new > quiet_s:
                break
    finally:
        await consumer.stop()
    return records


@pytest.fixture(scope="module")
def published(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    tmp = tmp_path_factory.mktemp("contracts")
    env = stack_env(
        broker,
        tmp / "state",
        REELSCOPE_API_TOKEN=TOKEN,
        REELSCOPE_ANALYZERS=ANALYZERS,
        REELSCOPE_BATCH__HEARTBEAT_S="0.01",  # batches beat too (then validated), at least the slow ones
    )
    with stack_running(env) as settings:
        request = request_for_path(str(cut_clip(tmp / "contract.mp4", frames=30)))
        missing = IngestRequest(video_id="contract-missing", uri=(tmp / "missing.mp4").as_uri())

        async def publish() -> list[ConsumerRecord]:
            producer = AIOKafkaProducer(**settings.kafka.client_kwargs())
            await producer.start()
            await producer.send_and_wait(settings.topics.frames, POISON, key=b"poison")
            await producer.stop()
            await _push(settings, [request, missing])
            for video_id in (request.video_id, missing.video_id):
                await asyncio.to_thread(wait_done, settings, video_id)

            def done(records: list[ConsumerRecord]) -> bool:
                topics = {r.topic for r in records}
                return settings.topics.reconstructions in topics and settings.topics.dead_letter in topics

            return await read_all(settings, done)

        records = asyncio.run(publish())
        yield Published(settings, request.video_id, [r for r in records if r.value != POISON])


def headers_of(record: ConsumerRecord) -> dict[str, bytes]:
    return dict(record.headers)


def test_every_topic_has_events_keyed_by_video_with_headers(published: Published) -> None:
    settings = published.settings
    by_topic: dict[str, list[ConsumerRecord]] = {}
    for record in published.records:
        by_topic.setdefault(record.topic, []).append(record)
    # every topic carries events (a part's topic only when the video has that part: this one has no
    # speech, on-screen text or tracks)
    parts_absent = {settings.topics.part(p) for p in ("transcript", "text_events", "tracks")}
    beats = settings.topics.heartbeats  # only while a batch runs longer than batch.heartbeat_s
    assert set(by_topic) - {beats} == {topic.name for topic in catalog(settings)} - parts_absent - {beats}
    for record in published.records:
        body = msgpack.unpackb(record.value, raw=False)
        assert record.key == body["video_id"].encode(), (record.topic, record.key)
        assert headers_of(record) == {
            "content-type": b"application/msgpack",
            "event-kind": body["kind"].encode(),
            "schema-version": str(body["v"]).encode(),
            "video-id": record.key,
        }, record.topic
    assert {r.key for r in by_topic[settings.topics.reconstructions]} == {
        published.video_id.encode(),
        b"contract-missing",
    }


def validator_registry() -> tuple[Any, Any]:
    """A 2020-12 validator for decoded MessagePack (where a `format: binary` string is bytes) and the
    registry of the published files, by their `$id`s."""
    from jsonschema import Draft202012Validator
    from jsonschema.validators import extend
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012

    schemas = [json.loads(path.read_text()) for path in SCHEMAS.glob("*.json") if path.name != "index.json"]
    assert {s.pop("$schema") for s in schemas} == {Draft202012Validator.META_SCHEMA["$id"]}
    # registered without `$schema`, or a reference would switch back to the stock validator class
    registry = Registry().with_resources((s["$id"], DRAFT202012.create_resource(s)) for s in schemas)
    checker = Draft202012Validator.TYPE_CHECKER.redefine(
        "string", lambda _, value: isinstance(value, (str, bytes))
    )
    return extend(Draft202012Validator, type_checker=checker), registry


def test_every_event_validates_against_the_published_schema(published: Published) -> None:
    msgpack_validator, registry = validator_registry()
    index = json.loads((SCHEMAS / "index.json").read_text())["schemas"]
    kinds: dict[str, int] = {}
    for record in published.records:
        body = msgpack.unpackb(record.value, raw=False)
        kinds[body["kind"]] = kinds.get(body["kind"], 0) + 1
        name = next(name for name, entry in index.items() if entry.get("kind") == body["kind"])
        errors = list(msgpack_validator({"$ref": f"{name}.json"}, registry=registry).iter_errors(body))
        assert not errors, (record.topic, [e.message for e in errors[:3]])
        if body["kind"] in ("reconstruction", "video.part"):
            # JSON text inside the MessagePack: its own schema, named by the event's schema
            where = "" if body["kind"] == "reconstruction" else f"#/properties/{body['part']}"
            document = json.loads(body["document"])
            ref = {"$ref": f"reconstruction-document.json{where}"}
            errors = list(msgpack_validator(ref, registry=registry).iter_errors(document))
            assert not errors, (record.topic, [e.message for e in errors[:3]])
    beat = "processor.heartbeat"  # only while a batch runs longer than batch.heartbeat_s
    assert set(kinds) - {beat} == {entry["kind"] for entry in index.values() if "kind" in entry} - {beat}, (
        kinds
    )


def test_topics_are_created_with_their_configs(published: Published) -> None:
    settings = published.settings

    async def describe() -> dict[str, dict[str, str]]:
        admin = AIOKafkaAdminClient(**settings.kafka.client_kwargs())
        await admin.start()
        try:
            resources = [ConfigResource(ConfigResourceType.TOPIC, t.name) for t in catalog(settings)]
            responses = await admin.describe_configs(resources)
        finally:
            await admin.close()
        return {
            name: {entry[0]: entry[1] for entry in entries}
            for response in responses
            for _, _, _, name, entries in response.resources
        }

    described = asyncio.run(describe())
    for topic in catalog(settings):
        assert topic.configs.items() <= described[topic.name].items(), (topic.name, described[topic.name])
    assert described[settings.topics.reconstructions]["cleanup.policy"] == "compact"


def only_aiokafka_and_msgpack(folder: Path) -> dict[str, str]:
    """An environment whose only importable packages are aiokafka, msgpack and aiokafka's own requirements
    (with `python -S`: no site-packages, so not reelscope either)."""
    import aiokafka
    import async_timeout
    import packaging
    import typing_extensions

    folder.mkdir(exist_ok=True)
    for module in (aiokafka, msgpack, async_timeout, packaging, typing_extensions):
        source = Path(module.__file__ or "")
        source = source.parent if source.name == "__init__.py" else source
        (folder / source.name).symlink_to(source)
    return {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(folder)}


def test_the_example_consumer_prints_the_reconstruction_without_reelscope(
    published: Published, tmp_path: Path
) -> None:
    env = only_aiokafka_and_msgpack(tmp_path / "site")
    python = [sys.executable, "-S", "-s", "-P"]  # no site-packages, no current or script folder on the path
    probe = subprocess.run(
        [*python, "-c", "import reelscope"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert (
        probe.returncode != 0 and "No module named 'reelscope'" in probe.stderr
    )  # the check means something
    settings = published.settings
    args = ["--bootstrap-servers", settings.kafka.bootstrap_servers, "--prefix", settings.topics.prefix]
    run = subprocess.run(
        [*python, str(EXAMPLE), *args, "--group", "", "--full", "--limit", "1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    documents = [
        json.loads(msgpack.unpackb(r.value, raw=False)["document"])
        for r in published.records
        if r.topic == settings.topics.reconstructions
    ]
    assert json.loads(run.stdout) in documents
    short = subprocess.run(
        [*python, str(EXAMPLE), *args, "--group", "", "--limit", "2"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = short.stdout.splitlines()
    assert f"{published.video_id}: complete, 2.4 s, 1 shots" in lines, short.stdout
    assert any(line.startswith("contract-missing: failed, 0.0 s, 0 shots (") for line in lines), short.stdout


def test_a_deleted_video_leaves_tombstones_with_headers(published: Published) -> None:
    settings, video_id = published.settings, published.video_id
    headers = {"Authorization": f"Bearer {TOKEN}"}
    deleted = httpx.delete(f"{api_url(settings)}/videos/{video_id}", headers=headers, timeout=30)
    assert deleted.status_code == 200, deleted.text
    compacted = {settings.topics.reconstructions, *(settings.topics.part(p) for p in settings.topics.PARTS)}

    def tombstones(records: list[ConsumerRecord]) -> list[ConsumerRecord]:
        return [r for r in records if r.value is None and r.topic in compacted]

    records = asyncio.run(read_all(settings, lambda rs: len(tombstones(rs)) == len(compacted)))
    assert {r.topic for r in tombstones(records)} == compacted
    for record in tombstones(records):
        kind = b"reconstruction" if record.topic == settings.topics.reconstructions else b"video.part"
        assert record.key == video_id.encode()
        assert headers_of(record) == {"event-kind": kind, "video-id": video_id.encode()}
