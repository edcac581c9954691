"""The dashboard in a real headless Chromium against a real stack: upload through the page, watch it finish.

Chromium is driven over its DevTools protocol on a pipe (--remote-debugging-pipe: NUL-terminated JSON on
file descriptors 3 and 4), which needs no websocket client. The screenshot is kept in artifacts/.
"""

from __future__ import annotations

import base64
import contextlib
import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reelscope.infra.core.settings import Settings
from reelscope.infra.stack import api_url

from tests.conftest import stack_env, stack_running
from tests.media import cut_clip
from tests.test_exports import FULL_DOC, PROMOTED_DOC

pytestmark = pytest.mark.integration

TOKEN = "dashboard-test-token"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-pipe",
    "--window-size=1280,900",
    "--autoplay-policy=no-user-gesture-required",
]


class Chromium:
    """A headless Chromium and one page, spoken to over the DevTools pipe."""

    def __init__(self, executable: str, profile: Path, log: Path) -> None:
        # the shell maps our stdin/stdout pipes onto the fds 3 and 4 that --remote-debugging-pipe uses
        self.proc = subprocess.Popen(
            [
                *("sh", "-c", 'exec "$@" 3<&0 4>&1 0</dev/null 1>/dev/null', "sh", executable),
                *FLAGS,
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("wb"),
        )
        self._next_id = 0
        self._replies: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.events: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", page=True)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            page=True,
        )

    def _read(self) -> None:
        assert self.proc.stdout is not None
        buffer = b""
        while chunk := self.proc.stdout.read1(1 << 16):
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "id" in message:
                    with self._lock:
                        box = self._replies.get(message["id"])
                    if box is not None:
                        box.put(message)
                else:
                    self.events.append(message)

    def send(self, method: str, params: dict[str, Any] | None = None, page: bool = False) -> dict[str, Any]:
        with self._lock:
            self._next_id += 1
            ident = self._next_id
            box: queue.Queue[dict[str, Any]] = queue.Queue()
            self._replies[ident] = box
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if page:
            message["sessionId"] = self.session
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\0")
        self.proc.stdin.flush()
        reply = box.get(timeout=30)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def evaluate(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            page=True,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.evaluate(expression):
                return
            time.sleep(0.25)
        detail = self.evaluate("document.getElementById('detail')?.innerText.slice(0, 1500)")
        raise AssertionError(f"the page never showed {what} within {timeout_s} s; detail view:\n{detail}")

    def set_file(self, selector: str, path: Path) -> None:
        root = self.send("DOM.getDocument", {"depth": 0}, page=True)["root"]["nodeId"]
        node = self.send("DOM.querySelector", {"nodeId": root, "selector": selector}, page=True)["nodeId"]
        self.send("DOM.setFileInputFiles", {"files": [str(path)], "nodeId": node}, page=True)

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", {"format": "png"}, page=True)["data"]
        path.write_bytes(base64.b64decode(data))

    def exceptions(self) -> list[str]:
        return [
            json.dumps(e["params"]["exceptionDetails"])[:500]
            for e in self.events
            if e.get("method") == "Runtime.exceptionThrown"
        ]

    def console_errors(self) -> list[str]:
        """Errors the page logged, failed loads (a 404) included."""
        return [
            e["params"]["entry"]["text"] + " " + e["params"]["entry"].get("url", "")
            for e in self.events
            if e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"
        ]

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, OSError, queue.Empty):
            self.send("Browser.close")
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def dashboard_stack(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    env = stack_env(
        broker,
        tmp_path_factory.mktemp("dashboard"),
        REELSCOPE_API_TOKEN=TOKEN,
        REELSCOPE_ANALYZERS='["scene", "color", "loudness", "thumbnails"]',
    )
    with stack_running(env) as settings:
        yield settings


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Chromium]:
    assert CHROMIUM is not None
    chromium = Chromium(CHROMIUM, tmp_path / "profile", tmp_path / "chromium.log")
    try:
        yield chromium
    finally:
        chromium.close()


