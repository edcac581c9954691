"""HTTP API (FastAPI) served by the process that owns the store: submit videos, read status and results.

In embedded mode only this process may open the chdb database, so every other reader (the CLI, the
dashboard) reads through here. Besides the JSON endpoints it serves uploads (streamed to disk with the size
limit enforced as bytes arrive), exports (WebVTT, Markdown, JSON download), live progress as server-sent
events from one shared store poller, throughput stats, and the dashboard's static files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from reelscope.analyzers.registry import enabled_analyzers
from reelscope.infra.core.ingest import make_request, push
from reelscope.infra.core.settings import Settings
from reelscope.schemas.records import TERMINAL
from reelscope.sinks import exports
from reelscope.sinks.reconstruction import build as build_reconstruction
from reelscope.sinks.store import Store, now
from reelscope.sinks.uploads import (
    MAX_JSON_BODY,
    MAX_LIST,
    BodyLimit,
    SubmitRequest,
    receive_upload,
    storage_problem,
)

log = logging.getLogger(__name__)

DASHBOARD = Path(__file__).with_name("dashboard")
STREAM_INTERVAL_S = 0.5
KEEPALIVE_S = 10.0
RECENT_S = 300.0
"""Live streams also watch videos that changed this recently, so they see them finish."""
THROUGHPUT_WINDOW_S = 600
LIVE_REBUILD_S = 2.0
LAG_MEANING = (
    "events this server's producer published on the frame and audio topics that each processor group has "
    "not committed yet (from acknowledged and committed offsets; the broker's end offsets are not used, since "
    "the embedded broker reports them wrongly)"
)


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


def video_state(row: dict[str, Any], counts: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """What live streams send about one video: its status and per-analyzer progress."""
    per = progress(row, counts)
    expected = sum(p["expected"] or 0 for p in per.values())
    received = sum(min(p["received"], p["expected"] or 0) for p in per.values())
    return {
        "video_id": row["video_id"],
        "uri": row.get("uri", ""),
        "status": row["status"],
        "error": row.get("error") or None,
        "progress": per,
        "done": round(received / expected, 4) if expected else None,
    }


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class ProgressHub:
    """One store poller shared by every live stream: N open dashboards cost one query pair per tick, and
    the store's single thread (which the aggregator writes through) is not flooded. Polls only while
    someone listens."""

    def __init__(self, store: Store, interval_s: float = STREAM_INTERVAL_S) -> None:
        self.store = store
        self.interval_s = interval_s
        self.videos: dict[str, dict[str, Any]] = {}
        self.version = 0
        self._changed = asyncio.Condition()
        self._subscribers = 0
        self._task: asyncio.Task[None] | None = None

    def _poll(self) -> dict[str, dict[str, Any]]:
        rows = self.store.live_videos(now() - timedelta(seconds=RECENT_S))
        counts = self.store.result_counts_many([r["video_id"] for r in rows])
        return {r["video_id"]: video_state(r, counts.get(r["video_id"], {})) for r in rows}

    async def _run(self) -> None:
        while self._subscribers:
            try:
                videos = await self.store.call(self._poll)
            except Exception as exc:  # the store is briefly unavailable: keep streams open, poll again
                log.warning("live progress poll failed: %r", exc)
            else:
                if videos != self.videos or self.version == 0:
                    async with self._changed:
                        self.videos = videos
                        self.version += 1
                        self._changed.notify_all()
            await asyncio.sleep(self.interval_s)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[int]:
        """Yields the version a new listener has seen: the current snapshot is fresh when the poller is
        already running, else the listener waits for the first poll."""
        self._subscribers += 1
        seen = self.version - 1
        if self._task is None or self._task.done():
            self.version = 0
            seen = 0
            self._task = asyncio.create_task(self._run(), name="progress-hub")
        try:
            yield seen
        finally:
            self._subscribers -= 1

    async def wait(self, seen: int, timeout_s: float) -> int:
        """The snapshot version once it is newer than `seen`, or `seen` after timeout_s."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(lambda: self.version > seen), timeout_s)
            return self.version


