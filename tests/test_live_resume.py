"""The `id:` a finished video's `complete` carries, as a resuming SSE client compares it (sinks/live.py)."""

from __future__ import annotations

from typing import Any

from reelscope.sinks.live import ProgressHub


def state(status: str) -> dict[str, Any]:
    return {"video_id": "v", "status": status}


def poll(hub: ProgressHub, videos: dict[str, dict[str, Any]], changed: dict[str, int], at_ms: int) -> None:
    """What ProgressHub._run does with one changed snapshot."""
    first_poll = hub.polled_ms == 0
    hub.polled_ms = at_ms
    hub._note_finished(videos, changed, first_poll)
    hub.videos, hub.changed_ms = videos, changed


def test_first_seen_finished_after_an_earlier_poll_gets_that_polls_id() -> None:
    # a stream saw progress of other videos at 1000; this video first shows up already complete at 2000,
    # with a stored completion time (500) older than ids clients hold: its `complete` went out with 2000
    hub = ProgressHub(store=None)  # type: ignore[arg-type]
    poll(hub, {}, {}, 1000)
    poll(hub, {"v": state("complete")}, {"v": 500}, 2000)
    assert hub.completion_ms("v", 500) == 2000
    # later snapshots keep the id the complete was sent with
    poll(hub, {"v": state("complete"), "w": state("processing")}, {"v": 500, "w": 2500}, 3000)
    assert hub.completion_ms("v", 500) == 2000


def test_seen_running_then_finished_gets_the_finishing_polls_id() -> None:
    hub = ProgressHub(store=None)  # type: ignore[arg-type]
    poll(hub, {"v": state("processing")}, {"v": 900}, 1000)
    poll(hub, {"v": state("complete")}, {"v": 950}, 2000)
    assert hub.completion_ms("v", 950) == 2000


def test_the_processes_first_poll_uses_the_stored_completion_time() -> None:
    # no client can hold an id of this process yet: what finished before it started keeps its stored time
    hub = ProgressHub(store=None)  # type: ignore[arg-type]
    poll(hub, {"v": state("complete")}, {"v": 500}, 2000)
    assert hub.completion_ms("v", 500) == 500
    assert hub.completion_ms("gone", 123) == 123
