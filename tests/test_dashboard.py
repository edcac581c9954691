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
        for domain in ("Page", "Runtime"):
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
