"""The HTTP API on a real stack: uploads, live events, exports, stats and token auth."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import httpx
import pytest
from reelscope.infra.core.settings import Settings
from reelscope.infra.stack import api_url

from tests.conftest import run, stack_env, stack_running
from tests.media import SHARED_MEDIA, cut_clip
from tests.test_exports import parse_vtt, voice_text
from tests.test_schemas import assert_valid_document

pytestmark = pytest.mark.integration

TOKEN = "api-test-token"
LIMIT = 1_000_000
STALL_S = 2
ANALYZERS = '["scene", "color", "loudness", "transcription"]'
Event = tuple[str, dict[str, Any]]


@pytest.fixture(scope="module")
def api_stack(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A real stack with a token, a small upload limit and only cheap analyzers."""
    env = stack_env(
        broker,
        tmp_path_factory.mktemp("api"),
        REELSCOPE_API_TOKEN=TOKEN,
        REELSCOPE_MAX_UPLOAD_BYTES=str(LIMIT),
        REELSCOPE_ANALYZERS=ANALYZERS,
        REELSCOPE_UPLOAD_READ_TIMEOUT_S=str(STALL_S),
        REELSCOPE_MIN_FREE_BYTES="0",  # the disk-full test fills a tiny mount; the floor has its own test
    )
    with stack_running(env) as settings:
        yield settings


@pytest.fixture
def client(api_stack: Settings) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=api_url(api_stack), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    ) as c:
        yield c


def read_events(
    client: httpx.Client,
    path: str,
    until: Callable[[list[Event]], bool],
    opened: threading.Event | None = None,
    timeout_s: float = 120,
) -> list[Event]:
    """Server-sent events from `path` until `until(events)` holds or the stream ends."""
    events: list[Event] = []
    deadline = time.monotonic() + timeout_s
    with client.stream("GET", path, headers={"Authorization": ""}, timeout=30) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        if opened is not None:
            opened.set()
        name, data = "", []
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                data.append(line.removeprefix("data:").strip())
            elif not line and name:
                events.append((name, json.loads("\n".join(data))))
                name, data = "", []
                if until(events):
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"{path}: no end after {timeout_s} s; got {events[-3:]}")
    return events


def completed(video_id: str) -> Callable[[list[Event]], bool]:
    return lambda events: any(n == "complete" and d["video_id"] == video_id for n, d in events)


def upload(client: httpx.Client, name: str, content: bytes, **fields: Any) -> httpx.Response:
    data = {k: json.dumps(v) for k, v in fields.items()}
    return client.post("/videos/upload", files={"file": (name, content, "video/mp4")}, data=data)


def uploads_dir(settings: Settings) -> Path:
    return (settings.state_dir / "uploads").resolve()


