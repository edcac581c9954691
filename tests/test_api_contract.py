"""The API's contract on the real app over a real embedded ClickHouse, without a broker: requests are
checked before anything is queued, unknown ids are 404 everywhere, OpenAPI is typed and complete, the docs
render from local assets, media is served with range requests, old uploads are swept. (The parts that need
a broker, DELETE's tombstone and SSE resume, are in test_api.py.)"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from reelscope.infra.core.settings import Settings
from reelscope.sinks.aggregator import empty_video
from reelscope.sinks.api import create_app
from reelscope.sinks.media import sweep_uploads
from reelscope.sinks.store import Store

from tests.media import cut_clip


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("allowed")


@pytest.fixture(scope="module")
def settings(root: Path) -> Settings:
    return Settings(state_dir=root / "state", producer={"allowed_roots": [str(root)]}, api_token=None)


@pytest.fixture(scope="module")
def client(settings: Settings, root: Path) -> Iterator[TestClient]:
    store = Store(settings)
    store.create_tables()
    clip = cut_clip(root / "clip.mp4", cut_frame=10, frames=20, fps=10, tone_s=1.0, silence_s=1.0)
    for video_id, uri in [("here", clip.as_uri()), ("elsewhere", "file:///etc/hostname")]:
        store.upsert_video({**empty_video(video_id), "uri": uri, "status": "complete"})
    store.write_details(
        "here", {"transcript": {"words": [{"start_s": 0.4, "end_s": 0.8, "word": "hello", "speaker": "ch0"}]}}
    )
    with TestClient(create_app(settings, store)) as c:
        yield c
    store.close()


@pytest.mark.parametrize(
    ("uri", "status", "reason"),
    [
        ("missing.mp4", 422, "file not found"),
        ("notes.txt", 422, "not a media file"),
        ("/etc/hostname", 403, "outside the allowed roots"),
        ("https://example.com/a.mp4", 403, "URI scheme 'https' is not allowed"),
        (".", 422, "not a regular file"),
    ],
)
def test_submit_refuses_what_would_fail_later(
    client: TestClient, root: Path, uri: str, status: int, reason: str
) -> None:
    (root / "notes.txt").write_text("not a video\n")
    if "://" not in uri and not uri.startswith("/"):
        uri = str(root / uri)
    response = client.post("/videos", json={"uri": uri})
    assert response.status_code == status, response.text
    assert reason in response.json()["detail"]


def test_a_valid_file_passes_the_checks(client: TestClient, root: Path) -> None:
    # past the checks, only the missing broker stops it (this app has none)
    response = client.post("/videos", json={"uri": (root / "clip.mp4").as_uri()})
    assert response.status_code == 503 and "broker" in response.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/videos/nope"),
        ("GET", "/videos/nope/segments"),
        ("GET", "/videos/nope/reconstruction"),
        ("GET", "/videos/nope/reconstruction/live"),
        ("GET", "/videos/nope/reconstruction.json"),
        ("GET", "/videos/nope/events"),
        ("GET", "/videos/nope/media"),
        ("GET", "/videos/nope/export.vtt"),
        ("GET", "/videos/nope/export.srt"),
        ("GET", "/videos/nope/export.ttml"),
        ("GET", "/videos/nope/export.md"),
        ("DELETE", "/videos/nope"),
    ],
)
def test_unknown_ids_are_404_everywhere(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 404, (path, response.text)
    assert "nope" in response.json()["detail"]


def test_openapi_is_typed_and_complete(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["bearer"]["description"],
    }
    body = spec["paths"]["/videos/upload"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["required"] == ["file"] and body["properties"]["file"]["format"] == "binary"
    assert spec["paths"]["/videos"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in spec["paths"]["/health"]["get"]
    untyped = []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            for code, response in op["responses"].items():
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if (
                    code.startswith("2")
                    and schema is not None
                    and not (schema.get("$ref") or schema.get("items"))
                ):
                    untyped.append(f"{method.upper()} {path} {code}: {schema}")
    assert untyped == []
    models = spec["components"]["schemas"]
    for name in [
        "VideoDetail",
        "VideoSummary",
        "Submitted",
        "SegmentRow",
        "Stats",
        "SearchResults",
        "Deleted",
        "ReconstructionDocument",
    ]:
        assert name in models, name
    assert "Last-Event-ID" in {p["name"] for p in spec["paths"]["/events"]["get"]["parameters"]}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_render_from_local_assets(client: TestClient, page: str) -> None:
    html = client.get(page).text
    sources = [part.split('"')[1] for part in html.split("src=")[1:]] + [
        part.split('"')[1] for part in html.split("href=")[1:]
    ]
    assert sources and all(s.startswith("/docs-assets/") for s in sources), sources
    for source in sources:
        asset = client.get(source)
        assert asset.status_code == 200 and len(asset.content) > 1000, source
    assert "fonts.googleapis" not in html and "cdn." not in html


def test_media_is_served_with_range_requests(client: TestClient, root: Path) -> None:
    data = (root / "clip.mp4").read_bytes()
    whole = client.get("/videos/here/media")
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["accept-ranges"] == "bytes"
    part = client.get("/videos/here/media", headers={"Range": "bytes=100-299"})
    assert part.status_code == 206 and part.content == data[100:300]
    assert part.headers["content-range"] == f"bytes 100-299/{len(data)}"
    tail = client.get("/videos/here/media", headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == data[-50:]
    assert client.get("/videos/here/media", headers={"Range": f"bytes={len(data) + 10}-"}).status_code == 416
    # a stored URI outside the allowed roots is never served
    assert client.get("/videos/elsewhere/media").status_code == 404


def test_search_endpoint_returns_moments(client: TestClient) -> None:
    found = client.get("/search", params={"q": "Hello", "kind": ["word", "text"]}).json()
    assert found["tokens"] == ["hello"]
    assert [(m["video_id"], m["kind"], m["start_s"], m["detail"]) for m in found["moments"]] == [
        ("here", "word", 0.4, "ch0")
    ]
    assert client.get("/search", params={"q": "hello", "kind": "nonsense"}).status_code == 422
    assert client.get("/search", params={"q": "hello", "has_speech": "false"}).json()["moments"] == []


def test_old_uploads_are_swept(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, upload_retention_h=1.0)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    old, new = uploads / "old.mp4", uploads / "new.mp4"
    for path in (old, new):
        path.write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    assert sweep_uploads(settings) == [old.resolve()]
    assert not old.exists() and new.exists()
    assert sweep_uploads(Settings(state_dir=tmp_path, upload_retention_h=0), now=time.time() + 1e6) == []
    assert new.exists()
