"""Which analyzers want which frame, at what size: each frame is decoded and encoded once, at the largest
size any analyzer that samples it asks for, and carries the names of those analyzers."""

from __future__ import annotations

from dataclasses import dataclass, field

from reelscope.analyzers.base import Analyzer

_EPS = 1e-6


@dataclass
class FramePlan:
    """Per-video sampling state: the next PTS at which each rate-limited analyzer wants a frame."""

    analyzers: dict[str, type[Analyzer]]
    next_due: dict[str, float] = field(default_factory=dict)

    def targets(self, pts_s: float) -> list[str]:
        """Analyzers that sample the frame at pts_s (call in PTS order)."""
        chosen = []
        for name, cls in self.analyzers.items():
            fps = cls.sampling.fps
            if fps is None:
                chosen.append(name)
                continue
            due = self.next_due.get(name)
            if due is None or pts_s >= due - _EPS:
                chosen.append(name)
                interval = 1.0 / fps
                due = pts_s if due is None else due
                while due <= pts_s + _EPS:
                    due += interval
                self.next_due[name] = due
        return chosen

    def max_side(self, targets: list[str]) -> int:
        return max(self.analyzers[name].sampling.max_side for name in targets)


def audio_targets(
    analyzers: dict[str, type[Analyzer]], split: bool
) -> tuple[list[str], list[str], list[str]]:
    """(analyzers fed the mono mix, analyzers fed per-channel chunks, analyzers fed the whole source at its
    own rate) for a video."""
    wants = {n: c.sampling.audio_channels for n, c in analyzers.items()}
    mix = [n for n, w in wants.items() if w == "mix" or (w == "split" and not split)]
    per_channel = [n for n, w in wants.items() if split and w == "split"]
    source = [n for n, w in wants.items() if w == "source"]
    return mix, per_channel, source