def attachment(video_id: str, suffix: str) -> dict[str, str]:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", video_id) or "video"
    return {"Content-Disposition": f'attachment; filename="{safe}{suffix}"'}


async def lag_fields(services: Any) -> dict[str, Any]:
    """Consumer lag as the producer measures it (see producers/backpressure.py), or why there is none."""
    watcher = getattr(getattr(services, "ingest", None), "lag", None)
    if watcher is None or not watcher.produced:
        return {
            "consumer_lag": None,
            "consumer_lag_by_group": {},
            "consumer_lag_reason": "not measured yet: this server has not published a video",
        }
    lag = await watcher.lag()
    return {
        "consumer_lag": sum(lag.values()),
        "consumer_lag_by_group": lag,
        "consumer_lag_reason": LAG_MEANING,
    }


def create_app(settings: Settings, store: Store, services: Any = None) -> FastAPI:
    """The API app; `services` (the serve process) provides readiness and the Kafka producer."""
    app = FastAPI(title="reelscope", version="0.1.0")
    app.add_middleware(BodyLimit, limit=MAX_JSON_BODY, exempt="/videos/upload")

    def token_ok(given: str) -> bool:
        assert settings.api_token is not None
        # bytes: compare_digest refuses non-ASCII str, and a header may carry any latin-1 text
        return secrets.compare_digest(given.encode(), settings.api_token.get_secret_value().encode())

    def bearer(request: Request) -> str:
        return request.headers.get("authorization", "").removeprefix("Bearer ").strip()

    def authorize(request: Request) -> None:
        if settings.api_token is not None and not token_ok(bearer(request)):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token")

    auth = [Depends(authorize)]

    def authorize_stream(request: Request, token: str | None = Query(None)) -> None:
        """EventSource cannot send headers, so live streams (only they) also take `?token=`."""
        if settings.api_token is not None and not token_ok(token or bearer(request)):
            raise HTTPException(status_code=401, detail="missing or wrong token")

    stream_auth = [Depends(authorize_stream)]
    hub = ProgressHub(store)
    enabled = services.aggregator.enabled if services is not None else enabled_analyzers(settings.analyzers)
    live_cache: dict[str, tuple[int, float, dict[str, Any]]] = {}  # video -> (results, built at, doc)

    def stopping() -> bool:
        return bool(services is not None and services.stop.is_set())

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus metrics of this process (ingest worker, aggregator, API)."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/health")
    async def health() -> JSONResponse:
        """200 and ready only when the process serves and its disk takes writes; 503 with the reason
        otherwise, so a load balancer stops sending uploads to a server that cannot store them."""
        started = bool(services and services.ready())
        problem = storage_problem(settings) or (
            f"ClickHouse writes are failing: {services.aggregator.write_error}"
            if services is not None and getattr(services.aggregator, "write_error", None)
            else None
        )
        ready = started and problem is None
        body: dict[str, Any] = {"status": "ok" if ready else "starting" if not started else "degraded"}
        body["ready"] = ready
        if problem:
            body["reason"] = problem
        return JSONResponse(body, status_code=200 if ready else 503)

    async def submit_request(uri: str, video_id: str | None, metadata: dict, options: dict) -> str:
        """Build and push one ingest request; a request the schema refuses is the client's fault (422)."""
        if services is None or services.producer is None:
            raise HTTPException(status_code=503, detail="not connected to the broker yet")
        try:
            request = make_request(uri, video_id, metadata, options)
        except ValidationError as exc:
            raise HTTPException(
                status_code=422, detail=f"invalid request: {exc.errors()[0]['msg']}"
            ) from None
        await push(services.producer, settings, request)
        return request.video_id

    @app.post("/videos", dependencies=auth, status_code=202)
    async def submit(body: SubmitRequest) -> dict[str, str]:
        video_id = await submit_request(body.uri, body.video_id, body.metadata, body.options)
        return {"video_id": video_id, "status": "submitted"}

    @app.get("/videos", dependencies=auth)
    async def videos(
        limit: int = Query(100, ge=1, le=MAX_LIST), status: str | None = Query(None, max_length=32)
    ) -> list[dict[str, Any]]:
        return await store.call(store.videos, limit, status)

    @app.get("/videos/{video_id}", dependencies=auth)
    async def video(video_id: str) -> dict[str, Any]:
        row = await store.call(store.video, video_id)
        if row is None:
            raise HTTPException(status_code=404, detail=f"unknown video {video_id}")
        counts = await store.call(store.result_counts, video_id)
        row["progress"] = progress(row, counts)
        row["metadata"] = json.loads(row["metadata"] or "{}")
        row["options"] = json.loads(row["options"] or "{}")
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

    # --- uploads --------------------------------------------------------------------------------------

    @app.post("/videos/upload", dependencies=auth, status_code=202)
    async def upload(request: Request) -> dict[str, str]:
        """Multipart upload: a `file` part, optional `metadata` and `options` JSON fields. The file is
        streamed to state_dir/uploads under a generated name (413 past max_upload_bytes, nothing left
        behind) and submitted like POST /videos."""
        if services is None or services.producer is None:
            raise HTTPException(status_code=503, detail="not connected to the broker yet")
        upload = await receive_upload(request, settings)
        try:
            video_id = await submit_request(
                upload.path.as_uri(), upload.video_id, upload.metadata, upload.options
            )
        except BaseException:
            upload.path.unlink(missing_ok=True)
            raise
        return {"video_id": video_id, "status": "submitted"}

    # --- exports --------------------------------------------------------------------------------------

    async def finished_doc(video_id: str) -> dict[str, Any]:
        doc = await store.call(store.reconstruction, video_id)
        if doc is None:
            raise HTTPException(status_code=404, detail=f"no reconstruction yet for {video_id}")
        return doc

    @app.get("/videos/{video_id}/reconstruction.json", dependencies=auth)
    async def reconstruction_download(video_id: str) -> JSONResponse:
        return JSONResponse(await finished_doc(video_id), headers=attachment(video_id, ".json"))

    @app.get("/videos/{video_id}/export.vtt", dependencies=auth, response_class=PlainTextResponse)
    async def export_vtt(video_id: str) -> Response:
        """WebVTT: speech cues by speaker, on-screen text cues (`TEXT:`) at the top."""
        text = exports.to_webvtt(await finished_doc(video_id))
        return Response(text, media_type="text/vtt; charset=utf-8", headers=attachment(video_id, ".vtt"))

    @app.get("/videos/{video_id}/export.md", dependencies=auth, response_class=PlainTextResponse)
    async def export_md(video_id: str) -> Response:
        text = exports.to_markdown(await finished_doc(video_id))
        return Response(text, media_type="text/markdown; charset=utf-8", headers=attachment(video_id, ".md"))

    @app.get("/videos/{video_id}/reconstruction/live", dependencies=auth)
    async def live_reconstruction(video_id: str) -> JSONResponse:
        """The stored reconstruction once the video is finished; before that, one built now from the
        results stored so far (`provisional: true`), so a viewer fills in while the video is processed."""
        row = await store.call(store.video, video_id)
        if row is None:
            raise HTTPException(status_code=404, detail=f"unknown video {video_id}")
        if row["status"] in TERMINAL:
            live_cache.pop(video_id, None)
            doc = await store.call(store.reconstruction, video_id)
            if doc is not None:
                return JSONResponse(doc)
        counts = await store.call(store.result_counts, video_id)
        total = sum(n for n, _ in counts.values())
        cached = live_cache.get(video_id)
        # rebuilt only when results arrived, and at most every LIVE_REBUILD_S: video summaries cost CPU
        # in the process that also aggregates
        if cached is None or (cached[0] != total and time.monotonic() - cached[1] >= LIVE_REBUILD_S):
            rows = await store.call(store.results, video_id)
            doc = await asyncio.to_thread(  # no enrichment (embedding model, thumbnails): the final has it
                build_reconstruction,
                row,
                rows,
                enabled,
                settings.aggregator.segment_s,
                enrich=False,
                max_span_s=settings.producer.max_duration_s,
            )
            doc.update(status=row["status"], provisional=True)
            if len(live_cache) >= 32:
                live_cache.clear()
            live_cache[video_id] = cached = (total, time.monotonic(), doc)
        return JSONResponse(cached[2])

    # --- live progress --------------------------------------------------------------------------------

    def event_stream(body: AsyncIterator[str]) -> StreamingResponse:
        return StreamingResponse(
            body,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def snapshots(seen: int) -> AsyncIterator[int | None]:
        """Hub versions newer than `seen` as they come; None when a keepalive is due. Checks for server
        shutdown every second, so open streams never hold the shutdown up."""
        quiet = 0.0
        while not stopping():
            version = await hub.wait(seen, 1.0)
            if version != seen:
                seen, quiet = version, 0.0
                yield version
            elif (quiet := quiet + 1.0) >= KEEPALIVE_S:
                quiet = 0.0
                yield None

    async def all_events() -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        sent: dict[str, dict[str, Any]] = {}
        first = True
        async with hub.subscribe() as seen:
            async for version in snapshots(seen):
                if version is None:
                    yield ": keepalive\n\n"
                    continue
                for video_id, state in hub.videos.items():
                    before = sent.get(video_id)
                    sent[video_id] = state
                    if state == before:
                        continue
                    if state["status"] not in TERMINAL:
                        yield sse("progress", state)
                    elif not first and (before is None or before["status"] not in TERMINAL):
                        # finished while this stream watched (videos done before it opened are not news)
                        yield sse("progress", state)
                        yield sse("complete", {"video_id": video_id, "status": state["status"]})
                first = False

    async def video_events(video_id: str) -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        row = await store.call(store.video, video_id)
        if row is not None and row["status"] in TERMINAL:
            state = video_state(row, await store.call(store.result_counts, video_id))
            yield sse("progress", state)
            yield sse("complete", {"video_id": video_id, "status": state["status"]})
            return
        last: dict[str, Any] | None = None
        async with hub.subscribe() as seen:
            async for version in snapshots(seen):
                state = hub.videos.get(video_id) if version is not None else None
                if version is None:
                    yield ": keepalive\n\n"
                elif state is not None and state != last:
                    last = state
                    yield sse("progress", state)
                    if state["status"] in TERMINAL:
                        yield sse("complete", {"video_id": video_id, "status": state["status"]})
                        return

    @app.get("/events", dependencies=stream_auth, response_class=StreamingResponse)
    async def events() -> StreamingResponse:
        """Server-sent events for every video in flight: `progress` (status, per-analyzer received /
        expected) whenever it changes, polled every 0.5 s; `complete` when one finishes."""
        return event_stream(all_events())

    @app.get("/videos/{video_id}/events", dependencies=stream_auth, response_class=StreamingResponse)
    async def one_video_events(video_id: str) -> StreamingResponse:
        """Server-sent events for one video: `progress` on change, then `complete`, then the stream ends."""
        return event_stream(video_events(video_id))

    # --- stats ----------------------------------------------------------------------------------------

    @app.get("/stats", dependencies=auth)
    async def stats() -> dict[str, Any]:
        """Throughput over the last 10 minutes (from the videos table), videos in flight; consumer lag is
        not reported (see consumer_lag_reason)."""
        activity = await store.call(store.activity, THROUGHPUT_WINDOW_S)
        finished = sum(activity["per_minute"])
        return {
            "window_s": THROUGHPUT_WINDOW_S,
            "finished_in_window": finished,
            "finished_by_status": activity["by_status"],
            "throughput_per_min": round(finished / (THROUGHPUT_WINDOW_S / 60), 3),
            "per_minute": activity["per_minute"],
            "in_flight": activity["in_flight"],
            **(await lag_fields(services)),
        }

    # --- dashboard ------------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(DASHBOARD / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=DASHBOARD), name="static")
    return app
