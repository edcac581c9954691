"""Which fetched items a processor group analyzes next, which it sheds, and how far it may commit.

Pure bookkeeping (no Kafka, no clock of its own), so the policy is testable in memory:
- fair: batches take one item per video in turn from what has been fetched, so a video that arrived with
  a large backlog does not make the others wait behind it;
- first seconds first: a stream's first item is analyzed in a batch of first items only (small, so
  fast), and items within `first_s` of a video's start go before everything else that is not overdue,
  so every analyzer shows a first result soon after a video starts;
- bounded wait: an item passed over for `max_hold_s` goes before those that were not (videos still in
  turn among themselves);
- stated load shedding: while the oldest waiting item is older than `shed_above_s` (since it was
  published), the stride doubles (up to `max_stride`), and it halves again once the oldest is younger than
  `shed_below_s` (hysteresis: a step up per SETTLE_UP_S, down per SETTLE_S). With stride k only every k-th item of a video is
  analyzed by the sheddable analyzers (stateless frame analyzers); the others are returned with the stride
  so the processor publishes them as shed, not silently dropped;
  analyzers that cannot skip items (stateful ones) but have a cheaper mode analyze each item taken at a
  stride above 1 in that mode, stated in its result (`Entry.economy`);
- bounded batch length: a batch holds what the group analyzes in `max_batch_s` at its measured pace (each
  result goes out as soon as it is made, but what arrives meanwhile waits for the batch to end);
- contiguous commit: a partition's offset advances only over a prefix of settled offsets, so reordering
  never commits past an item that was not processed (at-least-once survives a kill mid-batch).
A video's items keep their order per stream (stateful analyzers see them in order).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from reelscope.infra.core.settings import BatchSettings

SETTLE_S = 2.0
"""Seconds before the stride steps down after a step: a step shows in the backlog only after a few
batches, and a stride lowered too soon lets the backlog build again."""
SETTLE_UP_S = 1.0
"""Seconds between two steps up: under a burst (several videos pushed at once) the full stride is reached
within 3 s of crossing `shed_above_s`, before the oldest items' latency has doubled (it took 6 s)."""


@dataclass
class Entry:
    """One fetched input item."""

    tp: Hashable
    offset: int
    video: str
    stream: Hashable
    """The ordered stream of the video it belongs to (its frames, one audio channel)."""
    media_s: float
    """Its timestamp in the media."""
    published: float
    """When it was published (epoch s): its age is the latency it will show."""
    analyzers: tuple[str, ...]
    """The group's analyzers that sampled it."""
    first: bool = False
    final: bool = False
    """The first or final item of its stream: never shed."""
    item: Any = None
    """What the processor needs to analyze it."""
    fetched: float = 0.0
    skip: dict[str, int] = field(default_factory=dict)
    """Analyzer -> the stride it was shed under (set by `take`)."""
    economy: int = 1
    """The stride in force when it was taken (1 in a video's first seconds): analyzers with an economy
    mode use it for items taken at a stride above 1 (set by `take`)."""


