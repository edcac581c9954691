"""Language identification per window for `reelscope eval`: a generated clip of English speech (espeak-ng)
then Spanish speech (a real voice: Debian's asterisk-core-sounds-es-wav prompts), with a known switch time.
Each 1 s window of speech is right when the transcript segment overlapping it most carries the language
spoken there; a window that no segment covers (speech lost) is wrong."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
from reelscope.infra.bench.eval_audio import read_audio, write_wav
from reelscope.infra.bench.eval_text import transcription_ready
from reelscope.infra.bench.scorecard import Score, document

RATE = 16_000
ENGLISH = (
    "Seven curious children quietly explored an abandoned lighthouse near windy cliffs. Their teacher "
    "carried bright lanterns, maps, and warm sandwiches."
)
SPANISH_PROMPTS = ("agent-alreadyon.wav", "agent-incorrect.wav")
"""'Ese agente ya ha sido autenticado. Por favor ingrese su número de agente seguido por la tecla de
número.' and 'Clave incorrecta. Por favor, ingrese ...' (the package's core-sounds-es.txt), 14 s."""
GAP_S = 0.5
MIN_ACCURACY = 0.9
SILENT_RMS = 0.01
"""A window this quiet holds no speech and is not scored."""


def _voice(path: Path) -> np.ndarray:
    from scipy.signal import resample_poly

    audio, rate = read_audio(path)
    return resample_poly(audio.mean(axis=0), RATE, rate)


def switch_clip(folder: Path) -> tuple[Path, float] | None:
    """(English then Spanish speech at 16 kHz, the time the Spanish starts); None without the sources."""
    spanish = [Path("/usr/share/asterisk/sounds/es") / name for name in SPANISH_PROMPTS]
    if shutil.which("espeak-ng") is None or not all(p.is_file() for p in spanish):
        return None
    wav = folder / "english.wav"
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(wav), ENGLISH], check=True)  # list args, no shell
    english = _voice(wav)
    switch_s = (english.size + GAP_S * RATE) / RATE
    clip = np.concatenate([english, np.zeros(int(GAP_S * RATE)), *(_voice(p) for p in spanish)])
    return write_wav(folder / "en_es.wav", clip, RATE), switch_s


def window_languages(
    segments: list[dict[str, Any]], audio: np.ndarray, switch_s: float
) -> list[tuple[float, str, str | None]]:
    """(window start, language spoken, language reported) for each 1 s window of speech that lies on one
    side of the switch."""
    out = []
    for k in range(audio.size // RATE):
        start, end = float(k), float(k + 1)
        if start < switch_s - GAP_S < end or start < switch_s < end:
            continue
        if np.sqrt(np.mean(audio[k * RATE : (k + 1) * RATE] ** 2)) < SILENT_RMS:
            continue
        overlaps = [(min(end, s["end_s"]) - max(start, s["start_s"]), s.get("language")) for s in segments]
        best = max(overlaps, default=(0.0, None))
        out.append((start, "en" if end <= switch_s else "es", best[1] if best[0] > 0 else None))
    return out


def score_language(folder: Path) -> list[Score]:
    made = switch_clip(folder) if transcription_ready() else None
    if made is None:
        return [Score("language per window", "pending", "needs espeak-ng, the es prompts, a model", None, {})]
    path, switch_s = made
    segments = document(path, ["transcription"])["transcript"]["segments"]
    audio = read_audio(path)[0][0]
    windows = window_languages(segments, audio, switch_s)
    right = sum(spoken == reported for _, spoken, reported in windows)
    accuracy = right / max(1, len(windows))
    wrong = [(start, spoken, reported) for start, spoken, reported in windows if spoken != reported]
    return [
        Score(
            "language identification per 1 s window (English, then Spanish)",
            f"{right}/{len(windows)} ({accuracy:.0%})",
            f"≥ {MIN_ACCURACY:.0%}",
            accuracy >= MIN_ACCURACY,
            {"switch_s": round(switch_s, 2), "wrong": wrong},
        )
    ]
