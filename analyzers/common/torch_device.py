"""Which torch device and dtype a configured model runs on: one rule for every analyzer that loads one."""

from __future__ import annotations

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
