"""The transcription analyzer's CPU seconds on two tracks, for a before/after comparison between checkouts.

Run it with each checkout's own interpreter, alternating (each side its own process, so no model or cache
is shared):

    for r in 1 2 3; do for side in OLD NEW; do (cd $side && OMP_NUM_THREADS=2 .venv/bin/python -m \
        reelscope.infra.bench.transcription_ab CLIP > /tmp/asr-$side-$r.json); done; done

Tracks: CLIP's audio (the bench clip: a tone, then silence), and 60 s of speech: espeak-ng reading PASSAGE
(English), the shared media's two real English recordings, then Asterisk's Spanish prompts (a language
switch). Prints per track the CPU and wall seconds, the words and the language of each window. `--economy K`
hands every chunk over as taken at stride K (the speech group behind): transcription's economy mode.
"""

from __future__ import annotations

import argparse
import glob
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import numpy as np
from reelscope.analyzers.base import AudioItem
from reelscope.analyzers.transcription import TranscriptionAnalyzer
from reelscope.infra.bench.scorecard import SHARED_MEDIA
from reelscope.infra.sample_media import spoken

RATE = 16_000
PASSAGE = (
    "Seven curious children quietly explored an abandoned lighthouse near windy cliffs. Their teacher "
    "carried bright lanterns, maps, and warm sandwiches. Suddenly, thunder rumbled over distant mountains "
    "while heavy rain soaked every wooden bench outside. Nobody panicked; instead they sang cheerful songs "
    "until morning sunshine returned, painting golden patterns across calm ocean waves."
)
"""About 22 s of espeak-ng speech at its default rate in which no word repeats (tests/test_transcription.py
uses it for seams: a doubled word is a seam duplicate)."""
SPANISH = "/usr/share/asterisk/sounds/es/*.wav"


def pcm(path: Path | str) -> np.ndarray:
    """16 kHz mono float32, as the producer's chunks carry it."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    parts: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            parts += [f.to_ndarray().ravel() for f in resampler.resample(frame)]
        parts += [f.to_ndarray().ravel() for f in resampler.resample(None)]
    return np.concatenate(parts).astype(np.float32) / 32768


def tracks(clip: Path) -> dict[str, np.ndarray]:
    english = np.round(spoken(PASSAGE, RATE, 175, "en-us") * 32767) / 32768  # via int16, as pcm()
    speech = [english, pcm(SHARED_MEDIA / "stereo_diarization.wav"), pcm(SHARED_MEDIA / "hotwords.mp3")]
    speech += [pcm(p) for p in sorted(glob.glob(SPANISH))[:12]]
    mixed = np.concatenate(speech)[: 60 * RATE].astype(np.float32)
    return {
        "bench clip audio (tone + silence), 30 s": pcm(clip),
        f"speech: espeak-ng English + 2 real English + Asterisk Spanish, {len(mixed) / RATE:.0f} s": mixed,
    }


def chunks(video: str, audio: np.ndarray) -> list[AudioItem]:
    n = -(-len(audio) // RATE)
    return [
        AudioItem(
            video,
            i,
            float(i),
            min(i + 1, len(audio) / RATE),
            audio[i * RATE : (i + 1) * RATE],
            RATE,
            first=i == 0,
            final=i == n - 1,
        )
        for i in range(n)
    ]


def measure(clip: Path, economy: int = 1) -> dict[str, Any]:
    analyzer = TranscriptionAnalyzer()
    analyzer.load()
    out: dict[str, Any] = {}
    for k, (name, audio) in enumerate(tracks(clip).items()):
        items = [replace(item, economy=economy) for item in chunks(f"v{k}", audio)]
        cpu, wall = time.process_time(), time.perf_counter()
        payloads = [p for b in range(0, len(items), 32) for p in analyzer.analyze(items[b : b + 32])]
        out[name] = {
            "cpu_s": round(time.process_time() - cpu, 3),
            "wall_s": round(time.perf_counter() - wall, 3),
            "words": [w["word"] for p in payloads for w in p.get("words", [])],
            "languages": [p.get("language") for p in payloads if "window" in p],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", type=Path, help="a video whose audio is the first track (the bench clip)")
    parser.add_argument(
        "--economy", type=int, default=1, help="the stride the chunks were taken at (> 1: economy)"
    )
    args = parser.parse_args()
    print(json.dumps(measure(args.clip, args.economy)))


if __name__ == "__main__":
    main()
