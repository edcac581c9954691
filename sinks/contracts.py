"""The published contracts over HTTP: the JSON Schemas of docs/schemas/ (generated from the same models), and
which topic carries which event with what headers and configs, for a consumer that never reads the code.

Public, like /openapi.json: a schema says nothing about any video."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse
from reelscope.infra.core.kafka import CONTENT_TYPE
from reelscope.infra.core.settings import Settings
from reelscope.infra.core.topics import catalog
from reelscope.schemas.json_schema import event_name, published_schemas, schema_index

HEADERS = {
    "content-type": f"`{CONTENT_TYPE}`; absent on a tombstone (a null value: the video was deleted)",
    "event-kind": "the event's `kind`",
    "schema-version": "the event's `v`, in decimal",
    "video-id": "the video id, also the message key",
}
"""The Kafka headers on every message reelscope publishes (infra/core/kafka.py)."""

SCHEMA_PATHS = ("/schemas", "/schemas/{name}.json")


@cache
def _schemas() -> dict[str, dict[str, Any]]:
    return published_schemas()


def contracts(settings: Settings) -> dict[str, Any]:
    """The schema index with URLs, and the topics of this deployment with the event kinds and configs."""
    index = schema_index()
    for name, entry in index["schemas"].items():
        entry["url"] = f"/schemas/{name}.json"
    index["headers"] = HEADERS
    index["topics"] = {
        topic.name: {"schemas": [event_name(kind) for kind in topic.kinds], "configs": topic.configs}
        for topic in catalog(settings)
    }
    return index


def router(settings: Settings) -> APIRouter:
    routes = APIRouter(tags=["schemas"])

    @routes.get(SCHEMA_PATHS[0])
    async def schema_list() -> dict[str, Any]:
        """Every published JSON Schema, the Kafka headers and each topic's events and configs."""
        return contracts(settings)

    @routes.get(SCHEMA_PATHS[1], responses={404: {"description": "no schema of that name"}})
    async def schema(name: str) -> JSONResponse:
        """One JSON Schema (2020-12), exactly as in docs/schemas/<name>.json."""
        body = _schemas().get(name)
        if body is None:
            raise HTTPException(status_code=404, detail=f"no schema {name!r}; see /schemas")
        return JSONResponse(body, media_type="application/schema+json")

    return routes
