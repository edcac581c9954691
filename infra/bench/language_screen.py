"""Does screening a stretch's language on 10 s of context make the same switch decisions as detecting it at
Whisper's full 30 s? (transcription's `_stretch_detector`, common/whisper_once.py `screen_language`)

    OMP_NUM_THREADS=2 python -m reelscope.infra.bench.language_screen --out docs/results/language-screen.json

Stretches: up to 50 Asterisk prompts of 2.5-8 s from each of four voice directories (English and Spanish;
asterisk-core-sounds-*-wav), plus espeak-ng sentences in six languages cut into 4 s pieces. Each is
detected both ways with the packaged Whisper base. For each window language W (en, es) a stretch is a
switch when detection names another language than W at probability >= 0.5 (speech_language's rule); the
screened rule detects at full length only when the screen names another language than W. Prints and
writes both rules' decisions per W, the accuracy of each context, and the CPU seconds each spent.
"""

from __future__ import annotations

import argparse
import glob
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
from faster_whisper.audio import pad_or_trim
from reelscope.analyzers.common.speech_language import MIN_PROBABILITY
from reelscope.analyzers.common.whisper_once import SCREEN_FRAMES
from reelscope.analyzers.transcription import TranscriptionAnalyzer
from reelscope.infra.bench.transcription_ab import RATE, pcm
from reelscope.infra.sample_media import spoken

VOICES = (("es", "es_MX_f_Allison"), ("en", "en_US_f_Allison"), ("es", "es"), ("en", "en"))
SENTENCES = {
    "en": "The weather was pleasant, so we walked along the river until the evening lights came on.",
    "fr": "Le temps était agréable, alors nous avons marché le long de la rivière jusqu'au soir.",
    "de": "Das Wetter war angenehm, also gingen wir am Fluss entlang, bis die Lichter angingen.",
    "es": "El tiempo era agradable, así que caminamos junto al río hasta que se encendieron las luces.",
    "it": "Il tempo era piacevole, così abbiamo camminato lungo il fiume fino a sera.",
    "pt": "O tempo estava agradável, então caminhamos ao longo do rio até a noite.",
}


def stretches(per_voice: int) -> list[tuple[str, str, np.ndarray]]:
    """(language, source, 16 kHz audio) of each stretch."""
    rng = random.Random(1)
    out: list[tuple[str, str, np.ndarray]] = []
    for language, voice in VOICES:
        files = sorted(glob.glob(f"/usr/share/asterisk/sounds/{voice}/*.wav"))
        rng.shuffle(files)
        taken = 0
        for path in files:
            if taken >= per_voice:
                break
            audio = pcm(path)
            if 2.5 * RATE <= len(audio) <= 8 * RATE:
                out.append((language, voice, audio))
                taken += 1
    for language, sentence in SENTENCES.items():
        audio = spoken(sentence, RATE, 175, language).astype(np.float32)
        for start in range(0, max(1, int(len(audio) / RATE) - 3), 2):
            out.append((language, "espeak-ng", audio[start * RATE : (start + 4) * RATE]))
    return out


def detect(model: Any, audio: np.ndarray, frames: int) -> tuple[str, float, float]:
    """Language, probability and CPU seconds of Whisper's detection on features padded to `frames`."""
    features = model.feature_extractor(audio)
    cpu = time.process_time()
    encoded = model.encode(pad_or_trim(features[:, : min(3000, features.shape[-1] - 1)], frames))
    token, probability = model.model.detect_language(encoded)[0][0]
    return str(token[2:-2]), float(probability), time.process_time() - cpu


def measure(per_voice: int) -> dict[str, Any]:
    analyzer = TranscriptionAnalyzer()
    analyzer.load()
    model = analyzer._model
    rows = []
    for language, source, audio in stretches(per_voice):
        screen, full = detect(model, audio, SCREEN_FRAMES), detect(model, audio, 3000)
        rows.append({"language": language, "source": source, "seconds": round(len(audio) / RATE, 2),
                     "screen": screen, "full": full})  # fmt: skip
    decisions = {}
    for window in ("en", "es"):
        for kind in ("switch", "same"):
            chosen = [r for r in rows if (r["language"] != window) == (kind == "switch")]
            full = [r["full"][0] != window and r["full"][1] >= MIN_PROBABILITY for r in chosen]
            screened = [r["screen"][0] != window and f for r, f in zip(chosen, full, strict=True)]
            decisions[f"window {window}, stretch {kind}"] = {
                "stretches": len(chosen),
                "full says switch": sum(full),
                "screened says switch": sum(screened),
                "same decision": sum(a == b for a, b in zip(full, screened, strict=True)),
            }
    return {
        "command": "python -m reelscope.infra.bench.language_screen",
        "stretches": len(rows),
        "decisions": decisions,
        "right language": {ctx: sum(r[ctx][0] == r["language"] for r in rows) for ctx in ("screen", "full")},
        "cpu_s": {ctx: round(sum(r[ctx][2] for r in rows), 1) for ctx in ("screen", "full")},
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-voice", type=int, default=50)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = measure(args.per_voice)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
