"""Talking to a running stack from outside: push videos to the ingest topic, read status and results.

Used by the CLI and the benchmark tools alike (the HTTP API is the store's owner in embedded mode).
"""

from __future__ import annotations

import asyncio
import urllib.error
from typing import Any

from reelscope.infra.core.settings import Settings


def api_token(settings: Settings) -> str | None:
    return settings.api_token.get_secret_value() if settings.api_token else None


def fetch(settings: Settings, path: str) -> Any:
    """GET from the running stack's API (the store's owner in embedded mode); None on 404."""
    from reelscope.infra.stack import api_url, http_json

    try:
        return http_json(f"{api_url(settings)}{path}", timeout=10, token=api_token(settings))
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


class NothingStored(LookupError):
    """No stack answers and the store holds no database yet (a fresh state dir): there is nothing to read."""


def read_store(settings: Settings, what: str, video_id: str) -> Any:
    """Status or reconstruction: through the API when the stack runs, else straight from the store."""
    try:
        if what == "status":
            return fetch(settings, f"/videos/{video_id}")
        return fetch(settings, f"/videos/{video_id}/reconstruction")
    except urllib.error.URLError:
        from reelscope.infra.stack import api_url
        from reelscope.sinks.store import Store

        store = Store(settings)
        try:
            if not store.scalar("SELECT count() FROM system.databases WHERE name = %(d)s", d=store.db):
                raise NothingStored(
                    f"no stack answers at {api_url(settings)} and {settings.state_dir} holds no results yet; "
                    "run `reelscope up` or `reelscope analyze`"
                )
            return store.video(video_id) if what == "status" else store.reconstruction(video_id)
        finally:
            store.close()


async def push_paths(
    settings: Settings, paths: list[str], metadata: dict[str, Any], options: dict[str, Any] | None = None
) -> list[str]:
    from reelscope.infra.core.ingest import push, request_for_path
    from reelscope.infra.core.kafka import make_producer, start_with_backoff
    from reelscope.infra.stack import running
    from reelscope.sinks.recovery import Journal

    # a serve process running from this state dir re-ingests what its journal holds if the broker loses it
    journal = Journal(settings) if "serve" in running(settings) else None
    producer = make_producer(settings)
    if not await start_with_backoff(producer, "push", asyncio.Event()):
        raise RuntimeError("broker unreachable")
    try:
        ids = []
        for path in paths:
            request = request_for_path(path, metadata=metadata, options=options or {})
            await push(producer, settings, request)
            if journal is not None:
                await asyncio.to_thread(journal.submitted, request)
            ids.append(request.video_id)
        return ids
    finally:
        await producer.stop()
