"""The scheduler's policy on in-memory items: fairness, first seconds, bounded wait, shedding with
hysteresis, and commits that never pass an unprocessed offset."""

from __future__ import annotations

from collections import Counter

from reelscope.infra.core.settings import BatchSettings
from reelscope.schemas.events import ECONOMY_KEY, economy_stride, shed_payload, shed_stride
from reelscope.stream_processors.scheduler import Entry, Scheduler


class Feed:
    """Items of several videos on one partition each, published at `published`."""

    def __init__(self, sched: Scheduler) -> None:
        self.sched = sched
        self.next_offset: Counter[str] = Counter()

    def add(
        self, video: str, media_s: float, now: float, published: float | None = None, **kw: object
    ) -> Entry:
        entry = Entry(
            tp=("frames", video),
            offset=self.next_offset[video],
            video=video,
            stream=(video, "frames"),
            media_s=media_s,
            published=now if published is None else published,
            analyzers=("ocr_text",),
            **kw,  # type: ignore[arg-type]
        )
        self.next_offset[video] += 1
        self.sched.offer(entry, now)
        return entry


def scheduler(**kw: float) -> tuple[Scheduler, Feed]:
    sched = Scheduler(BatchSettings(**{"max_size": 4, **kw}), sheddable={"ocr_text"})
    return sched, Feed(sched)


def test_batches_take_videos_in_turn_not_in_fetch_order() -> None:
    sched, feed = scheduler(first_s=0.0)
    for i in range(20):  # video a's backlog was fetched first
        feed.add("a", 10.0 + i, now=0.0)
    for i in range(3):
        feed.add("b", 10.0 + i, now=0.0)
        feed.add("c", 10.0 + i, now=0.0)
    batch = sched.take(now=0.1)
    assert sorted(e.video for e in batch) == ["a", "a", "b", "c"]
    second = sched.take(now=0.2)
    third = sched.take(now=0.3)
    assert Counter(e.video for e in (batch + second + third)[:9]) == {"a": 3, "b": 3, "c": 3}
    taken = batch + second + third
    for video in "abc":  # each video's items keep their order
        offsets = [e.offset for e in taken if e.video == video]
        assert offsets == sorted(offsets)


def test_first_seconds_of_a_new_video_go_before_an_older_backlog() -> None:
    sched, feed = scheduler(first_s=2.0)
    for i in range(10):
        feed.add("old", 30.0 + i * 0.5, now=0.0)
    sched.origin["old"] = 0.0  # a video well past its start
    for i in range(4):
        feed.add("new", i * 0.5, now=1.0)
    batch = sched.take(now=1.0)
    assert [e.video for e in batch] == ["new"] * 4  # 0, 0.5, 1.0, 1.5 s: all within its first 2 s
    assert [e.video for e in sched.take(now=1.1)] == ["old"] * 4


def test_an_item_passed_over_longer_than_max_hold_goes_first() -> None:
    sched, feed = scheduler(first_s=2.0, max_hold_s=5.0)
    feed.add("old", 30.0, now=0.0)
    sched.origin["old"] = 0.0
    for i in range(8):
        feed.add(f"new{i}", 0.0, now=4.0)
    assert "old" not in [e.video for e in sched.take(now=4.5)]  # not yet overdue: first seconds win
    assert sched.take(now=5.0)[0].video == "old"  # overdue now: before the remaining first seconds


def test_when_everything_is_overdue_videos_still_share_the_batches() -> None:
    sched, feed = scheduler(first_s=0.0, max_hold_s=5.0, max_stride=1)
    for i in range(20):
        feed.add("a", 10.0 + i, now=0.0)  # fetched first: the oldest
    for i in range(4):
        feed.add("b", 10.0 + i, now=1.0)
    batch = sched.take(now=60.0)  # a backlog far past max_hold_s
    assert Counter(e.video for e in batch) == {"a": 2, "b": 2}


def test_shedding_steps_up_under_backlog_and_down_when_it_clears_with_hysteresis() -> None:
    sched, feed = scheduler(first_s=0.0, shed_above_s=4.0, shed_below_s=1.0, max_stride=4)
    sched.origin["v"] = 0.0
    for i in range(400):
        feed.add("v", 10.0 + i, now=0.0, published=0.0)
    strides = []
    for t in range(12):  # the oldest waiting item stays ~t s old: over the threshold from t=4 on
        sched.take(now=float(t))
        strides.append(sched.stride)
    assert strides[:4] == [1, 1, 1, 1]
    assert strides[4] == 2 and max(strides) == 4  # one step up per SETTLE_UP_S (1 s), capped at max_stride
    assert strides.index(4) == 5
    # the backlog clears: between the thresholds nothing changes, below shed_below_s it steps down
    while len(sched):
        sched.take(now=12.0)
    feed.add("v", 500.0, now=12.0, published=9.5)  # 2.5 s old: between below (1) and above (4)
    sched.take(now=12.0)
    assert sched.stride == 4
    feed.add("v", 501.0, now=14.0, published=13.5)
    sched.take(now=14.0)
    assert sched.stride == 2
    sched.take(now=16.0)  # nothing waits
    assert sched.stride == 1