def test_openapi_and_token_auth(api_stack: Settings, client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, method in [
        ("/videos/upload", "post"),
        ("/videos/{video_id}/export.vtt", "get"),
        ("/videos/{video_id}/export.md", "get"),
        ("/videos/{video_id}/reconstruction.json", "get"),
        ("/videos/{video_id}/reconstruction/live", "get"),
        ("/videos/{video_id}/events", "get"),
        ("/events", "get"),
        ("/stats", "get"),
    ]:
        assert method in paths.get(path, {}), f"{method.upper()} {path} missing from the OpenAPI schema"

    with httpx.Client(base_url=api_url(api_stack), timeout=10) as anon:
        for path in ["/videos", "/stats", "/videos/x/export.vtt", "/videos/x/export.md", "/events"]:
            assert anon.get(path).status_code == 401, path
        assert anon.post("/videos/upload", files={"file": ("a.mp4", b"x")}).status_code == 401
        assert anon.get("/videos", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert anon.get("/events", params={"token": "wrong"}).status_code == 401
        assert anon.get("/events", params={"token": "wrönġ"}).status_code == 401  # not a 500
        # the query token is for event streams only (EventSource cannot set headers)
        assert anon.get("/videos", params={"token": TOKEN}).status_code == 401
        assert anon.get("/health").status_code == 200
        page = anon.get("/")
        assert page.status_code == 200 and "/static/app.js" in page.text
        assert anon.get("/static/app.js").status_code == 200
        with anon.stream("GET", "/events", params={"token": TOKEN}) as stream:
            assert stream.status_code == 200
            assert next(stream.iter_lines()) == "retry: 2000"
    assert client.get("/videos").status_code == 200


def test_upload_streams_progress_then_exports(
    api_stack: Settings, client: httpx.Client, tmp_path: Path
) -> None:
    clip = cut_clip(tmp_path / "cut.mp4", cut_frame=30, frames=60, fps=25, tone_s=1.0, silence_s=1.4)
    content = clip.read_bytes()
    watched: list[Event] = []
    opened = threading.Event()
    target: dict[str, str] = {}

    def watch_all() -> None:  # the all-videos stream, opened before the upload
        watched.extend(
            read_events(
                client,
                f"/events?token={TOKEN}",
                lambda ev: bool(target) and completed(target["id"])(ev),
                opened,
            )
        )

    watcher = threading.Thread(target=watch_all, daemon=True)
    watcher.start()
    assert opened.wait(30)

    response = upload(client, "../../evil <name>.mp4", content, metadata={"creator": "tester"})
    assert response.status_code == 202, response.text
    video_id = response.json()["video_id"]
    target["id"] = video_id
    assert re.fullmatch(r"evil-name-[0-9a-f]{10}", video_id)

    events = read_events(client, f"/videos/{video_id}/events?token={TOKEN}", completed(video_id))
    progress = [d for n, d in events if n == "progress"]
    assert events[-1] == ("complete", {"video_id": video_id, "status": "complete"})
    assert progress and all(d["video_id"] == video_id for d in progress)
    for earlier, later in itertools.pairwise(progress):  # counts only grow
        for name, p in earlier["progress"].items():
            assert later["progress"][name]["received"] >= p["received"]
    final = progress[-1]["progress"]
    assert set(final) == {"scene", "color", "loudness", "transcription"}
    assert all(p["received"] == p["expected"] and p["expected"] > 0 for p in final.values()), final
    assert progress[-1]["done"] == 1.0

    watcher.join(120)
    assert not watcher.is_alive()
    mine = [(n, d) for n, d in watched if d["video_id"] == video_id]
    assert ("complete", {"video_id": video_id, "status": "complete"}) in mine
    # (whether it was also seen in flight depends on timing: a tiny clip can finish between two polls)
    assert [d["progress"] for n, d in mine if n == "progress"][-1] == final

    # stored under a generated name inside the upload directory, byte for byte
    row = client.get(f"/videos/{video_id}").json()
    stored = Path(unquote(urlparse(row["uri"]).path))
    assert stored.parent == uploads_dir(api_stack)
    assert re.fullmatch(r"[0-9a-f]{32}\.mp4", stored.name)
    assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(content).digest()
    assert row["metadata"] == {"filename": "evil <name>.mp4", "creator": "tester"}  # only what was sent
    assert row["options"] == {} and row["submitted_at"]

    download = client.get(f"/videos/{video_id}/reconstruction.json")
    assert download.headers["content-disposition"] == f'attachment; filename="{video_id}.json"'
    doc = download.json()
    assert doc["status"] == "complete"
    assert_valid_document(doc)
    assert [round(c["time_s"], 2) for c in doc["cuts"]] == [1.2]  # frame 30 at 25 fps
    assert client.get(f"/videos/{video_id}/reconstruction/live").json() == doc

    md = client.get(f"/videos/{video_id}/export.md")
    assert md.headers["content-type"].startswith("text/markdown")
    assert "| 0 | 0.00 | 1.20 | 1.20 s |" in md.text and "| 1 | 1.20 | 2.40 | 1.20 s |" in md.text
    assert "| scene | complete |" in md.text
    assert "evil &lt;name&gt;.mp4" in md.text

    vtt = client.get(f"/videos/{video_id}/export.vtt")
    assert vtt.headers["content-type"].startswith("text/vtt")
    assert vtt.headers["content-disposition"] == f'attachment; filename="{video_id}.vtt"'
    parse_vtt(vtt.text)  # a tone and silence: valid, whatever the recogniser heard

    stats = client.get("/stats").json()
    assert stats["finished_in_window"] >= 1 and sum(stats["per_minute"][-2:]) >= 1  # newest minutes last
    assert len(stats["per_minute"]) == 10 and sum(stats["per_minute"]) == stats["finished_in_window"]
    assert stats["throughput_per_min"] == pytest.approx(stats["finished_in_window"] / 10)
    assert isinstance(stats["in_flight"], int)
    # lag from acknowledged vs committed offsets: the finished video left nothing uncommitted
    assert stats["consumer_lag"] == 0 and set(stats["consumer_lag_by_group"]) == {"light", "audio", "speech"}
    assert "committed" in stats["consumer_lag_reason"]


def test_uploaded_two_speaker_audio_exports_voice_cues(client: httpx.Client) -> None:
    source = SHARED_MEDIA / "stereo_diarization.wav"
    if not source.is_file():
        pytest.skip(f"shared test media not found at {SHARED_MEDIA}")
    response = upload(client, source.name, source.read_bytes())
    assert response.status_code == 202, response.text
    video_id = response.json()["video_id"]
    events = read_events(client, f"/videos/{video_id}/events?token={TOKEN}", completed(video_id))
    assert events[-1][1]["status"] == "complete"  # no video stream: nothing lost
    cues = parse_vtt(client.get(f"/videos/{video_id}/export.vtt").text)
    left, right = voice_text(cues, "ch0").lower(), voice_text(cues, "ch1").lower()
    # ground truth: left "He began a confused complaint against the wizard, who had vanished behind the
    # curtain on the left."; right "The horizon seems extremely distant."
    assert all(w in left for w in ("complaint", "wizard", "vanished", "curtain")), left
    assert all(w in right for w in ("horizon", "extremely", "distant")), right
    assert "horizon" not in left and "wizard" not in right
    md = client.get(f"/videos/{video_id}/export.md").text
    assert "**ch0**" in md and "**ch1**" in md and "| transcription | complete |" in md
    # search finds the spoken words of the real run, on their channel, at their time
    words = client.get(f"/videos/{video_id}/reconstruction").json()["transcript"]["words"]
    wizard = next(w for w in words if "wizard" in w["word"].lower())
    found = client.get("/search", params={"q": "wizard", "kind": "word"}).json()["moments"]
    mine = [m for m in found if m["video_id"] == video_id]
    assert [(m["start_s"], m["detail"]) for m in mine] == [(wizard["start_s"], "ch0")]
    # separate speech and on-screen text tracks: the speech track has both voices, the text track none
    speech = parse_vtt(client.get(f"/videos/{video_id}/export.vtt", params={"track": "speech"}).text)
    assert voice_text(speech, "ch1").lower() == right
    assert client.get(f"/videos/{video_id}/export.vtt", params={"track": "text"}).text == "WEBVTT\n"


def test_oversize_upload_is_refused_and_leaves_nothing(api_stack: Settings, client: httpx.Client) -> None:
    before = set(os.listdir(uploads_dir(api_stack))) if uploads_dir(api_stack).exists() else set()
    blob = os.urandom(LIMIT + 1)
    # declared far too large: refused before the body is read
    assert upload(client, "huge.mp4", os.urandom(LIMIT + 2 * 1024 * 1024)).status_code == 413
    # one byte over, with a Content-Length that passes the early check: refused while streaming
    over = upload(client, "over.mp4", blob)
    assert over.status_code == 413 and str(LIMIT) in over.json()["detail"]

    boundary = "reelscope-test-boundary"

    def chunked() -> Iterator[bytes]:  # no Content-Length at all
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="c.mp4"\r\n'
            f"Content-Type: video/mp4\r\n\r\n"
        ).encode()
        for i in range(0, len(blob), 64 * 1024):
            yield blob[i : i + 64 * 1024]
        yield f"\r\n--{boundary}--\r\n".encode()

    streamed = client.post(
        "/videos/upload",
        content=chunked(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert streamed.status_code == 413
    assert set(os.listdir(uploads_dir(api_stack))) == before  # no partial file left behind
    # exactly at the limit passes the size check; the bytes are no video, so the probe refuses them
    edge = upload(client, "edge.mp4", blob[:LIMIT])
    assert edge.status_code == 422 and "not a media file" in edge.json()["detail"]
    assert set(os.listdir(uploads_dir(api_stack))) == before
    assert not [n for n in os.listdir(uploads_dir(api_stack)) if n.endswith(".part")]


def test_hostile_requests_get_4xx_with_reasons(
    api_stack: Settings, client: httpx.Client, tmp_path: Path
) -> None:
    clip = cut_clip(
        tmp_path / "tiny.mp4", cut_frame=5, frames=10, fps=10, tone_s=0.5, silence_s=0.5
    ).read_bytes()
    # names the server cannot store as given still upload (the id is an ASCII slug)
    for name, slug in (("vidéo 日本.mp4", "vid-o"), ("", "upload"), ("日本.mp4", "upload")):
        answer = upload(client, name, clip)
        assert answer.status_code == 202, answer.text
        assert re.fullmatch(rf"{slug}-[0-9a-f]{{10}}", answer.json()["video_id"])
    # bodies: too large declared, too large streamed, metadata over its budget, not JSON-able
    huge = {"uri": "file:///x.mp4", "metadata": {"blob": "x" * 10_000_000}}
    assert client.post("/videos", json=huge).status_code == 413

    def chunks() -> Iterator[bytes]:
        body = json.dumps(huge).encode()
        for i in range(0, len(body), 1 << 16):
            yield body[i : i + (1 << 16)]

    streamed = client.post("/videos", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413 and "larger than" in streamed.json()["detail"]
    fat = client.post("/videos", json={"uri": "file:///x.mp4", "metadata": {"blob": "x" * 70_000}})
    assert fat.status_code == 422 and "bytes as JSON" in fat.text
    # ids: length and character set, refused before anything is queued
    for bad in ("a" * 129, "a/b", "../etc", "-dash", "sp ace", "é"):
        answer = client.post("/videos", json={"uri": "file:///x.mp4", "video_id": bad})
        assert answer.status_code == 422, (bad, answer.text)
    good = client.post("/videos", json={"uri": "file:///nope.mp4", "video_id": "Ok_id-1.2"})
    assert (
        good.status_code == 422 and "file not found" in good.json()["detail"]
    )  # the id passed; the file not
    # list limits
    for limit in ("1e22", "10000000000000000000000", "0", "-1", "100000"):
        assert client.get("/videos", params={"limit": limit}).status_code == 422, limit
    assert client.get("/videos", params={"limit": 5}).status_code == 200
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["ready"] is True


def read_http_answer(sock: socket.socket) -> str:
    """Status line, headers and the whole body (they may arrive in separate reads)."""
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
        head, sep, body = received.partition(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length: *(\d+)", head)
        if sep and length and len(body) >= int(length.group(1)):
            break
    return received.decode("latin-1")


def test_a_stalled_upload_is_timed_out_and_leaves_nothing(api_stack: Settings) -> None:
    before = set(os.listdir(uploads_dir(api_stack)))
    host, port = api_stack.api_host, api_stack.api_port
    boundary = "stall"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.mp4"\r\n\r\n'
    ).encode() + b"x" * 1000
    with socket.create_connection((host, port), timeout=STALL_S * 10) as sock:
        sock.sendall(
            (
                f"POST /videos/upload HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                f"Content-Length: {len(head) + 100_000}\r\n\r\n"
            ).encode()
            + head
        )
        t0 = time.monotonic()
        answer = read_http_answer(sock)
        waited = time.monotonic() - t0
    assert answer.startswith("HTTP/1.1 408") and "stalled" in answer, answer
    assert STALL_S - 0.5 <= waited < STALL_S * 5
    assert set(os.listdir(uploads_dir(api_stack))) == before


def test_an_upload_that_fills_the_disk_gets_507_and_leaves_nothing(
    api_stack: Settings, client: httpx.Client, tmp_path: Path
) -> None:
    """A real ENOSPC: a 256 KB tmpfs over the uploads directory (needs the right to mount)."""
    target = uploads_dir(api_stack)
    target.mkdir(parents=True, exist_ok=True)
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(target)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        answer = upload(client, "big.mp4", os.urandom(600_000))
        assert answer.status_code == 507 and "disk is full" in answer.json()["detail"], answer.text
        assert os.listdir(target) == []
    finally:
        subprocess.run(["umount", str(target)], check=True)
    small = cut_clip(tmp_path / "small.mp4", cut_frame=5, frames=10, fps=10, tone_s=0.5, silence_s=0.5)
    assert upload(client, "small.mp4", small.read_bytes()).status_code == 202  # space again: accepted


def test_a_full_disk_is_named_by_health_and_uploads(broker: str, tmp_path: Path) -> None:
    """Free space below the configured floor: /health says why it is not ready, uploads get 507, and
    `up` names the cause instead of just timing out."""
    from reelscope.infra.stack import down, spawn, up

    env = stack_env(
        broker,
        tmp_path / "state",
        REELSCOPE_ANALYZERS=ANALYZERS,
        REELSCOPE_MIN_FREE_BYTES=str(1 << 60),
        REELSCOPE_API_TOKEN=TOKEN,
    )
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = Settings()
        spawn(settings, "serve", ["serve"])
        try:
            auth = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.Client(base_url=api_url(settings), headers=auth, timeout=30) as anon:
                deadline = time.monotonic() + 120
                health = None
                while time.monotonic() < deadline:
                    with contextlib.suppress(httpx.TransportError):
                        health = anon.get("/health")
                        if health.json()["status"] == "degraded":
                            break
                    time.sleep(0.3)
                assert health is not None and health.status_code == 503, health
                assert not health.json()["ready"] and "nearly full" in health.json()["reason"]
                refused = upload(anon, "c.mp4", b"0" * 1000)
            assert refused.status_code == 507 and "nearly full" in refused.json()["detail"]
            uploads = settings.state_dir / "uploads"
            assert not uploads.exists() or not [p for p in uploads.iterdir() if not p.name.startswith(".")]
            with pytest.raises(TimeoutError, match="disk is nearly full"):
                up(settings, timeout_s=5)
        finally:
            down(settings)


def raw_events(
    client: httpx.Client,
    path: str,
    until: Callable[[list[tuple[str, str, dict[str, Any]]]], bool],
    seconds: float,
    last_event_id: str | None = None,
) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, event, data) from a stream until `until` holds, the stream ends, or `seconds` pass."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    out: list[tuple[str, str, dict[str, Any]]] = []
    deadline = time.monotonic() + seconds
    with client.stream("GET", path, headers=headers, timeout=seconds + 15) as response:
        assert response.status_code == 200, response.read()
        ident, name, data = "", "", ""
        for line in response.iter_lines():
            if line.startswith("id:"):
                ident = line.removeprefix("id:").strip()
            elif line.startswith("event:"):
                name = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                data = line.removeprefix("data:").strip()
            elif not line and name:
                out.append((ident, name, json.loads(data)))
                ident, name, data = "", "", ""
                if until(out):
                    break
            if time.monotonic() > deadline:  # keepalives come every 10 s, so this is checked
                break
    return out


def test_media_resume_and_delete(api_stack: Settings, client: httpx.Client, tmp_path: Path) -> None:
    from aiokafka import AIOKafkaConsumer

    clip = cut_clip(tmp_path / "del.mp4", cut_frame=10, frames=20, fps=10, tone_s=1.0, silence_s=1.0)
    content = clip.read_bytes()
    video_id = upload(client, "del.mp4", content).json()["video_id"]
    # known at once: the detail view needs no retry loop of 404s
    assert client.get(f"/videos/{video_id}").status_code == 200
    early = client.delete(f"/videos/{video_id}")
    assert early.status_code == 409 and "delete it once finished" in early.json()["detail"]

    events = raw_events(client, f"/videos/{video_id}/events", lambda ev: ev[-1][1] == "complete", 120)
    assert events and events[-1][1:] == ("complete", {"video_id": video_id, "status": "complete"}), events
    ids = [int(i) for i, _, _ in events]
    assert all(i > 0 for i in ids) and ids == sorted(ids)
    done_id = events[-1][0]

    # resume: a client that saw the completion gets nothing again; one that left before gets it
    assert raw_events(client, f"/videos/{video_id}/events", lambda ev: True, 5, last_event_id=done_id) == []
    again = raw_events(
        client, f"/videos/{video_id}/events", lambda ev: ev[-1][1] == "complete", 30, str(ids[0] - 1)
    )
    assert again and again[-1][1] == "complete", (ids, again)
    # the all-videos stream: a fresh one does not report videos done before it opened, a resumed one does
    is_mine = lambda ev: any(n == "complete" and d["video_id"] == video_id for _, n, d in ev)  # noqa: E731
    assert not is_mine(raw_events(client, "/events", is_mine, 3))
    assert is_mine(raw_events(client, "/events", is_mine, 30, last_event_id=str(ids[0] - 1)))

    # the player's media: whole and in ranges
    media = client.get(f"/videos/{video_id}/media", params={"token": TOKEN}, headers={"Authorization": ""})
    assert media.status_code == 200 and media.content == content
    part = client.get(f"/videos/{video_id}/media", headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == content[:10]

    # typed exports of the finished video
    srt = client.get(f"/videos/{video_id}/export.srt")
    assert srt.headers["content-type"].startswith("application/x-subrip")
    ttml = client.get(f"/videos/{video_id}/export.ttml")
    assert ttml.headers["content-type"].startswith("application/ttml+xml") and "<tt " in ttml.text

    stored = Path(unquote(urlparse(client.get(f"/videos/{video_id}").json()["uri"]).path))
    assert stored.is_file()
    deleted = client.delete(f"/videos/{video_id}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"video_id": video_id, "upload_removed": True, "tombstone": True}
    assert not stored.exists()
    for path in ["", "/segments", "/reconstruction", "/media", "/export.vtt"]:
        assert client.get(f"/videos/{video_id}{path}").status_code == 404, path
    assert video_id not in {v["video_id"] for v in client.get("/videos").json()}
    assert client.delete(f"/videos/{video_id}").status_code == 404

    async def tombstones() -> list[Any]:
        consumer = AIOKafkaConsumer(
            api_stack.topics.reconstructions,
            **api_stack.kafka.client_kwargs(),
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        found: list[Any] = []
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not found:
                batch = await consumer.getmany(timeout_ms=500)
                found += [
                    r
                    for part in batch.values()
                    for r in part
                    if r.key == video_id.encode() and r.value is None
                ]
        finally:
            await consumer.stop()
        return found

    assert len(run(tombstones())) == 1


def test_a_text_file_upload_is_refused_and_leaves_nothing(api_stack: Settings, client: httpx.Client) -> None:
    before = set(os.listdir(uploads_dir(api_stack)))
    answer = upload(client, "notes.mp4", b"just some text, named like a video\n")
    assert answer.status_code == 422 and "not a media file" in answer.json()["detail"]
    assert set(os.listdir(uploads_dir(api_stack))) == before
