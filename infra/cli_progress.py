"""What `analyze` and `push --wait` show while they wait: rich bars on a terminal, plain lines otherwise.

Rich draws nothing when stdout is not a terminal, so a log file or a CI job saw no progress at all. There
the stages and every tenth of each analyzer's progress are one plain line each, on stderr, so that stdout
stays the command's answer (video ids, summaries) for whatever reads it.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any, TextIO


class Lines:
    """Plain progress lines: a stage, a video's status when it changes, an analyzer at each `step` %."""

    def __init__(self, stream: TextIO, step: int = 10) -> None:
        self.stream = stream
        self.step = step
        self.statuses: dict[str, str] = {}
        self.shown: dict[tuple[str, str], int] = {}

    def __enter__(self) -> Lines:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def say(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def stage(self, message: str) -> None:
        self.say(message)

    def status(self, video_id: str, status: str) -> None:
        if self.statuses.get(video_id) != status:
            self.statuses[video_id] = status
            self.say(f"{video_id}: {status}")

    def analyzer(self, video_id: str, name: str, received: int, expected: int | None) -> None:
        """`expected` is None (or 0) until the producer has counted the video's frames or chunks."""
        if expected:
            percent = min(100, received * 100 // expected)
            tick, shown = percent // self.step, f"{received}/{expected} ({percent}%)"
        else:
            tick, shown = -1, f"{received} so far"
        if self.shown.get((video_id, name)) != tick:
            self.shown[(video_id, name)] = tick
            self.say(f"{video_id} {name}: {shown}")


class Bars:
    """Rich progress bars per video and analyzer (the terminal's view); stages are not printed."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bars = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
        )
        self.tasks: dict[tuple[str, str], Any] = {}

    def __enter__(self) -> Bars:
        self.bars.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.bars.__exit__(kind, exc, tb)

    def stage(self, message: str) -> None:
        return None

    def status(self, video_id: str, status: str) -> None:
        return None

    def analyzer(self, video_id: str, name: str, received: int, expected: int | None) -> None:
        key = (video_id, name)
        if key not in self.tasks:
            self.tasks[key] = self.bars.add_task(f"{video_id[:28]} {name}", total=expected)
        self.bars.update(self.tasks[key], completed=received, total=expected)


def reporter() -> Lines | Bars:
    """Bars when stdout is a terminal, else plain lines on stderr."""
    return Bars() if sys.stdout.isatty() else Lines(sys.stderr)
