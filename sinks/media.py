"""The media files behind videos: checked when submitted, served to the player, removed when old.

A submitted URI is checked before it is queued (the URI policy, that the file is there, that it opens as
media), so a mistake gets a 4xx with a reason at once instead of a failed video later. The player gets
the file back only when it is one the policy allows the producer to read (an upload, or a file under the
allowed roots): the stored URI is never taken as a path on trust.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import av
from fastapi import HTTPException
from reelscope.infra.core.ingest import UriRejected, resolve_uri
from reelscope.infra.core.settings import Settings

log = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 10.0


def uploads_dir(settings: Settings) -> Path:
    return (settings.state_dir / "uploads").resolve()


def probe_problem(path: Path) -> str | None:
    """Why `path` is not media the producer could decode (no container, or no audio or video stream)."""
    try:
        with av.open(str(path), timeout=PROBE_TIMEOUT_S) as container:
            if not (container.streams.video or container.streams.audio):
                return f"{path.name} has no audio or video stream"
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        return f"{path.name} is not a media file the server can read ({type(exc).__name__}: {exc})"
    return None


def checked_path(uri: str, settings: Settings) -> Path:
    """The local file an ingest URI names, once the URI policy allows it and it probes as media; 4xx with
    the reason otherwise (403 refused by policy, 422 not there or not media)."""
    try:
        path = Path(resolve_uri(uri, settings))
    except UriRejected as exc:
        reason = str(exc)
        status = 422 if reason.startswith(("file not found", "not a regular file")) else 403
        raise HTTPException(status_code=status, detail=reason) from None
    problem = probe_problem(path)
    if problem:
        raise HTTPException(status_code=422, detail=problem)
    return path


def playable_path(uri: str, settings: Settings) -> Path | None:
    """The file to play for a stored URI, or None when the policy does not allow it or it is gone."""
    try:
        return Path(resolve_uri(uri, settings))
    except (UriRejected, OSError, ValueError):
        return None


def stored_upload(uri: str, settings: Settings) -> Path | None:
    """The uploaded file a URI names, when it is one of ours (directly in the uploads directory)."""
    path = playable_path(uri, settings)
    return path if path is not None and path.parent == uploads_dir(settings) else None


def sweep_uploads(settings: Settings, now: float | None = None) -> list[Path]:
    """Remove uploads older than upload_retention_h (partial uploads included); returns what went."""
    if settings.upload_retention_h <= 0:
        return []
    cutoff = (now or time.time()) - settings.upload_retention_h * 3600
    removed = []
    directory = uploads_dir(settings)
    for path in directory.iterdir() if directory.is_dir() else []:
        try:
            if path.is_file() and not path.name.startswith(".") and path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except OSError as exc:  # removed meanwhile, or not ours to remove: the next sweep retries
            log.warning("cannot remove old upload %s: %s", path.name, exc)
    if removed:
        log.info("removed %d uploads older than %.0f h", len(removed), settings.upload_retention_h)
    return removed
