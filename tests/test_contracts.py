"""The published contracts without a broker: docs/schemas/ is what the models generate, the API serves the
same files, every event's headers say what it is, and topic configs follow the settings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from reelscope.infra.core.kafka import event_headers
from reelscope.infra.core.settings import Settings
from reelscope.infra.core.topics import catalog
from reelscope.schemas.events import VideoFailed, decode, encode
from reelscope.schemas.json_schema import schema_files
from reelscope.sinks.api import create_app
from reelscope.sinks.store import Store

SCHEMAS = Path(__file__).resolve().parents[1] / "docs" / "schemas"


def test_docs_schemas_are_what_the_models_generate() -> None:
    committed = {path.name: path.read_text() for path in SCHEMAS.glob("*.json")}
    expected = schema_files()
    stale = sorted(
        name for name in set(committed) | set(expected) if committed.get(name) != expected.get(name)
    )
    assert not stale, f"docs/schemas/ drifted from the models in {stale}: run " + (
        "`python -m reelscope.schemas.json_schema --write docs/schemas`"
    )


def test_the_reconstruction_event_points_at_the_document_schema() -> None:
    event = json.loads((SCHEMAS / "event-reconstruction.json").read_text())
    document = event["properties"]["document"]
    assert document["contentMediaType"] == "application/json"
    assert document["contentSchema"] == {"$ref": "reconstruction-document.json"}
    assert (SCHEMAS / "reconstruction-document.json").exists()
    assert json.loads((SCHEMAS / "event-video.part.json").read_text())["properties"]["document"][
        "contentMediaType"
    ] == ("application/json")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(state_dir=tmp_path_factory.mktemp("state"), api_token="secret")
    store = Store(settings)
    store.create_tables()
    with TestClient(create_app(settings, store)) as c:
        yield c
    store.close()


def test_the_api_serves_the_committed_schemas_without_a_token(client: TestClient) -> None:
    index = client.get("/schemas")
    assert index.status_code == 200, index.text
    body = index.json()
    assert set(body["schemas"]) == {p.stem for p in SCHEMAS.glob("*.json")} - {"index"}
    for name, entry in body["schemas"].items():
        served = client.get(entry["url"])
        assert served.status_code == 200 and served.headers["content-type"] == "application/schema+json"
        assert served.json() == json.loads((SCHEMAS / f"{name}.json").read_text())
    assert body["topics"]["reelscope.reconstructions"] == {
        "schemas": ["event-reconstruction"],
        "configs": {"cleanup.policy": "compact", "delete.retention.ms": str(7 * 24 * 3_600_000)},
    }
    assert set(body["headers"]) == {"content-type", "event-kind", "schema-version", "video-id"}
    assert client.get("/schemas/nope.json").status_code == 404
    assert client.get("/videos").status_code == 401  # the token is still required elsewhere
    assert "security" not in client.get("/openapi.json").json()["paths"]["/schemas/{name}.json"]["get"]


def test_headers_say_what_the_event_is() -> None:
    event = VideoFailed(video_id="clip-1", reason="x", stage="ingest")
    headers = dict(event_headers(event))
    body = decode(encode(event))
    assert headers == {
        "content-type": b"application/msgpack",
        "event-kind": body.KIND.encode(),
        "schema-version": str(body.VERSION).encode(),
        "video-id": b"clip-1",
    }


def test_retention_is_per_topic_and_overridable() -> None:
    configs = {t.name: t.configs for t in catalog(Settings(topics={"retention_hours": {"frames": 2}}))}
    assert configs["reelscope.frames"] == {"cleanup.policy": "delete", "retention.ms": str(2 * 3_600_000)}
    assert configs["reelscope.audio"]["retention.ms"] == str(24 * 3_600_000)  # its default is kept
    assert configs["reelscope.results"]["retention.ms"] == str(7 * 24 * 3_600_000)
    assert configs["reelscope.dead-letter"]["retention.ms"] == str(30 * 24 * 3_600_000)
    compacted = {name for name, c in configs.items() if c["cleanup.policy"] == "compact"}
    assert compacted == {
        "reelscope.reconstructions",
        *(f"reelscope.video.{p}" for p in ("transcript", "text-events", "shots", "tracks", "about")),
    }
