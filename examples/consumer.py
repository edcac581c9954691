"""Print every video reelscope finishes, from the reconstructions topic: a downstream consumer that needs
only aiokafka and msgpack (`pip install aiokafka msgpack`), not reelscope.

    python examples/consumer.py --bootstrap-servers 127.0.0.1:19092
    python examples/consumer.py --full --limit 1     # the whole reconstruction document of the next video

What it relies on is the published contract (docs/schemas/): each message is MessagePack keyed by the video
id, with the headers `content-type`, `event-kind`, `schema-version` and `video-id`; a reconstruction event's
`document` is the JSON text of the reconstruction document; a null value (a tombstone) means the video was
deleted. The topic is compacted, so a new consumer group reads the latest reconstruction of every video.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import msgpack
from aiokafka import AIOKafkaConsumer

KIND = "reconstruction"
VERSION = 2
"""The schema version this consumer was written for; newer versions may add fields (unknown ones are
ignored), and would change what `v` says."""


def header(headers: list[tuple[str, bytes]], name: str) -> str | None:
    return next((value.decode() for key, value in headers if key == name), None)


def summary(video_id: str, event: dict[str, Any], doc: dict[str, Any]) -> str:
    """A few lines about one video: status, length, shots, what was said and what was on screen."""
    lines = [
        f"{video_id}: {event['status']}, {doc.get('duration_s', 0):.1f} s, {len(doc.get('shots', []))} shots"
        + (f" ({doc['error']})" if doc.get("error") else "")
    ]
    text = (doc.get("transcript") or {}).get("text")
    if text:
        lines.append(f"  said: {text}")
    for item in doc.get("text_events", [])[:5]:
        lines.append(f"  on screen at {item['start_s']:.1f} s: {item['text']}")
    return "\n".join(lines)


async def consume(args: argparse.Namespace) -> None:
    consumer = AIOKafkaConsumer(
        f"{args.prefix}reconstructions",
        bootstrap_servers=args.bootstrap_servers,
        group_id=args.group or None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    printed = 0
    try:
        async for record in consumer:
            video_id = record.key.decode() if record.key else "?"
            if record.value is None:
                print(f"{video_id}: deleted", flush=True)
                continue
            headers = list(record.headers)
            if (
                header(headers, "event-kind") != KIND
                or header(headers, "content-type") != "application/msgpack"
            ):
                continue
            if int(header(headers, "schema-version") or 0) > VERSION:
                print(f"{video_id}: skipped, schema version {header(headers, 'schema-version')} is newer")
                continue
            event = msgpack.unpackb(record.value, raw=False)
            doc = json.loads(event["document"])
            print(json.dumps(doc, indent=2) if args.full else summary(video_id, event, doc), flush=True)
            printed += 1
            if args.limit and printed >= args.limit:
                break
    finally:
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:19092")
    parser.add_argument("--prefix", default="reelscope.", help="the deployment's topic prefix")
    parser.add_argument("--group", default="reconstruction-printer", help="consumer group ('' for none)")
    parser.add_argument("--full", action="store_true", help="print each whole document as JSON")
    parser.add_argument("--limit", type=int, default=0, help="stop after this many videos (0: never)")
    asyncio.run(consume(parser.parse_args()))


if __name__ == "__main__":
    main()