def test_upload_through_the_page_and_watch_it_complete(
    dashboard_stack: Settings, browser: Chromium, tmp_path: Path
) -> None:
    clip = cut_clip(tmp_path / "two-shots.mp4", cut_frame=30, frames=60, fps=25, tone_s=1.0, silence_s=1.4)
    browser.send("Page.navigate", {"url": f"{api_url(dashboard_stack)}/?token={TOKEN}"}, page=True)
    browser.wait_for("document.getElementById('live-state')?.classList.contains('ok')", 30, "live updates")
    # the token moved from the address bar into session storage
    assert browser.evaluate("location.search") == ""
    assert browser.evaluate("sessionStorage.getItem('reelscope.token')") == TOKEN

    browser.set_file("#upload-file", clip)
    browser.evaluate("document.getElementById('upload-form').requestSubmit()")
    browser.wait_for("location.hash.startsWith('#video=two-shots-')", 30, "the uploaded video selected")
    video_id = browser.evaluate("decodeURIComponent(location.hash.slice(7))")
    browser.wait_for(f"document.getElementById('player')?.dataset.videoId === '{video_id}'", 10, "the player")

    detail = "document.getElementById('detail')"
    browser.wait_for(f"{detail}.dataset.status === 'complete'", 120, f"{video_id} complete")
    assert browser.evaluate(f"{detail}.dataset.videoId") == video_id
    assert browser.evaluate(f"{detail}.dataset.provisional") == "false"
    # two shots (hard cut at frame 30 of 25 fps), each with a card and a timeline block
    shots = browser.evaluate(
        "[...document.querySelectorAll('#shots .shot figcaption')].map(f => f.innerText.replace(/\\s+/g, ' '))"
    )
    assert shots == ["#0 0:00.0–0:01.2", "#1 0:01.2–0:02.4"], shots
    assert browser.evaluate("document.querySelectorAll('.timeline .shot-item').length") == 2
    states = browser.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#analyzers tbody tr')]"
        ".map(r => [r.cells[0].innerText, r.cells[1].innerText]))"
    )
    assert states == {n: "complete" for n in ("color", "loudness", "scene", "thumbnails")}, states
    thumbs = browser.evaluate("[...document.querySelectorAll('#shots .shot img.thumb')].map(i => i.src)")
    assert len(thumbs) == 2 and all(t.startswith("data:image/jpeg;base64,") for t in thumbs)
    assert browser.evaluate("document.querySelectorAll('.downloads button:disabled').length") == 0
    assert browser.evaluate("window.reelscope.events") > 0  # progress arrived over server-sent events
    # the page's own authorised fetch serves the exports
    md = browser.evaluate(f"api('/videos/{video_id}/export.md').then(r => r.text())")
    assert "| 1 | 1.20 | 2.40 | 1.20 s |" in md
    browser.wait_for(
        f"document.querySelector('#videos li[data-video-id=\"{video_id}\"]')?.dataset.status === 'complete'",
        30,
        "the video listed as complete",
    )
    browser.wait_for("document.getElementById('stat-lag').textContent === '0'", 15, "lag shown (0 when idle)")
    assert "end offsets" in browser.evaluate("document.getElementById('stat-lag').title")
    assert browser.evaluate("document.getElementById('stat-throughput').textContent").endswith("/min")

    ARTIFACTS.mkdir(exist_ok=True)
    browser.screenshot(ARTIFACTS / "dashboard.png")
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
    # a thumbnail that is not a data:image URI is never put in an <img>
    shown = browser.evaluate(
        f"""(async () => {{
            const row = await apiJson('/videos/{video_id}');
            const doc = await apiJson('/videos/{video_id}/reconstruction.json');
            doc.shots[1].thumbnail = 'javascript:alert(1)';
            renderDetail(row, doc);
            return [...document.querySelectorAll('#shots .shot img.thumb')].map(i => i.src);
        }})()"""
    )
    assert shown == thumbs[:1]
    # every section of a fuller document (description, captions, about, text, faces, transcript) renders
    rich = {
        **PROMOTED_DOC,
        "duration_s": 5.0,
        "transcript": FULL_DOC["transcript"],
        "analyzers": FULL_DOC["analyzers"],
        "summaries": {"objects": FULL_DOC["summaries"]["objects"], "loudness": {"silences": []}},
    }
    text = browser.evaluate(
        f"""(async () => {{
            const row = await apiJson('/videos/{video_id}');
            renderDetail(row, {json.dumps(rich)});
            return document.getElementById('detail').innerText;
        }})()"""
    )
    for expected in [
        "A dog runs on a beach.",
        "Qwen2-VL (configured)",
        "a dog running",
        "waves at sunset",
        "FOLLOW for more",
        "pets",
        "beach dog",
        "#dogs",
        "First the onions.",
        "up to 2 at once",
        "mostly pan",
        "knife × 1",
    ]:
        assert expected in text, expected
    assert browser.evaluate("document.querySelectorAll('.timeline .item.object').length") == 1
    assert browser.exceptions() == []
    # the detail view showed the submitted video at once: no 404 while the producer had not opened it
    assert browser.console_errors() == []


