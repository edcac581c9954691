"""`reelscope models`: every analyzer's models (source, licence, size, present, run by default), and `pull`,
which fetches hub weights into `<state_dir>/weights` for users with internet, checked against the catalog.

Analyzers never download anything at run time; `pull` is the one explicit, user-started download. A file
is written as `<name>.part` and renamed only once its size and sha256 match the catalog, so a failed or
corrupted download leaves nothing an analyzer could load. Where the catalog has no sha256 (hub files whose
digest could not be read offline), the one the hub declares is the check: Hugging Face states each weights
file's sha256 and size in the `X-Linked-Etag` and `X-Linked-Size` headers of its `resolve` redirect.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.request
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter
from reelscope.analyzers.registry import all_analyzers, enabled_analyzers
from reelscope.infra.core.settings import Settings
from rich.console import Console
from rich.progress import DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table


class PullFile(BaseModel):
    name: str
    """Path under the entry's base URL, and the file's name on disk."""
    size: int | None = None
    sha256: str | None = None
    """None: not known offline; the download is then checked against the sha256 and size the hub declares
    (else its Content-Length), and the digest computed is printed, to be recorded here."""


class PullEntry(BaseModel):
    """A pullable model: its files under one base URL, where they go, and the setting that selects them."""

    base_url: str
    files: list[PullFile]
    folder: str = ""
    """Empty: a single file straight into the weights directory; else a directory of that name."""
    setting: str
    """The environment variable that points the analyzer at the pulled weights."""
    licence: str


YOLO_RELEASE = "https://github.com/ultralytics/assets/releases/download/v8.3.0/"
CATALOG: dict[str, PullEntry] = {
    "yolo11n": PullEntry(
        base_url=YOLO_RELEASE,
        # The v8.3.0 release asset's digest, as recorded by many independent projects that pin it.
        files=[
            PullFile(
                name="yolo11n.pt",
                size=5_613_764,
                sha256="0ebbc80d4a7680d14987a577cd21342b65ecfd94632bd9a8da63ae6417644ee1",
            )
        ],
        setting="REELSCOPE_OBJECTS__MODEL",
        licence="AGPL-3.0 (Ultralytics)",
    ),
    "yolo11n-pose": PullEntry(
        base_url=YOLO_RELEASE,
        files=[PullFile(name="yolo11n-pose.pt")],  # digest not known offline; GitHub declares none: printed
        setting="REELSCOPE_POSE__MODEL",
        licence="AGPL-3.0 (Ultralytics)",
    ),
    "whisper-large-v3-turbo": PullEntry(
        base_url="https://huggingface.co/mobiuslabsgmbh/faster-whisper-large-v3-turbo/resolve/main/",
        files=[
            PullFile(name=n)  # CTranslate2 conversion; checked against the sha256 the hub declares
            for n in (
                "config.json",
                "model.bin",
                "preprocessor_config.json",
                "tokenizer.json",
                "vocabulary.json",
            )
        ],
        folder="faster-whisper-large-v3-turbo",
        setting="REELSCOPE_TRANSCRIPTION__MODEL",
        licence="MIT",
    ),
    "qwen2-vl-2b-instruct": PullEntry(
        base_url="https://huggingface.co/Qwen/Qwen2-VL-2B-Instruct/resolve/main/",
        files=[
            PullFile(name=n)  # checked against the sha256 the hub declares
            for n in (
                "config.json",
                "generation_config.json",
                "chat_template.json",
                "preprocessor_config.json",
                "tokenizer.json",
                "tokenizer_config.json",
                "vocab.json",
                "merges.txt",
                "model.safetensors.index.json",
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors",
            )
        ],
        folder="Qwen2-VL-2B-Instruct",
        setting="REELSCOPE_CAPTIONS__MODEL",
        licence="Apache-2.0",
    ),
}


class PullError(RuntimeError):
    """A download failed or did not match the catalog; nothing was left in the weights directory."""


def catalog(settings: Settings) -> dict[str, PullEntry]:
    """The built-in catalog plus the entries of `settings.models_catalog`."""
    extra: dict[str, PullEntry] = {}
    if settings.models_catalog:
        text = settings.models_catalog.read_text()
        extra = TypeAdapter(dict[str, PullEntry]).validate_python(json.loads(text))
    return {**CATALOG, **extra}


def model_rows(settings: Settings) -> list[dict[str, Any]]:
    """One row per model of every registered analyzer; `default` when its analyzer runs by default here."""
    enabled = enabled_analyzers(settings.analyzers, settings)
    runtime = settings.analyzer_runtime()
    rows = []
    for name, cls in sorted(all_analyzers().items()):
        for info in cls.models(settings.options_for(cls), runtime):
            rows.append({"analyzer": name, **asdict(replace(info, default=info.default and name in enabled))})
    return rows


def print_models(settings: Settings, as_json: bool) -> None:
    rows = model_rows(settings)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("analyzer", "model", "source", "licence", "size", "present", "default")
    for r in rows:
        size = f"{r['size_bytes'] / 1e6:.1f} MB" if r["size_bytes"] is not None else ""
        source = f"{r['source']} {r['location']}".strip()
        present = "yes" if r["present"] else "missing"
        table.add_row(
            r["analyzer"],
            r["name"],
            source,
            r["licence"] or "?",
            size,
            present,
            "yes" if r["default"] else "",
        )
    Console().print(table)
    print("pullable (reelscope models pull NAME):", ", ".join(sorted(catalog(settings))))


def pull(settings: Settings, name: str, base_url: str = "") -> Path:
    """Download catalog entry `name` into `<state_dir>/weights`; returns the file or directory to configure."""
    entries = catalog(settings)
    if name not in entries:
        raise PullError(f"unknown model {name!r}; pullable: {', '.join(sorted(entries))}")
    entry = entries[name]
    base = (base_url or settings.models_base_url or entry.base_url).rstrip("/") + "/"
    weights = settings.state_dir / "weights"
    target = weights / entry.folder if entry.folder else weights
    target.mkdir(parents=True, exist_ok=True)
    for file in entry.files:
        digest, declared = _download(base + file.name, target / file.name, file)
        if file.sha256 is None:
            checked = "matches the sha256 the server declared" if declared else "no sha256 to check against"
            print(f"{file.name}: sha256 {digest} ({checked}; not in the catalog: record it there)")
    return target if entry.folder else target / entry.files[0].name


_SHA256 = re.compile(r"[0-9a-f]{64}")


class _Declared(urllib.request.HTTPRedirectHandler):
    """What the server declares of the file on the way to it: Hugging Face puts the weights' sha256 and
    size on its `resolve` redirect (`X-Linked-Etag`, `X-Linked-Size`), not on the storage's response."""

    def __init__(self) -> None:
        self.sha256: str | None = None
        self.size: int | None = None

    def note(self, headers: Any) -> None:
        etag = (headers.get("X-Linked-Etag") or "").removeprefix("W/").strip('"').lower()
        if _SHA256.fullmatch(etag):
            self.sha256 = etag
        size = headers.get("X-Linked-Size") or ""
        if size.isdigit():
            self.size = int(size)

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        self.note(headers)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _download(url: str, dest: Path, expected: PullFile) -> tuple[str, bool]:
    """Stream `url` to `dest` with a progress bar; the file appears only when size and checksum match the
    catalog's, else what the server declared. Returns the sha256 and whether a declared one was checked."""
    part = dest.with_name(dest.name + ".part")
    sha = hashlib.sha256()
    declared = _Declared()
    try:
        with urllib.request.build_opener(declared).open(url, timeout=60) as response, part.open("wb") as out:
            declared.note(response.headers)
            length = int(response.headers.get("Content-Length") or 0) or None
            want_size = expected.size or declared.size or length
            columns = (*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn())
            with Progress(*columns) as progress:
                task = progress.add_task(dest.name, total=want_size)
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    sha.update(chunk)
                    progress.advance(task, len(chunk))
        size = part.stat().st_size
        if want_size not in (None, size):
            raise PullError(f"{url}: got {size} bytes, expected {want_size}")
        if expected.sha256 is not None and sha.hexdigest() != expected.sha256.lower():
            raise PullError(f"{url}: sha256 {sha.hexdigest()} does not match the catalog's {expected.sha256}")
        if expected.sha256 is None and declared.sha256 not in (None, sha.hexdigest()):
            raise PullError(
                f"{url}: sha256 {sha.hexdigest()} does not match the {declared.sha256} the server declared"
            )
    except (OSError, PullError) as failed:
        part.unlink(missing_ok=True)
        if isinstance(failed, PullError):
            raise
        raise PullError(f"{url}: {failed}") from failed
    part.replace(dest)
    return sha.hexdigest(), expected.sha256 is None and declared.sha256 is not None
