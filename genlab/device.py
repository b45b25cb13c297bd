"""``--device auto|cpu|cuda[:N]``: CUDA when present, never required."""

from __future__ import annotations

import torch


def resolve_device(spec: str = "auto") -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {spec} was asked for, but this machine has no CUDA GPU; use --device cpu or auto")
    return torch.device(spec)
