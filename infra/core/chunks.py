"""Bodies larger than one message, sent as numbered parts and put back together by the consumer.

The parts of one body are sent together, keyed by video id, so they arrive in order on one partition. The
consumer keeps a body's parts (and holds its commit at the first part's offset) until the last arrives;
a set that never completes (its sender died mid-send and will send the whole body again) is dropped after
`max_age_s` (see `patience`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiokafka import ConsumerRecord, TopicPartition
from reelscope.schemas.events import Parts

PART_OVERHEAD = 4096
"""Room left in a message for the event's other fields."""


def patience(completion_timeout_s: float) -> float:
    """How long an incomplete set of parts, or an unanswered request, is waited for: ten completion
    timeouts, since the parts are durable on the broker and waiting costs only a held commit."""
    return 10 * completion_timeout_s


def split(body: bytes, max_event_bytes: int) -> list[bytes]:
    """Pieces of `body`, each small enough to travel in one event (at least one piece, maybe empty)."""
    size = max(1024, max_event_bytes - PART_OVERHEAD)
    return [body[i : i + size] for i in range(0, len(body), size)] or [b""]


@dataclass
class _Partial:
    parts: int
    tp: TopicPartition
    offset: int
    first: Parts | None = None
    pieces: dict[int, bytes] = field(default_factory=dict)
    since: float = field(default_factory=time.monotonic)


class Assembler:
    """Collects parts per (video, completion, phase); hands back whole bodies.

    Adding a part again (a batch handled again) changes nothing; a part 0 at a new offset (a sender that
    died mid-send and started over) starts the set again."""

    def __init__(self) -> None:
        self.partial: dict[tuple[str, str, str], _Partial] = {}

    def add(self, record: ConsumerRecord, event: Parts) -> tuple[Parts, bytes] | None:
        """The first part's event and the whole body once every part is in; else None."""
        key = (event.video_id, event.completion_id, event.phase)
        partial = self.partial.get(key)
        tp = TopicPartition(record.topic, record.partition)
        if event.part == 0 and (partial is None or (partial.tp, partial.offset) != (tp, record.offset)):
            partial = self.partial[key] = _Partial(event.parts, tp, record.offset)
        if partial is None or partial.parts != event.parts or event.part >= event.parts:
            return None  # the rest of a set whose beginning this process never saw
        if event.part == 0:
            partial.first = event
        partial.pieces[event.part] = event.body
        if len(partial.pieces) < partial.parts or partial.first is None:
            return None
        del self.partial[key]
        return partial.first, b"".join(partial.pieces[i] for i in range(partial.parts))

    def watermarks(self, max_age_s: float) -> dict[TopicPartition, int]:
        """Per partition, the first offset of a set still incomplete (sets older than max_age_s dropped)."""
        now = time.monotonic()
        held: dict[TopicPartition, int] = {}
        for key, partial in list(self.partial.items()):
            if now - partial.since > max_age_s:
                del self.partial[key]
                continue
            held[partial.tp] = min(held.get(partial.tp, partial.offset), partial.offset)
        return held
