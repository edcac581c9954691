"""HTTP API (FastAPI) served by the process that owns the store: submit videos, read status and results.

In embedded mode only this process may open the chdb database, so every other reader (the CLI, the
dashboard) reads through here. Besides the JSON endpoints it serves uploads (streamed to disk with the size
limit enforced as bytes arrive), the media itself for the player (range requests), search, exports
(WebVTT, SRT, TTML, Markdown, JSON download), live progress as server-sent events from one shared store
poller (resumable with Last-Event-ID), throughput stats, its own docs and the dashboard's static files.
Requests are checked when they arrive: a file that is missing, refused or not media gets a 4xx at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from reelscope.analyzers.registry import enabled_analyzers
from reelscope.infra.core.ingest import make_request, push
from reelscope.infra.core.kafka import send_tombstone
from reelscope.infra.core.settings import Settings
from reelscope.schemas.events import Reconstruction, VideoPart
from reelscope.schemas.reconstruction import ReconstructionDocument
from reelscope.schemas.records import IN_FLIGHT, TERMINAL
from reelscope.sinks import contracts, docs, exports, subtitles
from reelscope.sinks.live import ProgressHub, changed_ms, progress, sse, video_state
from reelscope.sinks.media import checked_path, playable_path, probe_problem, stored_upload, sweep_uploads
from reelscope.sinks.models import Deleted, Health, SegmentRow, Stats, Submitted, VideoDetail, VideoSummary
from reelscope.sinks.reconstruction import build as build_reconstruction
from reelscope.sinks.search import KINDS, Kind, SearchFilters, SearchResults, search
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
KEEPALIVE_S = 10.0
PENDING_S = 600.0
"""A submitted video is answered from memory until its first row is stored, for at most this long."""
THROUGHPUT_WINDOW_S = 600
LIVE_REBUILD_S = 2.0
LAG_MEANING = (
    "events this server's producer published on the frame and audio topics that each processor group has "
    "not committed yet (from acknowledged and committed offsets; the broker's end offsets are not used, since "
    "the embedded broker reports them wrongly)"
)


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
    app = FastAPI(title="reelscope", version="0.1.0", docs_url=None, redoc_url=None)
    docs.install(app, "/videos/upload")
    app.include_router(contracts.router(settings))
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
    hub = ProgressHub(store, written=services.aggregator.sink.written if services is not None else None)
    enabled = services.aggregator.enabled if services is not None else enabled_analyzers(settings.analyzers)
    live_cache: dict[str, tuple[int, float, dict[str, Any]]] = {}  # video -> (results, built at, doc)

    pending: dict[str, dict[str, Any]] = {}  # video -> its submitted row, until the store has one

    def stopping() -> bool:
        return bool(services is not None and services.stop.is_set())

    def pending_row(video_id: str) -> dict[str, Any] | None:
        """What was submitted but not stored yet (the producer has not opened it): status `submitted`."""
        for vid in [v for v, r in pending.items() if time.time() - r["_at"] > PENDING_S]:
            pending.pop(vid, None)
        row = pending.get(video_id)
        return {k: v for k, v in row.items() if k != "_at"} if row else None

    async def known_row(video_id: str) -> dict[str, Any]:
        """The video's stored row, else its submitted row; 404 for an id never seen."""
        row = await store.call(store.video, video_id)
        if row is not None:
            pending.pop(video_id, None)
            return row
        row = pending_row(video_id)
        if row is None:
            raise HTTPException(status_code=404, detail=f"unknown video {video_id}")
        return row

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus metrics of this process (ingest worker, aggregator, API)."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/health", response_model=Health, responses={503: {"model": Health}})
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
        if journal := getattr(services, "journal", None):  # re-ingested from it if the broker loses it
            await asyncio.to_thread(journal.submitted, request)
        stamp = now()
        pending[request.video_id] = {
            "video_id": request.video_id,
            "uri": uri,
            "status": "submitted",
            "error": "",
            "duration_s": 0.0,
            "metadata": json.dumps(request.metadata),
            "options": json.dumps(request.options),
            "expected": "{}",
            "submitted_at": stamp,
            "completed_at": None,
            "updated_at": stamp,
            "_at": time.time(),
        }
        return request.video_id

    refusals: dict[int | str, dict[str, Any]] = {
        403: {"description": "the URI policy refuses the file (scheme or allowed roots)"},
        422: {"description": "the file is missing, not a file, or not media the server can decode"},
    }

    @app.post("/videos", dependencies=auth, status_code=202, response_model=Submitted, responses=refusals)
    async def submit(body: SubmitRequest) -> Submitted:
        """Queue a file the server can read. Checked now: allowed by the URI policy, there, and media."""
        await asyncio.to_thread(checked_path, body.uri, settings)
        video_id = await submit_request(body.uri, body.video_id, body.metadata, body.options)
        return Submitted(video_id=video_id, status="submitted")

    @app.get("/videos", dependencies=auth, response_model=list[VideoSummary])
    async def videos(
        limit: int = Query(100, ge=1, le=MAX_LIST), status: str | None = Query(None, max_length=32)
    ) -> list[dict[str, Any]]:
        return await store.call(store.videos, limit, status)

    @app.get("/videos/{video_id}", dependencies=auth, response_model=VideoDetail)
    async def video(video_id: str) -> dict[str, Any]:
        row = await known_row(video_id)
        counts = await store.call(store.result_counts, video_id)
        row["progress"] = progress(row, counts)
        row["metadata"] = json.loads(row["metadata"] or "{}")
        row["options"] = json.loads(row["options"] or "{}")
        row["expected"] = json.loads(row["expected"] or "{}")
        return row

    @app.delete("/videos/{video_id}", dependencies=auth, response_model=Deleted)
    async def delete_video(video_id: str) -> Deleted:
        """Remove a finished video: its rows in every table, its stored upload, and a tombstone (a null
        value keyed by the id) on the reconstructions topic and each part's topic, so compacted topics and
        their consumers forget it too. A video
        still in flight gets 409: its analyzers would write it back."""
        row = await known_row(video_id)
        if row["status"] in IN_FLIGHT or row["status"] == "submitted":
            raise HTTPException(
                status_code=409, detail=f"{video_id} is still {row['status']}; delete it once finished"
            )
        if services is None or services.producer is None:
            raise HTTPException(status_code=503, detail="not connected to the broker yet")
        await store.call(store.delete_video, video_id)
        live_cache.pop(video_id, None)
        upload = stored_upload(row.get("uri", ""), settings)
        if upload is not None:
            upload.unlink(missing_ok=True)
        topics = settings.topics
        await send_tombstone(services.producer, topics.reconstructions, Reconstruction.KIND, video_id)
        for part in topics.PARTS:
            await send_tombstone(services.producer, topics.part(part), VideoPart.KIND, video_id)
        return Deleted(video_id=video_id, upload_removed=upload is not None, tombstone=True)

    @app.get("/videos/{video_id}/media", dependencies=stream_auth, response_class=FileResponse)
    async def media(video_id: str) -> FileResponse:
        """The video's file for the player, with HTTP range requests (206). Only a file the URI policy
        allows (an upload or a file under the allowed roots) is served; `?token=` works, as for streams."""
        row = await known_row(video_id)
        path = await asyncio.to_thread(playable_path, row.get("uri", ""), settings)
        if path is None:
            raise HTTPException(status_code=404, detail=f"the media of {video_id} is not available here")
        return FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/search", dependencies=auth, response_model=SearchResults)
    async def search_moments(
        q: Annotated[str, Query(min_length=1, max_length=200, description="words to find")],
        kind: Annotated[list[Kind] | None, Query(description="kinds of moment (all when absent)")] = None,
        status: Annotated[str | None, Query(max_length=32)] = None,
        since: Annotated[datetime | None, Query(description="videos submitted at or after")] = None,
        until: Annotated[datetime | None, Query(description="videos submitted before")] = None,
        min_duration_s: Annotated[float | None, Query(ge=0)] = None,
        max_duration_s: Annotated[float | None, Query(ge=0)] = None,
        has_speech: bool | None = None,
        language: Annotated[str | None, Query(max_length=16)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
    ) -> SearchResults:
        """Moments (video, time) across every video where a word is spoken, text is on screen, an object,
        a face track, a sound event or a topic matches the query, in the videos the filters keep."""
        filters = SearchFilters(
            kinds=kind or list(KINDS),
            status=status,
            since=since,
            until=until,
            min_duration_s=min_duration_s,
            max_duration_s=max_duration_s,
            has_speech=has_speech,
            language=language,
            limit=limit,
        )
        return await store.call(search, store, q, filters)

    document = {200: {"model": ReconstructionDocument}, 404: {"description": "unknown, or not finished"}}

    @app.get("/videos/{video_id}/reconstruction", dependencies=auth, responses=document)
    async def reconstruction(video_id: str) -> JSONResponse:
        doc = await store.call(store.reconstruction, video_id)
        if doc is None:
            raise HTTPException(status_code=404, detail=f"no reconstruction yet for {video_id}")
        return JSONResponse(doc)

    @app.get("/videos/{video_id}/segments", dependencies=auth, response_model=list[SegmentRow])
    async def segments(video_id: str) -> list[dict[str, Any]]:
        await known_row(video_id)
        return await store.call(store.segments, video_id)

    # --- uploads --------------------------------------------------------------------------------------

    @app.post(
        "/videos/upload", dependencies=auth, status_code=202, response_model=Submitted, responses=refusals
    )
    async def upload(request: Request) -> Submitted:
        """Multipart upload: a `file` part, optional `metadata` and `options` JSON fields. The file is
        streamed to state_dir/uploads under a generated name (413 past max_upload_bytes, nothing left
        behind) and submitted like POST /videos."""
        if services is None or services.producer is None:
            raise HTTPException(status_code=503, detail="not connected to the broker yet")
        await asyncio.to_thread(sweep_uploads, settings)
        upload = await receive_upload(request, settings)
        try:
            problem = await asyncio.to_thread(probe_problem, upload.path)
            if problem:
                raise HTTPException(status_code=422, detail=problem)
            video_id = await submit_request(
                upload.path.as_uri(), upload.video_id, upload.metadata, upload.options
            )
        except BaseException:
            upload.path.unlink(missing_ok=True)
            raise
        return Submitted(video_id=video_id, status="submitted")

    # --- exports --------------------------------------------------------------------------------------

    async def finished_doc(video_id: str) -> dict[str, Any]:
        doc = await store.call(store.reconstruction, video_id)
        if doc is None:
            raise HTTPException(status_code=404, detail=f"no reconstruction yet for {video_id}")
        return doc

    @app.get("/videos/{video_id}/reconstruction.json", dependencies=auth, responses=document)
    async def reconstruction_download(video_id: str) -> JSONResponse:
        return JSONResponse(await finished_doc(video_id), headers=attachment(video_id, ".json"))

    track_query = Query("all", description="`speech` or `text` for one track; `all` has both")

    @app.get("/videos/{video_id}/export.vtt", dependencies=auth, response_class=PlainTextResponse)
    async def export_vtt(video_id: str, track: exports.Track = track_query) -> Response:
        """WebVTT: speech cues by speaker, on-screen text cues (`TEXT:` when both tracks share one) at the
        top; a player takes `?track=speech` and `?track=text` as two text tracks."""
        text = exports.to_webvtt(await finished_doc(video_id), track)
        return Response(text, media_type="text/vtt; charset=utf-8", headers=attachment(video_id, ".vtt"))

    @app.get("/videos/{video_id}/export.srt", dependencies=auth, response_class=PlainTextResponse)
    async def export_srt(video_id: str, track: exports.Track = track_query) -> Response:
        """SubRip: the same cues as WebVTT, speakers in brackets when there are several."""
        text = subtitles.to_srt(await finished_doc(video_id), track)
        return Response(
            text, media_type="application/x-subrip; charset=utf-8", headers=attachment(video_id, ".srt")
        )

    @app.get("/videos/{video_id}/export.ttml", dependencies=auth, response_class=PlainTextResponse)
    async def export_ttml(video_id: str, track: exports.Track = track_query) -> Response:
        """TTML: speech at the bottom, on-screen text at the top, in two regions."""
        text = subtitles.to_ttml(await finished_doc(video_id), track)
        return Response(
            text, media_type="application/ttml+xml; charset=utf-8", headers=attachment(video_id, ".ttml")
        )

    @app.get("/videos/{video_id}/export.md", dependencies=auth, response_class=PlainTextResponse)
    async def export_md(video_id: str) -> Response:
        text = exports.to_markdown(await finished_doc(video_id))
        return Response(text, media_type="text/markdown; charset=utf-8", headers=attachment(video_id, ".md"))

    @app.get("/videos/{video_id}/reconstruction/live", dependencies=auth, responses=document)
    async def live_reconstruction(video_id: str) -> JSONResponse:
        """The stored reconstruction once the video is finished; before that, one built now from the
        results stored so far (`provisional: true`), so a viewer fills in while the video is processed."""
        row = await store.call(store.video, video_id)
        if row is None:
            await known_row(video_id)  # 404 unless just submitted
            raise HTTPException(status_code=404, detail=f"nothing stored for {video_id} yet")
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

    async def all_events(resume_ms: int | None) -> AsyncIterator[str]:
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
                        yield sse("progress", state, hub.polled_ms)
                    elif (not first and (before is None or before["status"] not in TERMINAL)) or (
                        first
                        and resume_ms is not None
                        and hub.completion_ms(video_id, hub.changed_ms.get(video_id, 0)) > resume_ms
                    ):
                        # finished while this stream watched, or since the event a resuming client saw
                        # last (videos done before a fresh stream opened are not news)
                        yield sse("progress", state, hub.polled_ms)
                        yield sse(
                            "complete", {"video_id": video_id, "status": state["status"]}, hub.polled_ms
                        )
                first = False

    async def video_events(video_id: str, resume_ms: int | None) -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        row = await store.call(store.video, video_id)
        if row is not None and row["status"] in TERMINAL:
            stamp = hub.completion_ms(video_id, changed_ms(row))
            if resume_ms is None or resume_ms < stamp:  # else the client saw it finish already
                state = video_state(row, await store.call(store.result_counts, video_id))
                yield sse("progress", state, stamp)
                yield sse("complete", {"video_id": video_id, "status": state["status"]}, stamp)
            return
        last: dict[str, Any] | None = None
        async with hub.subscribe() as seen:
            async for version in snapshots(seen):
                state = hub.videos.get(video_id) if version is not None else None
                if version is None:
                    yield ": keepalive\n\n"
                elif state is not None and state != last:
                    last = state
                    if state["status"] not in TERMINAL:
                        yield sse("progress", state, hub.polled_ms)
                        continue
                    stamp = hub.completion_ms(video_id, hub.polled_ms)  # what a resume compares with
                    yield sse("progress", state, stamp)
                    yield sse("complete", {"video_id": video_id, "status": state["status"]}, stamp)
                    return

    def resume_point(last_event_id: str | None) -> int | None:
        """The `id:` a reconnecting EventSource sends back (epoch ms); anything else starts afresh."""
        return int(last_event_id) if last_event_id and last_event_id.isdigit() else None

    last_event_header = Header(None, alias="Last-Event-ID", description="resume after this event id")

    @app.get("/events", dependencies=stream_auth, response_class=StreamingResponse)
    async def events(last_event_id: str | None = last_event_header) -> StreamingResponse:
        """Server-sent events for every video in flight: `progress` (status, per-analyzer received /
        expected) whenever it changes, polled every 0.5 s; `complete` when one finishes. Each event has an
        `id:`; with `Last-Event-ID` a reconnecting client also gets `complete` for what finished since."""
        return event_stream(all_events(resume_point(last_event_id)))

    @app.get("/videos/{video_id}/events", dependencies=stream_auth, response_class=StreamingResponse)
    async def one_video_events(
        video_id: str, last_event_id: str | None = last_event_header
    ) -> StreamingResponse:
        """Server-sent events for one video: `progress` on change, then `complete`, then the stream ends
        (with `Last-Event-ID` at or after its completion: nothing, the client has it)."""
        await known_row(video_id)
        return event_stream(video_events(video_id, resume_point(last_event_id)))

    # --- stats ----------------------------------------------------------------------------------------

    @app.get("/stats", dependencies=auth, response_model=Stats)
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
