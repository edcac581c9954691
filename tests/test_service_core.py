"""The service foundation without a broker: retry classification and backoff, the failure boundary, dead
letters that fit, bodies split into parts and put back together."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from reelscope.infra.core.chunks import Assembler, split
from reelscope.infra.core.kafka import DeadLetters
from reelscope.infra.core.retry import DependencyError, is_dependency_failure, retry_with_backoff
from reelscope.infra.core.service import KafkaService
from reelscope.infra.core.settings import Settings
from reelscope.schemas.events import DeadLetter, VideoReady, decode, encode


def record(value: bytes, offset: int = 0, topic: str = "t", key: bytes | None = b"vid") -> ConsumerRecord:
    return ConsumerRecord(topic, 0, offset, 0, 0, key, value, None, len(key or b""), len(value), [])


def test_only_dependency_failures_are_retried() -> None:
    assert is_dependency_failure(KafkaConnectionError())
    assert is_dependency_failure(DependencyError("ClickHouse down"))
    assert not is_dependency_failure(MessageSizeTooLargeError())  # the message, not the broker
    assert not is_dependency_failure(OverflowError("timestamp out of range"))
    assert not is_dependency_failure(OSError(40, "Too many levels of symbolic links"))


def test_retry_with_backoff_retries_dependencies_and_raises_the_rest() -> None:
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise DependencyError("not yet")
        return "ok"

    async def broken() -> None:
        calls.append(1)
        raise ValueError("bad data")

    assert asyncio.run(retry_with_backoff(flaky, "flaky", initial_s=0.01)) == "ok"
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(ValueError):
        asyncio.run(retry_with_backoff(broken, "broken", initial_s=0.01))
    assert len(calls) == 1


def test_retry_stops_when_asked() -> None:
    async def scenario() -> None:
        stop = asyncio.Event()

        async def down() -> None:
            stop.set()
            raise DependencyError("down")

        await retry_with_backoff(down, "down", stop, initial_s=5.0)

    with pytest.raises(DependencyError):
        asyncio.run(asyncio.wait_for(scenario(), timeout=2.0))


def test_a_dead_letter_always_fits_in_one_message() -> None:
    big = bytes(range(256)) * 8192  # 2 MiB
    letters = DeadLetters(producer=None, topic="dl", consumer="test", max_event_bytes=900_000)  # type: ignore[arg-type]
    letter = letters.letter(record(big), "not a MessagePack event")
    assert len(encode(letter)) <= 900_000
    assert letter.truncated and letter.original_size == len(big)
    assert letter.original_sha256 == hashlib.sha256(big).hexdigest()
    assert big.startswith(letter.original)
    small = letters.letter(record(b"\xde\xad"), "bad")
    assert not small.truncated and small.original == b"\xde\xad"
    assert decode(encode(small)) == small and isinstance(small, DeadLetter)


def ready_parts(body: bytes, cid: str = "c1") -> list[VideoReady]:
    pieces = split(body, 10_000)
    return [
        VideoReady(video_id="v", completion_id=cid, phase="final", part=i, parts=len(pieces), body=p)
        for i, p in enumerate(pieces)
    ]


def test_parts_are_put_back_together_once_all_arrived() -> None:
    body = bytes(range(256)) * 200
    parts = ready_parts(body)
    assert len(parts) > 3 and all(len(encode(p)) < 10_000 for p in parts)
    assembler = Assembler()
    outs = [assembler.add(record(b"", offset=10 + i), p) for i, p in enumerate(parts)]
    assert outs[:-1] == [None] * (len(parts) - 1)
    first, whole = outs[-1]  # type: ignore[misc]
    assert whole == body and first.part == 0
    assert assembler.watermarks(60) == {}


def test_an_incomplete_set_holds_its_first_offset_and_a_resend_starts_over() -> None:
    body = b"x" * 30_000
    parts = ready_parts(body)
    assembler = Assembler()
    assembler.add(record(b"", offset=5), parts[0])
    assembler.add(record(b"", offset=6), parts[1])
    held = assembler.watermarks(60)
    assert list(held.values()) == [5]
    assembler.add(record(b"", offset=6), parts[1])  # the same batch handled again changes nothing
    # the sender died and sent the whole body again
    outs = [assembler.add(record(b"", offset=20 + i), p) for i, p in enumerate(parts)]
    assert outs[-1] is not None and outs[-1][1] == body
    assert assembler.watermarks(60) == {}
    assert assembler.add(record(b"", offset=40), parts[2]) is None  # a tail without its beginning
    assert assembler.watermarks(0) == {}


class Picky(KafkaService):
    """Handles any batch without the message b"bad"; a batch with it fails as a whole."""

    def __init__(self) -> None:
        super().__init__(Settings(), "picky", ["t"])
        self.handled: list[int] = []
        self.rejected: list[int] = []

    async def handle(self, records: list[ConsumerRecord]) -> None:
        if any(r.value == b"bad" for r in records):
            raise ValueError("bad message")
        self.handled += [r.offset for r in records]

    async def reject(self, record: ConsumerRecord, exc: BaseException) -> None:
        self.rejected.append(record.offset)


def test_the_failure_boundary_rejects_only_the_message_at_fault() -> None:
    service = Picky()
    batch = [record(b"bad" if i == 5 else b"ok", offset=i) for i in range(9)]
    asyncio.run(service.guarded(batch))
    assert service.rejected == [5]
    assert service.handled == [0, 1, 2, 3, 4, 6, 7, 8]  # in order, each once
    alone = Picky()
    asyncio.run(alone.guarded([record(b"bad", offset=3)]))
    assert alone.rejected == [3] and alone.handled == []


def test_the_failure_boundary_leaves_dependency_failures_to_the_retry() -> None:
    class Down(Picky):
        async def handle(self, records: list[ConsumerRecord]) -> None:
            raise DependencyError("ClickHouse unavailable")

    service = Down()
    with pytest.raises(DependencyError):
        asyncio.run(service.guarded([record(b"ok")]))
    assert service.rejected == []
