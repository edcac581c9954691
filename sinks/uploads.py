"""The edges of the API's request bodies: size limits, the submit body's schema, multipart uploads
streamed to disk (with stall timeouts and a full disk reported as such), and the state directory's
fitness for writes that /health reports.
"""

from __future__ import annotations

import asyncio
import errno
import json
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from pydantic import BaseModel, Field, field_validator
from python_multipart.multipart import MultipartParser, parse_options_header
from reelscope.infra.core.ingest import path_refused
from reelscope.infra.core.settings import Settings
from reelscope.schemas.events import VIDEO_ID_PATTERN, video_id_slug

FORM_OVERHEAD = 1 << 20
"""Multipart framing and small fields allowed on top of max_upload_bytes before the body is refused."""
MAX_FIELDS_BYTES = 64 * 1024
"""Metadata and options of one video, as JSON, at most (uploads and POST /videos alike)."""
MAX_JSON_BODY = 1 << 20
"""Bodies of every endpoint but uploads are refused (413) past this, before they are parsed."""
MAX_LIST = 1000
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def check_fields(value: dict[str, Any]) -> dict[str, Any]:
    """Metadata or options that fit the budget and travel as JSON (refused with a reason otherwise)."""
    try:
        size = len(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not plain JSON: {exc}") from None
    if size > MAX_FIELDS_BYTES:
        raise ValueError(f"{size} bytes as JSON; at most {MAX_FIELDS_BYTES} are accepted")
    return value


class SubmitRequest(BaseModel):
    uri: str = Field(min_length=1, max_length=4096)
    video_id: str | None = Field(None, pattern=VIDEO_ID_PATTERN)
    """Letters, digits, `.`, `_` and `-`, at most 128, not starting with `.` or `-`."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)

    _fields_fit = field_validator("metadata", "options")(check_fields)


class BodyLimit:
    """ASGI middleware: a request body past `limit` bytes (declared or streamed) gets 413, unparsed.

    Uploads stream to disk under their own limit and are left alone."""

    def __init__(self, app: Any, limit: int, exempt: str) -> None:
        self.app, self.limit, self.exempt = app, limit, exempt

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] == self.exempt:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        seen = 0

        async def counted() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(status_code=413, detail=f"request body larger than {self.limit} bytes")
            return message

        await self.app(scope, counted, send)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps({"detail": f"request body larger than {self.limit} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def stored_name(filename: str) -> tuple[str, str]:
    """(video id, stored file name) for an upload: the client's name only contributes a sanitised stem
    to the id and a short alphanumeric extension; it never becomes a path component."""
    base = re.split(r"[\\/]", filename)[-1]
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    ext = f".{ext.lower()}" if re.fullmatch(r"[A-Za-z0-9]{1,8}", ext) else ""
    slug = video_id_slug(stem, "upload")
    token = uuid.uuid4().hex
    return f"{slug}-{token[:10]}", f"{token}{ext}"


def display_name(filename: str) -> str:
    """The client's file name as plain text for metadata (no directories, no control characters)."""
    base = re.split(r"[\\/]", filename)[-1]
    return re.sub(r"[\x00-\x1f\x7f]", "", base)[:200]


class UploadTooLarge(Exception):
    """The upload went past max_upload_bytes."""


class UploadReceiver:
    """Streams one multipart body: the `file` part to disk (counting bytes as they arrive), the small
    `metadata` / `options` fields to memory. Nothing is buffered whole."""

    def __init__(self, boundary: bytes, target: Path, limit: int, read_timeout_s: float = 30.0) -> None:
        self.target = target
        self.limit = limit
        self.read_timeout_s = read_timeout_s
        self.filename: str | None = None
        self.size = 0
        self.fields: dict[str, bytearray] = {}
        self._out: Any = None
        self._headers: dict[str, bytes] = {}
        self._field = b""
        self._value = b""
        self._part: str | None = None
        self._fields_bytes = 0
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    def _part_begin(self) -> None:
        self._headers, self._field, self._value, self._part = {}, b"", b"", None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        # raw bytes: a UTF-8 file name is not latin-1 text, and parse_options_header takes either
        self._headers[self._field.decode("latin-1").lower()] = self._value
        self._field, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get("content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        if name == "file" and self._out is None and self.filename is None:
            # an empty or absent file name is still the file (named "upload"), not a form field
            self.filename = params.get(b"filename", b"").decode("utf-8", "replace")
            self._out = self.target.open("wb")
            self._part = "file"
        elif name in ("metadata", "options"):
            self._part = name
            self.fields[name] = bytearray()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part == "file":
            self.size += end - start
            if self.size > self.limit:
                raise UploadTooLarge
            self._out.write(data[start:end])
        else:  # every other part, kept or not, counts against the small field budget
            self._fields_bytes += end - start
            if self._fields_bytes > MAX_FIELDS_BYTES:
                raise HTTPException(status_code=413, detail="form fields too large")
            if self._part is not None:
                self.fields[self._part] += data[start:end]

    def _part_end(self) -> None:
        if self._part == "file":
            self._out.close()
        self._part = None

    async def receive(self, request: Request) -> None:
        """Parse the whole body; a client that sends nothing for read_timeout_s gets 408."""
        chunks = request.stream().__aiter__()
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(anext(chunks), self.read_timeout_s)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise HTTPException(
                        status_code=408, detail=f"upload stalled: no data for {self.read_timeout_s:.0f} s"
                    ) from None
                self.parser.write(chunk)
            self.parser.finalize()
        finally:
            if self._out is not None and not self._out.closed:
                self._out.close()

    def json_field(self, name: str) -> dict[str, Any]:
        raw = bytes(self.fields.get(name, b"")).strip()
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=f"{name} is not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise HTTPException(status_code=422, detail=f"{name} must be a JSON object")
        return value


def storage_problem(settings: Settings) -> str | None:
    """Why the state directory (or the uploads under it, which may be another mount) cannot take writes
    now: too little free space, or a write fails."""
    for directory in (settings.state_dir, settings.state_dir / "uploads"):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(directory).free
            if free < settings.min_free_bytes:
                return (
                    f"the server's disk is nearly full: {free} bytes free in {directory.name}, "
                    f"{settings.min_free_bytes} needed"
                )
            probe = directory / ".write-probe"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            return f"{directory.name} takes no writes: {exc.strerror or exc}"
    return None


@dataclass
class Upload:
    """A received upload, stored under its generated name, with its form fields."""

    path: Path
    video_id: str
    metadata: dict[str, Any]
    options: dict[str, Any]


async def receive_upload(request: Request, settings: Settings) -> Upload:
    """Stream a multipart upload to state_dir/uploads under a generated name: 413 past
    max_upload_bytes, 408 when it stalls, 507 when the disk is full; nothing is left behind on failure."""
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data" or not params.get(b"boundary"):
        raise HTTPException(status_code=415, detail="send multipart/form-data with a `file` part")
    limit = settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + FORM_OVERHEAD:
        raise HTTPException(status_code=413, detail=f"upload larger than {limit} bytes")
    directory = (settings.state_dir / "uploads").resolve()
    refused = path_refused(directory, settings)  # the producer would refuse these files
    if refused:
        raise HTTPException(status_code=503, detail=f"uploads are disabled: {refused}")
    full = storage_problem(settings)
    if full:
        raise HTTPException(status_code=507, detail=full)
    partial = directory / f"{uuid.uuid4().hex}.part"
    receiver = UploadReceiver(params[b"boundary"], partial, limit, settings.upload_read_timeout_s)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        await receiver.receive(request)
        if receiver.filename is None:
            raise HTTPException(status_code=422, detail="no `file` part in the form")
        if receiver.size == 0:
            raise HTTPException(status_code=422, detail="the uploaded file is empty")
        metadata = receiver.json_field("metadata")
        options = receiver.json_field("options")
        video_id, name = stored_name(receiver.filename)
        path = partial.rename(directory / name)
    except UploadTooLarge:
        partial.unlink(missing_ok=True)
        raise HTTPException(status_code=413, detail=f"upload larger than {limit} bytes") from None
    except OSError as exc:
        partial.unlink(missing_ok=True)
        if exc.errno in DISK_FULL:
            raise HTTPException(
                status_code=507, detail=f"the server's disk is full: {exc.strerror}"
            ) from None
        raise
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    metadata.setdefault("filename", display_name(receiver.filename))
    return Upload(path, video_id, metadata, options)
