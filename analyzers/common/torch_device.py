"""Which torch device and dtype a configured model runs on: one rule for every analyzer that loads one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def resolve_device(name: str, owner: str) -> Any:
    """`auto` (or empty): cuda when available, else cpu; otherwise the named device, which must exist."""
    import torch

    if name in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{owner}.device is {name!r} but no CUDA device is available")
    return device


def resolve_dtype(name: str, device: Any, prefer_bfloat16: bool = False) -> Any:
    """`auto`: float32 on the CPU; on a GPU float16, or bfloat16 where supported when `prefer_bfloat16`
    (generative models, whose activations overflow float16 more easily)."""
    import torch

    if name != "auto":
        return getattr(torch, name)
    if device.type != "cuda":
        return torch.float32
    if prefer_bfloat16 and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op pool at `threads` for the block (0: left as it is), restored after.

    Models of many small ops (MTCNN's per-candidate crops, GE2E's LSTM steps) gain nothing from a second
    thread, and on a loaded machine that thread spins in OpenMP's barrier waiting for a core: MTCNN took
    10x the CPU seconds with two threads than with one (docs/benchmarks.md). Set per call, in the calling
    thread, because the pool is process-wide and other analyzers of the group may want more."""
    import torch

    before = torch.get_num_threads()
    if threads <= 0 or threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