class Scheduler:
    def __init__(self, policy: BatchSettings, sheddable: set[str]) -> None:
        self.policy = policy
        self.sheddable = sheddable
        self.queues: dict[str, dict[Hashable, deque[Entry]]] = {}
        """Video -> stream -> waiting items, in arrival order (videos in round-robin order)."""
        self.origin: dict[str, float] = {}
        self.seen: dict[tuple[str, str], int] = defaultdict(int)
        """(video, analyzer) -> items of the video taken for the analyzer so far (the stride's phase)."""
        self.offsets: dict[Hashable, deque[int]] = defaultdict(deque)
        self.settled: dict[Hashable, set[int]] = defaultdict(set)
        self.level = 0
        self.changed = float("-inf")
        self.waiting = 0
        self.item_s: float | None = None
        """Seconds the group has been taking per analyzed item (a moving average, see `observe`)."""

    # intake and commit ----------------------------------------------------------------------------------
    def offer(self, entry: Entry, now: float) -> None:
        entry.fetched = now
        self.offsets[entry.tp].append(entry.offset)
        self.origin[entry.video] = min(self.origin.get(entry.video, entry.media_s), entry.media_s)
        self.queues.setdefault(entry.video, {}).setdefault(entry.stream, deque()).append(entry)
        self.waiting += 1

    def passed(self, tp: Hashable, offset: int) -> None:
        """A fetched offset with nothing to analyze (dead-lettered, a stream's stale tail): settled now."""
        self.offsets[tp].append(offset)
        self.settled[tp].add(offset)

    def settle(self, entries: list[Entry]) -> None:
        """These items' results are acknowledged."""
        for e in entries:
            self.settled[e.tp].add(e.offset)

    def forget_video(self, video: str) -> None:
        """The video's stream state ends (it finished): its counters and origin go."""
        self.origin.pop(video, None)
        for key in [k for k in self.seen if k[0] == video]:
            del self.seen[key]

    def commits(self) -> dict[Hashable, int]:
        """Per partition whose settled prefix grew: the offset to commit (one past the prefix)."""
        out = {}
        for tp, offsets in self.offsets.items():
            done = self.settled[tp]
            last = None
            while offsets and offsets[0] in done:
                last = offsets.popleft()
                done.discard(last)
            if last is not None:
                out[tp] = last + 1
        return out

    def __len__(self) -> int:
        return self.waiting

    # batch length ---------------------------------------------------------------------------------------
    def observe(self, analyzed: int, seconds: float) -> None:
        """A batch of `analyzed` items took `seconds`: the per-item figure follows it (weight 1/4)."""
        if analyzed <= 0:
            return
        per = seconds / analyzed
        self.item_s = per if self.item_s is None else 0.75 * self.item_s + 0.25 * per

    def batch_size(self) -> int:
        """Analyzed items in the next batch: what fits in `max_batch_s` at the measured pace, in [1, max_size]."""
        size = max(1, self.policy.max_size)
        if self.policy.max_batch_s <= 0 or not self.item_s:
            return size
        return max(1, min(size, int(self.policy.max_batch_s / self.item_s)))

    # shedding -------------------------------------------------------------------------------------------
    @property
    def stride(self) -> int:
        return min(2**self.level, max(1, self.policy.max_stride))

    def backlog_s(self, now: float) -> float:
        """Age of the oldest waiting item since it was published; 0 when none waits."""
        fronts = [q[0].published for streams in self.queues.values() for q in streams.values() if q]
        return now - min(fronts) if fronts else 0.0

    def adjust(self, now: float) -> None:
        """One hysteresis step of the stride: up at most every SETTLE_UP_S, down SETTLE_S after a step."""
        since = now - self.changed
        if since < SETTLE_UP_S:
            return
        backlog = self.backlog_s(now)
        if backlog >= self.policy.shed_above_s and self.stride < self.policy.max_stride:
            self.level += 1
        elif backlog <= self.policy.shed_below_s and self.level > 0 and since >= SETTLE_S:
            self.level -= 1
        else:
            return
        self.changed = now

    def _shed(self, entry: Entry) -> None:
        early = self._early(entry)
        entry.economy = 1 if early else self.stride
        for name in entry.analyzers:
            if name not in self.sheddable:
                continue
            phase = self.seen[(entry.video, name)]
            self.seen[(entry.video, name)] += 1
            if self.stride > 1 and phase % self.stride and not (early or entry.first or entry.final):
                entry.skip[name] = self.stride

    # choice ---------------------------------------------------------------------------------------------
    def _pop(self, video: str) -> Entry:
        """The video's next item: the front of its stream that has waited longest."""
        streams = self.queues[video]
        stream = min((s for s, q in streams.items() if q), key=lambda s: streams[s][0].fetched)
        entry = streams[stream].popleft()
        if not streams[stream]:
            del streams[stream]
        if not streams:
            del self.queues[video]
        self.waiting -= 1
        return entry

    def _fronts(self) -> list[tuple[str, Entry]]:
        out = []
        for video, streams in self.queues.items():
            stream = min((s for s, q in streams.items() if q), key=lambda s: streams[s][0].fetched)
            out.append((video, streams[stream][0]))
        return out

    def _early(self, entry: Entry) -> bool:
        origin = self.origin.get(entry.video)
        return origin is not None and entry.media_s < origin + self.policy.first_s

    def _next(self, now: float, turn: list[str]) -> str | None:
        """The video whose item goes next: overdue first, then first seconds, then the rest; in turn among
        videos within each class (under a backlog that outlasts `max_hold_s` everything is overdue, and the
        videos still share the batches)."""
        fronts = dict(self._fronts())
        overdue = [v for v, e in fronts.items() if now - e.fetched >= self.policy.max_hold_s]
        early = [v for v, e in fronts.items() if self._early(e)]
        for group in (overdue, early, list(fronts)):
            if group:
                return next((v for v in turn if v in group), min(group, key=lambda v: fronts[v].fetched))
        return None

    def _starts(self) -> list[tuple[str, Hashable]]:
        """(video, stream) of each stream whose next waiting item is its first."""
        return [(v, s) for v, streams in self.queues.items() for s, q in streams.items() if q[0].first]

    def _take_starts(self, starts: list[tuple[str, Hashable]]) -> list[Entry]:
        """A batch of streams' first items alone: a small batch is analyzed in a fraction of a full one's
        time, so each new video's first result does not wait for 31 other items (and on a loaded CPU
        that is seconds)."""
        batch = []
        for video, stream in starts:
            streams = self.queues[video]
            entry = streams[stream].popleft()
            if not streams[stream]:
                del streams[stream]
            if not streams:
                del self.queues[video]
                if entry.final:
                    self.forget_video(video)
            self.waiting -= 1
            self._shed(entry)
            batch.append(entry)
        return batch

    def take(self, now: float) -> list[Entry]:
        """The next batch: up to `max_size` items to analyze, plus any items shed whole (free). Streams'
        first items, when any wait, make a batch of their own."""
        self.adjust(now)
        starts = self._starts()
        if starts:
            return self._take_starts(starts[: max(1, self.policy.max_size)])
        batch: list[Entry] = []
        analyzed = 0
        turn: list[str] = []
        size = self.batch_size()
        while analyzed < size and self.queues:
            if not turn:
                turn = list(self.queues)
            video = self._next(now, turn)
            if video is None:
                break
            if video in turn:
                turn.remove(video)
            entry = self._pop(video)
            self._shed(entry)
            batch.append(entry)
            if set(entry.analyzers) - entry.skip.keys():
                analyzed += 1
            if video in self.queues:  # the video goes to the back of the rotation
                self.queues[video] = self.queues.pop(video)
            elif entry.final:
                self.forget_video(video)  # its last item, and nothing of it waits
        return batch
