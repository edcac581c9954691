"""JSON Schemas of what reelscope publishes, for downstream consumers: the reconstruction document and every
wire event (with the `kind` and `v` that `encode` adds to each). The files in docs/schemas/ are these,
generated; the API serves the same at /schemas.

    python -m reelscope.schemas.json_schema                  # everything, as one JSON object
    python -m reelscope.schemas.json_schema --write docs/schemas   # one file per schema, and index.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from reelscope.schemas.events import EVENT_TYPES, Event, Reconstruction, VideoPart
from reelscope.schemas.reconstruction import ReconstructionDocument

DIALECT = "https://json-schema.org/draft/2020-12/schema"
DOCUMENT = "reconstruction-document"
"""Name of the reconstruction document's schema (file `reconstruction-document.json`)."""


def event_name(kind: str) -> str:
    """Name of an event kind's schema (file `event-<kind>.json`)."""
    return f"event-{kind}"


def _json_text(description: str, schema_name: str | None = None) -> dict[str, Any]:
    """A string field holding JSON text (MessagePack cannot nest the document's own schema)."""
    field: dict[str, Any] = {
        "type": "string",
        "contentMediaType": "application/json",
        "description": description,
    }
    if schema_name is not None:
        field["contentSchema"] = {"$ref": f"{schema_name}.json"}
    return field


DOCUMENT_FIELDS: dict[type[Event], dict[str, Any]] = {
    Reconstruction: _json_text(
        f"JSON text of the reconstruction document ({DOCUMENT}.json); when too large for one message, the "
        "parts named in its `omitted` are left out.",
        DOCUMENT,
    ),
    VideoPart: _json_text(
        f"JSON text of one property of the reconstruction document, named by `part`: its schema is "
        f"{DOCUMENT}.json#/properties/<part>."
    ),
}
"""The events whose `document` is JSON text inside the MessagePack, described as such."""


def event_schema(cls: type[Event]) -> dict[str, Any]:
    """An event's schema as it is on the wire: its fields plus the constant `kind` and current `v`."""
    schema = cls.model_json_schema()
    schema["properties"] = {
        "kind": {"const": cls.KIND, "type": "string"},
        "v": {"const": cls.VERSION, "type": "integer"},
        **schema["properties"],
    }
    if cls in DOCUMENT_FIELDS:
        schema["properties"]["document"] = DOCUMENT_FIELDS[cls]
    schema["required"] = ["kind", "v", *schema.get("required", [])]
    return schema


def json_schemas() -> dict[str, Any]:
    """{"reconstruction": schema of the document, "events": {kind: schema of the event}}."""
    return {
        "reconstruction": ReconstructionDocument.model_json_schema(),
        "events": {kind: event_schema(cls) for kind, cls in sorted(EVENT_TYPES.items())},
    }


def _published(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": DIALECT, "$id": f"{name}.json", **schema}


def published_schemas() -> dict[str, dict[str, Any]]:
    """Every published schema by name, each a standalone 2020-12 document whose `$id` is its file name (so
    the document reference of `event-reconstruction.json` resolves next to it, on disk or over HTTP)."""
    schemas = json_schemas()
    out = {DOCUMENT: _published(DOCUMENT, schemas["reconstruction"])}
    for kind, schema in schemas["events"].items():
        out[event_name(kind)] = _published(event_name(kind), schema)
    return out


def schema_index() -> dict[str, Any]:
    """What index.json lists: each schema's file, title, and for events the kind and version."""
    entries: dict[str, Any] = {
        DOCUMENT: {
            "file": f"{DOCUMENT}.json",
            "title": "ReconstructionDocument",
            "format": "application/json",
        }
    }
    for kind, cls in sorted(EVENT_TYPES.items()):
        entries[event_name(kind)] = {
            "file": f"{event_name(kind)}.json",
            "title": cls.__name__,
            "kind": kind,
            "version": cls.VERSION,
            "format": "application/msgpack",
        }
    return {"schemas": entries}


def schema_files() -> dict[str, str]:
    """{file name: text} of docs/schemas/ (generated, committed; a test fails when they drift)."""
    files = {f"{name}.json": schema for name, schema in published_schemas().items()}
    files["index.json"] = schema_index()
    return {name: json.dumps(body, indent=2, sort_keys=False) + "\n" for name, body in files.items()}


def write(folder: Path) -> list[Path]:
    """Write the schema files into `folder`, removing generated files of events that no longer exist."""
    folder.mkdir(parents=True, exist_ok=True)
    files = schema_files()
    for stale in folder.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    paths = []
    for name, text in files.items():
        path = folder / name
        path.write_text(text)
        paths.append(path)
    return paths


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", type=Path, metavar="FOLDER", help="write one file per schema into FOLDER")
    args = parser.parse_args()
    if args.write:
        print("\n".join(str(p) for p in write(args.write)))
    else:
        print(json.dumps(json_schemas(), indent=2))
