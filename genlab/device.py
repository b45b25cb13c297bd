"""``--device auto|cpu|cuda[:N]``: CUDA when present, never required."""

from __future__ import annotations

import functools
import re

import torch

from .errors import ConfigError


def resolve_device(spec: str = "auto") -> torch.device:
    """auto, cpu, cuda or cuda:N as a torch device; anything else (meta, a typo) or CUDA on a machine without
    a GPU is a ValueError whose sentence says what to use."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not re.fullmatch(r"cpu|cuda(:\d{1,3})?", spec):
        raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N; got {spec[:40]!r}")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {spec} was asked for, but this machine has no CUDA GPU; use --device cpu or auto")
    return torch.device(spec)


def has_fast_bf16(device: torch.device) -> bool:
    """Whether bf16 matrix kernels beat float32 here: CUDA, or a CPU with AVX512-BF16 or AMX tiles.
    Elsewhere bf16 is emulated on the CPU and autocast would slow training down."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and _cpu_has_native_bf16()


@functools.cache  # asked on every training step; the CPU does not change
def _cpu_has_native_bf16() -> bool:
    # torch exposes these probes only under private names; a torch without them gets float32
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, p, lambda: False)() for p in probes)


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on ``device`` when asked for and fast there; otherwise a no-op context."""
    on = enabled and has_fast_bf16(device)
    return torch.autocast(device.type if on else "cpu", dtype=torch.bfloat16, enabled=on)


def precision(device: torch.device, amp: bool) -> str:
    """What the training steps compute in: recorded in run.json and the model card."""
    return "bf16 autocast" if amp and has_fast_bf16(device) else "float32"
