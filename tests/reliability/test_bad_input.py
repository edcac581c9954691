"""Every kind of bad input, pushed at once into the real stack: each video ends failed or degraded with a
reason (or complete, when it lost nothing: one stream is not a loss), malformed events land in the
dead-letter topic, and a good video pushed last still completes."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiokafka import AIOKafkaProducer
from reelscope.infra.core.ingest import make_request, request_for_path
from reelscope.infra.stack import down, up
from reelscope.schemas.events import DeadLetter

from tests.media import cut_clip, textured, tone, write_video
from tests.test_pipeline import _push, read_topic, wait_done

pytestmark = pytest.mark.integration


def bad_inputs(d: Path) -> dict[str, tuple[Path | str, str, str]]:
    """name -> (file or URI, expected status, text expected in the error or warnings)."""
    (d / "zero.mp4").write_bytes(b"")
    (d / "random.mp4").write_bytes(os.urandom(50_000))
    ok = write_video(d / "ok.mp4", 20, 10, lambda i: textured(64, 64, 1, i))
    (d / "truncated.mp4").write_bytes(ok.read_bytes()[: ok.stat().st_size * 6 // 10])
    (d / "unknown_codec.mp4").write_bytes(ok.read_bytes().replace(b"avc1", b"zzz9"))
    corrupt = bytearray(
        write_video(d / "c.mp4", 60, 20, lambda i: textured(128, 128, 2, i), audio=tone(3.0)).read_bytes()
    )
    middle = len(corrupt) // 2
    corrupt[middle : middle + 3000] = os.urandom(3000)
    (d / "corrupt_middle.mp4").write_bytes(bytes(corrupt))
    times = [0.0, 0.1, 0.15, 0.4, 0.45, 1.0, 1.02, 1.5, 2.2, 2.25]
    return {
        "zero_byte": (d / "zero.mp4", "failed", "not a readable video"),
        "random_bytes": (d / "random.mp4", "failed", "not a readable video"),
        "truncated": (d / "truncated.mp4", "failed", "not a readable video"),
        "unsupported_codec": (d / "unknown_codec.mp4", "failed", "unsupported codec"),
        "missing_uri": ((d / "does-not-exist.mp4").as_uri(), "failed", "file not found"),
        "forbidden_scheme": ("http://169.254.169.254/latest/meta-data", "failed", "not allowed"),
        "zero_duration": (write_video(d / "empty.mp4", 0, 10, lambda i: textured(64, 64, 1)), "failed", ""),
        "audio_only": (
            write_video(d / "voice.m4a", 0, 10, None, audio=tone(2.0)),
            "complete",
            "",
        ),
        "video_only": (ok, "complete", ""),
        "corrupt_middle": (d / "corrupt_middle.mp4", "degraded", "corrupt packets skipped"),
        "rotated_90": (
            write_video(
                d / "rot.mp4", 10, 10, lambda i: textured(96, 64, 3, i), rotation=90, audio=tone(1.0)
            ),
            "complete",
            "",
        ),
        "variable_frame_rate": (
            write_video(
                d / "vfr.mp4",
                len(times),
                10,
                lambda i: textured(64, 64, 4, i),
                pts_of=lambda i: times[i],
                audio=tone(2.3),
            ),
            "complete",
            "",
        ),
        "8k": (
            write_video(d / "8k.mp4", 3, 10, lambda i: np.full((4320, 7680, 3), 40 * i, np.uint8)),
            "complete",
            "",
        ),
        "240_fps": (
            write_video(d / "fast.mp4", 240, 240, lambda i: textured(64, 64, 5, i), audio=tone(1.0)),
            "complete",
            "",
        ),
        "too_long": (write_video(d / "long.mp4", 50, 2, lambda i: textured(32, 32, 6)), "failed", "maximum"),
    }


def test_bad_inputs_fail_politely_and_everything_else_keeps_going(env_settings: Any, tmp_path: Path) -> None:
    cases = bad_inputs(tmp_path)
    settings = env_settings(
        REELSCOPE_ANALYZERS='["scene", "color", "quality", "loudness"]',
        REELSCOPE_PRODUCER__MAX_DURATION_S="20",
    )
    requests = {}
    for name, (target, _, _) in cases.items():
        if isinstance(target, Path):
            requests[name] = request_for_path(str(target), video_id=name)
        else:
            requests[name] = make_request(target, video_id=name)
    good = request_for_path(str(cut_clip(tmp_path / "good.mp4", frames=40)), video_id="good-after-bad")
    topics = [
        settings.topics.ingest,
        settings.topics.frames,
        settings.topics.audio,
        settings.topics.lifecycle,
        settings.topics.results,
    ]

    async def poison() -> None:
        producer = AIOKafkaProducer(**settings.kafka.client_kwargs())
        await producer.start()
        for topic in topics:
            await producer.send_and_wait(topic, b"\xde\xad\xbe\xef", key=b"malformed")
        await producer.stop()

    up(settings, timeout_s=120)
    try:
        asyncio.run(poison())
        asyncio.run(_push(settings, [*requests.values(), good]))
        docs = {name: wait_done(settings, name, timeout_s=180) for name in requests}
        good_doc = wait_done(settings, "good-after-bad", timeout_s=180)
        letters = asyncio.run(
            read_topic(
                settings,
                settings.topics.dead_letter,
                lambda evs: {e.source_topic for e in evs} >= set(topics),
            )
        )
    finally:
        down(settings)

    problems = []
    for name, (_, status, text) in cases.items():
        doc = docs[name]
        said = (doc.get("error") or "") + " ".join(doc.get("warnings", []))
        if doc["status"] != status or text not in said:
            problems.append(f"{name}: {doc['status']} / {said!r}, expected {status} / {text!r}")
        if status == "failed" and not doc.get("error"):
            problems.append(f"{name}: failed without a reason")
    assert not problems, "\n".join(problems)
    for name, absent, idle in (("audio_only", "video", "scene"), ("video_only", "audio", "loudness")):
        assert docs[name]["absent_streams"] == [absent] and not docs[name]["warnings"]
        assert docs[name]["analyzers"][idle]["state"] == "not_applicable"
    assert docs["rotated_90"]["media"]["rotation"] == 90
    assert (docs["rotated_90"]["media"]["width"], docs["rotated_90"]["media"]["height"]) == (64, 96)
    assert docs["variable_frame_rate"]["analyzers"]["scene"]["received"] == 10
    assert docs["corrupt_middle"]["analyzers"]["scene"]["received"] > 0
    assert good_doc["status"] == "complete"
    dead = {
        e.source_topic for e in letters if isinstance(e, DeadLetter) and e.original == b"\xde\xad\xbe\xef"
    }
    assert dead == set(topics)
