"""Resemblyzer's GE2E speaker encoder (`pretrained.pt` in the Resemblyzer wheel: a 3-layer LSTM over 40 mel
bands, 256-d embeddings) run with torch alone: the wheel's own code imports librosa and webrtcvad, which
are not needed for its exact input.

Resemblyzer's pipeline, reproduced: the volume raised (never lowered) to -30 dBFS; partial utterances of
160 frames (1.6 s) every 77 frames, the waveform zero-padded to cover the last one (a 1 s chunk is one
partial); per partial, librosa's `melspectrogram` defaults as Resemblyzer calls it: a centred, zero-padded
400-point STFT with a periodic Hann window and a 160-sample hop, power spectrum, 40 Slaney-scale mel bands
(0-8 kHz, Slaney area norm), no log; the embedding is the L2-normed mean of the partials' embeddings.
Resemblyzer also trims long pauses with webrtcvad; here chunks under the loudness gate are skipped instead.
Checked once by hand: the mel frames equal librosa 0.11's to 1.2e-7 (relative), and the embeddings equal
Resemblyzer 0.1.4's own `embed_utterance` (fed these frames) to 2e-7.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from reelscope.analyzers.common.torch_device import torch_threads

SAMPLE_RATE = 16_000
N_FFT = 400
HOP = 160
MELS = 40
PARTIAL_FRAMES = 160
FRAME_STEP = round(SAMPLE_RATE / 1.3 / HOP)
"""77 frames: Resemblyzer's default rate of 1.3 partials a second."""
MIN_COVERAGE = 0.75
TARGET_DBFS = -30.0


def weights_path() -> Path:
    """`pretrained.pt` inside the Resemblyzer wheel, found without importing it (its import needs librosa)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("speakers: the packaged GE2E encoder needs the Resemblyzer wheel")
    return Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"


def _hz_to_slaney(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3)
    return np.where(hz >= 1000.0, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27), linear)


def _slaney_to_hz(mel: np.ndarray) -> np.ndarray:
    return np.where(mel >= 15.0, 1000.0 * np.exp(np.log(6.4) / 27 * (mel - 15.0)), mel * 200.0 / 3)


def mel_filters() -> np.ndarray:
    """[40, 201] librosa.filters.mel(sr=16000, n_fft=400, n_mels=40) (Slaney scale and norm)."""
    fft_hz = np.linspace(0.0, SAMPLE_RATE / 2, 1 + N_FFT // 2)
    mel_hz = _slaney_to_hz(np.linspace(_hz_to_slaney(0.0), _hz_to_slaney(SAMPLE_RATE / 2), MELS + 2))
    widths = np.diff(mel_hz)
    ramps = mel_hz[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return (weights * (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]).astype(np.float32)


_FILTERS = mel_filters()
_WINDOW = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)


def mel_frames(wave: np.ndarray) -> np.ndarray:
    """[frames, 40] mel power spectrogram, as Resemblyzer's `wav_to_mel_spectrogram` (librosa) makes it."""
    padded = np.pad(np.asarray(wave, dtype=np.float64), N_FFT // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * _WINDOW, n=N_FFT)) ** 2
    return (power @ _FILTERS.T).astype(np.float32)


def louder(wave: np.ndarray) -> np.ndarray:
    """The waveform raised to -30 dBFS RMS when quieter (Resemblyzer's `normalize_volume`, increase only)."""
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if wave.size else 0.0
    if rms <= 0.0:
        return wave
    change_db = TARGET_DBFS - 20 * np.log10(rms)
    return wave * (10 ** (change_db / 20)) if change_db > 0 else wave


def partials(wave: np.ndarray) -> np.ndarray:
    """[k, 160, 40] mel partials of one utterance (Resemblyzer's `compute_partial_slices`)."""
    n_frames = int(np.ceil((len(wave) + 1) / HOP))
    starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + FRAME_STEP + 1), FRAME_STEP))
    coverage = (len(wave) - starts[-1] * HOP) / (PARTIAL_FRAMES * HOP)
    if coverage < MIN_COVERAGE and len(starts) > 1:
        starts = starts[:-1]
    needed = (starts[-1] + PARTIAL_FRAMES) * HOP
    wave = np.pad(wave, (0, max(0, needed - len(wave))))
    mel = mel_frames(wave)
    return np.stack([mel[s : s + PARTIAL_FRAMES] for s in starts])


class Ge2eEncoder:
    """The LSTM and its projection, loaded from the wheel's checkpoint on the CPU (it is 17 MB; 1 s of
    audio takes ~10 ms)."""

    def __init__(self, threads: int = 1) -> None:
        import torch
        from torch import nn

        self._threads = threads
        """torch threads for the LSTM (0: the process's pool): one, as its steps are small (see
        torch_device.torch_threads; 30 chunks took 0.7 CPU-s with one thread, 4.8-6.3 with two, loaded)."""
        self._torch = torch
        self.lstm = nn.LSTM(MELS, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, 256)
        state = torch.load(weights_path(), map_location="cpu", weights_only=True)["model_state"]
        self.lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
        self.linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})
        self.lstm.eval()
        self.linear.eval()

    def embed(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """[n, 256] unit embeddings, one per utterance."""
        torch = self._torch
        per_wave = [partials(louder(np.asarray(w, dtype=np.float32).reshape(-1))) for w in waves]
        batch = torch.from_numpy(np.concatenate(per_wave))
        with torch.inference_mode(), torch_threads(self._threads):
            _, (hidden, _) = self.lstm(batch)
            raw: Any = torch.relu(self.linear(hidden[-1]))
            raw = raw / torch.norm(raw, dim=1, keepdim=True).clamp_min(1e-12)
        rows = raw.numpy()
        out, i = [], 0
        for p in per_wave:
            mean = rows[i : i + len(p)].mean(axis=0)
            out.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
            i += len(p)
        return np.asarray(out, dtype=np.float32)
