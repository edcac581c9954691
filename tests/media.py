"""Test media: the generators in infra/sample_media.py and the real clips in ../shared/media."""

from __future__ import annotations

from pathlib import Path

from reelscope.infra.sample_media import cut_clip, textured, tone, with_text, write_video

SHARED_MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"

__all__ = ["SHARED_MEDIA", "cut_clip", "textured", "tone", "with_text", "write_video"]
