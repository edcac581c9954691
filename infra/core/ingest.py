"""Asking for a video to be analyzed, written once for every service that does: the ingest request for a
path or URI, the URI policy (which schemes and roots may be read), and putting the request on the ingest
topic. The CLI, the HTTP API and the producer all use it; the producer applies the policy again when it
opens the file, since a request may come from anywhere that can write to the topic.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from aiokafka import AIOKafkaProducer
from reelscope.infra.core.kafka import send_all
from reelscope.infra.core.settings import Settings
from reelscope.schemas.events import IngestRequest, video_id_slug


class UriRejected(ValueError):
    """The ingest URI is not allowed by settings or does not exist."""


def path_refused(path: Path, settings: Settings, scheme: str = "file") -> str | None:
    """Why the URI policy refuses to read `path` (resolved) through `scheme`, or None when it allows it."""
    if scheme not in settings.producer.allowed_schemes:
        return f"URI scheme {scheme!r} is not allowed (allowed: {settings.producer.allowed_schemes})"
    if scheme != "file":
        return f"URI scheme {scheme!r} is not supported yet"
    roots = [Path(r).expanduser().resolve() for r in settings.producer.allowed_roots]
    if not any(path == root or root in path.parents for root in roots):
        return f"{path} is outside the allowed roots"
    return None


def resolve_uri(uri: str, settings: Settings) -> str:
    """Local path for an ingest URI, refusing what the policy does not allow and files that are not there."""
    parsed = urlparse(uri)
    scheme = parsed.scheme or "file"
    if len(scheme) == 1:  # a Windows drive letter, not a scheme
        scheme = "file"
    path = Path(unquote(parsed.path) if parsed.scheme else uri).expanduser().resolve()
    refused = path_refused(path, settings, scheme)
    if refused:
        raise UriRejected(refused)
    if not path.exists():
        raise UriRejected(f"file not found: {path}")
    if not path.is_file():
        raise UriRejected(f"not a regular file: {path}")
    return str(path)


def new_video_id(uri: str) -> str:
    """A fresh id from a path or file URI: its file name's slug (VIDEO_ID_PATTERN) and a random suffix."""
    name = Path(unquote(urlparse(uri).path) if "://" in uri else uri).stem
    return f"{video_id_slug(name)}-{uuid.uuid4().hex[:10]}"


def make_request(
    uri: str,
    video_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
) -> IngestRequest:
    return IngestRequest(
        video_id=video_id or new_video_id(uri),
        uri=uri,
        metadata=metadata or {},
        options=options or {},
        submitted_at=time.time(),
    )


def request_for_path(
    path: str,
    video_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
) -> IngestRequest:
    """An ingest request for a local file (the CLI's path); the URI is the absolute file URI."""
    return make_request(Path(path).resolve().as_uri(), video_id, metadata, options)


async def push(producer: AIOKafkaProducer, settings: Settings, request: IngestRequest) -> None:
    """Put an ingest request on the ingest topic."""
    await send_all(producer, [(settings.topics.ingest, request)])