# --- the player and search, on an API over a store filled with generated videos ----------------------------

SPOKEN = "aubergine"
"""The word searched for: spoken in exactly one of the ten videos (`clip-6`, at 1.6 s)."""


def clip_doc(i: int, duration: float) -> dict[str, Any]:
    """A finished video's document: two shots, speech on two channels, one on-screen text event with a box."""
    words = [
        {
            "start_s": 0.2 + 0.3 * n,
            "end_s": 0.45 + 0.3 * n,
            "word": w,
            "speaker": f"ch{n % 2}",
            "probability": 0.9,
        }
        for n, w in enumerate(["first", "chop", "the", "onions"])
    ]
    if i == 6:
        words.append(
            {"start_s": 1.6, "end_s": 1.9, "word": SPOKEN.capitalize(), "speaker": "ch1", "probability": 0.8}
        )
    return {
        "format": "reelscope.reconstruction",
        "video_id": f"clip-{i}",
        "status": "complete",
        "duration_s": duration,
        "media": {"width": 320, "height": 180, "avg_fps": 10.0, "video_codec": "h264", "audio_codec": "aac"},
        "shots": [
            {"index": 0, "start_s": 0.0, "end_s": 1.0},
            {"index": 1, "start_s": 1.0, "end_s": duration},
        ],
        "transcript": {"language": "en", "words": words, "segments": []},
        "text_events": [
            {"text": f"STEP {i}", "start_s": 1.3, "end_s": 2.2, "box": [0.1, 0.1, 0.6, 0.3], "conf": 0.97}
        ],
        "tracks": [],
        "segments": [
            {"index": 0, "start_s": 0.0, "end_s": 1.0, "shot": 0, "segmentation": {"person_share": 0.42}},
            {
                "index": 1,
                "start_s": 1.0,
                "end_s": 2.0,
                "shot": 1,
                "segmentation": {"person_share": 0.3, "green_screen_share": 1.0},
            },
        ],
        "speaking": {
            "turns": [
                {
                    "start_s": 0.2,
                    "end_s": 1.2,
                    "speaker": "S0",
                    "where": "on_screen",
                    "track_id": 1,
                    "confidence": 0.8,
                },
                {
                    "start_s": 1.5,
                    "end_s": 2.0,
                    "speaker": "S1",
                    "where": "off_screen",
                    "track_id": None,
                    "confidence": 0.6,
                },
            ]
        },
        "summaries": {"segmentation": {"background_changes": [{"at_s": 1.0, "distance": 0.4}]}},
        "analyzers": {},
        "warnings": [],
    }


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An API (the real app, uvicorn) over a real chdb store holding ten finished videos, written through
    the store as the aggregator writes them; their files are real clips the player can load."""
    import socket

    import uvicorn
    from reelscope.sinks.aggregator import empty_video
    from reelscope.sinks.api import create_app
    from reelscope.sinks.store import Store

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    root = tmp_path_factory.mktemp("library")
    settings = Settings(state_dir=root / "state", producer={"allowed_roots": [str(root)]}, api_token=None)
    store = Store(settings)
    store.create_tables()
    for i in range(10):
        clip = cut_clip(root / f"clip-{i}.mp4", cut_frame=10, frames=30, fps=10, tone_s=1.5, silence_s=1.5)
        doc = clip_doc(i, 3.0)
        store.upsert_video(
            {
                **empty_video(doc["video_id"]),
                "uri": clip.as_uri(),
                "status": "complete",
                "duration_s": 3.0,
                "width": 320,
                "height": 180,
                "has_video": True,
                "has_audio": True,
            }
        )
        store.write_details(doc["video_id"], doc)
        store.save_reconstruction(doc["video_id"], "complete", 1, json.dumps(doc))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, store), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()


def test_play_click_to_seek_and_search_opens_the_moment(library: str, browser: Chromium) -> None:
    browser.send("Page.navigate", {"url": f"{library}/#video=clip-3"}, page=True)
    player = "document.getElementById('player')"
    browser.wait_for(f"{player}?.readyState >= 2", 30, "the video loaded in the player")
    assert browser.evaluate(f"{player}.duration") == pytest.approx(3.0, abs=0.1)
    # one lane per stereo channel, confidence on hover (the timeline is drawn from its own request, which
    # may answer after the video loaded)
    browser.wait_for("document.querySelectorAll('.timeline .lane').length > 0", 30, "the timeline's lanes")
    lanes = browser.evaluate("[...document.querySelectorAll('.timeline .lane')].map(l => l.dataset.lane)")
    assert lanes == ["shots", "speech ch0", "speech ch1", "who speaks", "on-screen text", "segmentation"], (
        lanes
    )
    labels = "[...document.querySelectorAll('.lane[data-lane=\"{}\"] .item')].map(i => i.innerText)"
    assert browser.evaluate(labels.format("who speaks")) == ["S0: face 1", "S1: off-screen"]
    assert browser.evaluate(labels.format("segmentation")) == ["42%", "30% green screen", "background change"]
    text_item = "document.querySelector('.lane[data-lane=\"on-screen text\"] .item')"
    assert "confidence 97%" in browser.evaluate(f"{text_item}.title")

    # it plays: time advances
    browser.evaluate(f"{player}.muted = true; {player}.play().then(() => true)")
    browser.wait_for(f"{player}.currentTime > 0.3", 15, "playback advancing")
    browser.evaluate(f"{player}.pause()")

    # clicking the on-screen text event seeks the player to its start; the cursor and the box follow
    browser.evaluate(f"{text_item}.click()")
    browser.wait_for(
        f"Math.abs({player}.currentTime - 1.3) < 0.05 && !{player}.seeking", 15, "the seek to 1.3 s"
    )
    browser.wait_for("document.querySelectorAll('#overlay .box.text').length === 1", 10, "the text box drawn")
    assert browser.evaluate("document.querySelector('#overlay .box.text').innerText") == "STEP 3 97%"
    cursor = browser.evaluate("parseFloat(document.getElementById('cursor').style.left)")
    assert cursor == pytest.approx(1.3 / 3.0 * 100, abs=1)
    ARTIFACTS.mkdir(exist_ok=True)
    browser.screenshot(ARTIFACTS / "player-seek.png")

    # search a spoken word across the ten videos; the one hit opens its video at the moment
    browser.evaluate(f"document.getElementById('search-q').value = '{SPOKEN}'")
    browser.evaluate("document.getElementById('search-kind').value = 'word'")
    browser.evaluate("document.getElementById('search-form').requestSubmit()")
    browser.wait_for(
        "document.querySelectorAll('#search-results li[data-video-id]').length > 0", 15, "results"
    )
    hits = browser.evaluate(
        "[...document.querySelectorAll('#search-results li[data-video-id]')].map(l => [l.dataset.videoId, +l.dataset.start])"
    )
    assert hits == [["clip-6", 1.6]]
    browser.evaluate("document.querySelector('#search-results li a').click()")
    browser.wait_for(
        f"document.getElementById('detail').dataset.videoId === 'clip-6' && {player}?.dataset.videoId === 'clip-6'"
        f" && {player}.readyState >= 1 && Math.abs({player}.currentTime - 1.6) < 0.05",
        30,
        "clip-6 opened at 1.6 s",
    )
    browser.screenshot(ARTIFACTS / "search-moment.png")
    assert browser.exceptions() == []
    assert browser.console_errors() == []


def test_api_docs_render_offline(library: str, browser: Chromium) -> None:
    """Swagger UI and ReDoc draw the API from local assets (the browser has no route to a CDN here)."""
    browser.send("Page.navigate", {"url": f"{library}/docs"}, page=True)
    browser.wait_for(
        "document.querySelectorAll('.swagger-ui .opblock').length > 10", 30, "Swagger UI operations"
    )
    assert browser.evaluate("!!document.querySelector('.swagger-ui .btn.authorize')")  # the bearer scheme
    browser.screenshot(ARTIFACTS / "docs.png")
    browser.send("Page.navigate", {"url": f"{library}/redoc"}, page=True)
    browser.wait_for("document.body?.innerText.includes('/search') ?? false", 30, "ReDoc operations")
    assert browser.exceptions() == [] and browser.console_errors() == []
