"""JSON Schemas of what reelscope publishes, for downstream consumers: the reconstruction document and every
wire event (with the `kind` and `v` that `encode` adds to each).

    python -m reelscope.schemas.json_schema > reelscope.schema.json
"""

from __future__ import annotations

import json
from typing import Any

from reelscope.schemas.events import EVENT_TYPES, Event
from reelscope.schemas.reconstruction import ReconstructionDocument


def event_schema(cls: type[Event]) -> dict[str, Any]:
    """An event's schema as it is on the wire: its fields plus the constant `kind` and current `v`."""
    schema = cls.model_json_schema()
    schema["properties"] = {
        "kind": {"const": cls.KIND, "type": "string"},
        "v": {"const": cls.VERSION, "type": "integer"},
        **schema["properties"],
    }
    schema["required"] = ["kind", "v", *schema.get("required", [])]
    return schema


def json_schemas() -> dict[str, Any]:
    """{"reconstruction": schema of the document, "events": {kind: schema of the event}}."""
    return {
        "reconstruction": ReconstructionDocument.model_json_schema(),
        "events": {kind: event_schema(cls) for kind, cls in sorted(EVENT_TYPES.items())},
    }


if __name__ == "__main__":
    print(json.dumps(json_schemas(), indent=2))
