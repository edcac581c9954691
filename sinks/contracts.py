"""The published contracts over HTTP: the JSON Schemas of docs/schemas/ (generated from the same models), and
which topic carries which event with what headers and configs, for a consumer that never reads the code.

Public, like /openapi.json: a schema says nothing about any video."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from reelscope.infra.core.kafka import CONTENT_TYPE
from reelscope.infra.core.settings import Settings
from reelscope.infra.core.topics import catalog
from reelscope.schemas.json_schema import DIALECT, event_name, published_schemas, schema_index

HEADERS = {
    "content-type": f"`{CONTENT_TYPE}`; absent on a tombstone (a null value: the video was deleted)",
    "event-kind": "the event's `kind`",
    "schema-version": "the event's `v`, in decimal",
    "video-id": "the video id, also the message key",
}
"""The Kafka headers on every message reelscope publishes (infra/core/kafka.py)."""

SCHEMA_PATHS = ("/schemas", "/schemas/{name}.json")


class SchemaEntry(BaseModel):
    file: str
    url: str
    title: str
    format: str = Field(description="`application/msgpack` for events (the schema describes the decoded map)")
    kind: str | None = Field(None, description="the event's `kind`; absent for the document")
    version: int | None = Field(None, description="the event's current schema version `v`")


class TopicContract(BaseModel):
    schemas: list[str] = Field(description="names of the schemas of the events on the topic")
    configs: dict[str, str] = Field(description="the broker configs the topic is created with")


class Contracts(BaseModel):
    schemas: dict[str, SchemaEntry]
    headers: dict[str, str] = Field(description="the Kafka headers on every message, and what they hold")
    topics: dict[str, TopicContract]


class SchemaResponse(JSONResponse):
    media_type = "application/schema+json"


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

    @routes.get(SCHEMA_PATHS[0], response_model=Contracts, response_model_exclude_none=True)
    async def schema_list() -> dict[str, Any]:
        """Every published JSON Schema, the Kafka headers and each topic's events and configs."""
        return contracts(settings)

    @routes.get(
        SCHEMA_PATHS[1],
        response_class=SchemaResponse,
        responses={
            # described, not $ref'd: ReDoc and Swagger UI would fetch the metaschema from the internet
            200: {
                "content": {
                    SchemaResponse.media_type: {
                        "schema": {"type": "object", "description": f"a JSON Schema document ({DIALECT})"}
                    }
                }
            },
            404: {"description": "no schema of that name"},
        },
    )
    async def schema(name: str) -> SchemaResponse:
        """One JSON Schema (2020-12), exactly as in docs/schemas/<name>.json."""
        body = _schemas().get(name)
        if body is None:
            raise HTTPException(status_code=404, detail=f"no schema {name!r}; see /schemas")
        return SchemaResponse(body)

    return routes