def test_shed_items_carry_their_stride_and_do_not_fill_the_batch() -> None:
    sched, feed = scheduler(first_s=1.0, max_stride=4)
    sched.level = 2  # stride 4
    sched.changed = 0.0
    feed.add("v", 0.5, now=0.0, first=True)  # within the first second: never shed
    entries = [feed.add("v", 1.0 + i, now=0.0) for i in range(16)]
    final = feed.add("v", 17.0, now=0.0, final=True)
    start = sched.take(now=0.5)
    assert [e.media_s for e in start] == [0.5] and not start[0].skip  # the stream's first item, alone
    batch = sched.take(now=0.5)
    analyzed = [e for e in batch if not e.skip]
    shed = [e for e in batch if e.skip]
    assert len(analyzed) == 4  # max_size counts analyzed items only
    assert all(e.skip == {"ocr_text": 4} for e in shed)
    # the first second (0.5, 1.0) whole, then every 4th item of the video (phases 4, 8, 12)
    assert [e.media_s for e in analyzed] == [1.0, 4.0, 8.0, 12.0]
    rest = sched.take(now=0.6)
    assert final in rest and not final.skip  # a stream's final item is always analyzed
    assert len(start) + len(batch) + len(rest) == len(entries) + 2  # every item is accounted for


def test_first_items_of_new_streams_make_a_batch_of_their_own() -> None:
    """Four videos start at once behind a backlog: the next batch is their four first items only (small,
    analyzed at once), whatever max_size, then the backlog goes on in turn."""
    sched, feed = scheduler(first_s=0.0, max_size=32)
    for i in range(40):
        feed.add("old", 30.0 + i, now=0.0)
    for video in ("a", "b", "c", "d"):
        feed.add(video, 0.0, now=1.0, first=True)
        for i in range(1, 10):
            feed.add(video, i * 0.1, now=1.0)
    start = sched.take(now=1.0)
    assert sorted(e.video for e in start) == ["a", "b", "c", "d"] and all(e.first for e in start)
    after = sched.take(now=1.1)
    assert len(after) == 32 and {e.video for e in after} == {"old", "a", "b", "c", "d"}
    assert not any(e.first for e in after)


def test_a_stateful_or_audio_analyzer_is_never_shed() -> None:
    sched = Scheduler(BatchSettings(max_size=8, first_s=0.0), sheddable={"ocr_text"})
    sched.level, sched.changed = 3, 0.0
    for i in range(8):
        entry = Entry(("f", 0), i, "v", ("v", "frames"), float(i), 0.0, ("scene", "ocr_text"))
        sched.offer(entry, 0.0)
    batch = sched.take(now=0.0)
    assert all("scene" not in e.skip for e in batch)
    assert sum(1 for e in batch if "ocr_text" in e.skip) == 7


def test_items_taken_behind_carry_the_stride_for_economy_modes_except_in_the_first_seconds() -> None:
    """An analyzer that is not sheddable skips nothing: each of its items says the stride in force when it
    was taken (its economy mode's cue), 1 within the video's first seconds and while the group keeps up."""
    sched = Scheduler(BatchSettings(max_size=4, first_s=2.0, shed_above_s=1.0, max_stride=4), sheddable=set())
    entries = [
        Entry(("a", 0), i, "v", ("v", "audio-1"), float(i), 0.0, ("transcription",)) for i in range(12)
    ]
    for entry in entries:
        sched.offer(entry, 0.0)
    taken = [sched.take(now=t) for t in (0.5, 2.0, 3.0)]  # 0.5 s behind, then 2 and 3 s: stride 2, then 4
    assert [[e.economy for e in batch] for batch in taken] == [[1, 1, 1, 1], [2, 2, 2, 2], [4, 4, 4, 4]]
    assert not any(e.skip for batch in taken for e in batch)  # every item is analyzed, whatever its economy
    assert [e.media_s for e in taken[0][:2]] == [0.0, 1.0]  # the first seconds: in full


def test_commit_covers_only_the_contiguous_processed_prefix() -> None:
    sched, feed = scheduler(first_s=0.0)
    a = [feed.add("a", 10.0 + i, now=0.0) for i in range(4)]  # partition ("frames", "a"), offsets 0..3
    sched.passed(("frames", "a"), 4)  # a dead-lettered record after them
    sched.settle([a[1], a[3]])  # processed out of order
    assert sched.commits() == {}  # offset 0 is still waiting: nothing may be committed
    sched.settle([a[0]])
    assert sched.commits() == {("frames", "a"): 2}  # 0 and 1; 2 is not processed yet
    sched.settle([a[2]])
    assert sched.commits() == {("frames", "a"): 5}  # 2, 3 and the dead-lettered 4
    assert sched.commits() == {}  # nothing new


def test_shed_marker_round_trip() -> None:
    assert shed_stride(shed_payload(4)) == 4
    assert shed_stride({"text": "x"}) == 0
    assert shed_stride({"_shed": "not a dict"}) == 0
    assert economy_stride({"words": [], ECONOMY_KEY: {"stride": 2}}) == 2
    assert economy_stride({"words": []}) == 0 and economy_stride({ECONOMY_KEY: 2}) == 0


def test_a_batch_holds_what_the_group_analyzes_in_max_batch_s() -> None:
    """Batch length is latency: at 0.25 s per item a batch holds 4 items for max_batch_s 1 s; a fast group
    (a GPU's) keeps max_size; before any batch is measured, max_size."""
    sched, feed = scheduler(first_s=0.0, max_size=32, max_batch_s=1.0)
    for i in range(100):
        feed.add("a", 10.0 + i, now=0.0)
    assert len(sched.take(now=0.1)) == 32
    sched.observe(32, 8.0)  # 0.25 s per analyzed item
    assert len(sched.take(now=0.2)) == 4
    sched.observe(4, 0.004 * 4)
    for _ in range(20):  # the average follows a group that got fast
        sched.observe(32, 32 * 0.004)
    assert len(sched.take(now=0.3)) == 32
    unbounded, feed = scheduler(first_s=0.0, max_size=32, max_batch_s=0.0)
    for i in range(40):
        feed.add("a", 10.0 + i, now=0.0)
    unbounded.observe(32, 8.0)
    assert len(unbounded.take(now=0.1)) == 32
