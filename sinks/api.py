"""HTTP API (FastAPI) served by the process that owns the store: submit videos, read status and results.

In embedded mode only this process may open the chdb database, so every other reader (the CLI, the
dashboard) reads through here.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from infra.settings import Settings
from producers.publisher import make_request, push
from sinks.store import Store


class SubmitRequest(BaseModel):
    uri: str = Field(min_length=1)
    video_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)


def progress(video: dict[str, Any], counts: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """Per-analyzer progress: results received against results expected (known once published)."""
    expected: dict[str, int] = json.loads(video.get("expected") or "{}")
    names = sorted(set(expected) | set(counts))
    return {
        name: {
            "received": counts.get(name, (0, 0))[0],
            "errors": counts.get(name, (0, 0))[1],
            "expected": expected.get(name),
        }
        for name in names
    }


def create_app(settings: Settings, store: Store, services: Any = None) -> FastAPI:
    """The API app; `services` (the serve process) provides readiness and the Kafka producer."""
    app = FastAPI(title="reelscope", version="0.1.0")

    def authorize(request: Request) -> None:
        if settings.api_token is None:
            return
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ").strip()
        if not secrets.compare_digest(token, settings.api_token.get_secret_value()):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token")

    auth = [Depends(authorize)]

    @app.get("/health")
    async def health() -> dict[str, Any]:
        ready = bool(services and services.ready())
        return {"status": "ok" if ready else "starting", "ready": ready}

    @app.post("/videos", dependencies=auth, status_code=202)
    async def submit(body: SubmitRequest) -> dict[str, str]:
        if services is None or services.producer is None:
            raise HTTPException(status_code=503, detail="not connected to the broker yet")
        request = make_request(body.uri, body.video_id, body.metadata, body.options)
        await push(services.producer, settings, request)
        return {"video_id": request.video_id, "status": "submitted"}

    @app.get("/videos", dependencies=auth)
    async def videos(limit: int = 100, status: str | None = None) -> list[dict[str, Any]]:
        return await store.call(store.videos, limit, status)

    @app.get("/videos/{video_id}", dependencies=auth)
    async def video(video_id: str) -> dict[str, Any]:
        row = await store.call(store.video, video_id)
        if row is None:
            raise HTTPException(status_code=404, detail=f"unknown video {video_id}")
        counts = await store.call(store.result_counts, video_id)
        row["progress"] = progress(row, counts)
        row["metadata"] = json.loads(row["metadata"] or "{}")
        row["expected"] = json.loads(row["expected"] or "{}")
        return row

    @app.get("/videos/{video_id}/reconstruction", dependencies=auth)
    async def reconstruction(video_id: str) -> JSONResponse:
        doc = await store.call(store.reconstruction, video_id)
        if doc is None:
            raise HTTPException(status_code=404, detail=f"no reconstruction yet for {video_id}")
        return JSONResponse(doc)

    @app.get("/videos/{video_id}/segments", dependencies=auth)
    async def segments(video_id: str) -> list[dict[str, Any]]:
        return await store.call(store.segments, video_id)

    return app
