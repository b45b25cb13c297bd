"""How big a model is before it exists: its parameters and the memory a batch takes, from PyTorch's meta device.

A config.json of 200 bytes can describe a model of a hundred billion parameters, and a form value can
ask for a batch that fills the machine. So a model is first built on the ``meta`` device, which records
shapes and allocates nothing (milliseconds, whatever the size), and one forward pass there counts the
bytes of every tensor it would produce. genlab refuses, in one sentence, what exceeds the limits below
before a single real byte is allocated: ``load_model``, the trainer, the CLI and the app all build
through :func:`check_model`.

The estimate of memory is deliberately simple and errs high: float32 weights, gradients and Adam's two
moments (16 bytes a parameter) for training, plus every intermediate tensor of the forward pass (the
graph keeps most of them for the backward pass, which produces as much again).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ..errors import ModelTooLarge
from ..settings import settings

BYTES_PER_PARAM_TRAINING = 16  # float32 weights, gradients, and Adam's exp_avg and exp_avg_sq
BYTES_PER_PARAM_INFERENCE = 4


class _CountBytes(TorchDispatchMode):
    """Sums the bytes of every tensor an operation returns (on the meta device: sizes only)."""

    def __init__(self):
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.bytes += t.numel() * t.element_size()
        return out


@dataclass(frozen=True)
class Limits:
    max_params: int  # GENLAB_MAX_PARAMS (GENLAB_PUBLIC_MAX_PARAMS in public mode)
    max_bytes: int  # GENLAB_MAX_MODEL_BYTES (GENLAB_PUBLIC_MAX_MODEL_BYTES): weights + optimizer + one batch


def limits() -> Limits:
    s = settings()
    if s.public:
        return Limits(min(s.max_params, s.public_max_params), min(s.max_model_bytes, s.public_max_model_bytes))
    return Limits(s.max_params, s.max_model_bytes)


def meta_model(cls, config) -> torch.nn.Module:
    """``cls(config)`` with shapes only: nothing is allocated."""
    with torch.device("meta"):
        return cls(config)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_bytes(model, batch: int, training: bool) -> int:
    """Bytes of the tensors one ``loss`` (training) or ``sample`` (inference) of ``batch`` images produces."""
    cfg = model.config
    counter = _CountBytes()
    with counter, torch.no_grad():
        if training:
            model.loss(torch.empty(batch, cfg.channels, cfg.image_size, cfg.image_size, device="meta"))
        else:
            model.sample(batch)
    return counter.bytes


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def _refuse(what: str, amount: str, limit: str, variable: str, advice: str) -> ModelTooLarge:
    return ModelTooLarge(f"{what} needs {amount}, over this app's limit of {limit} ({variable}); {advice}")


def check_model(
    cls,
    config,
    batch: int | None = None,
    training: bool = False,
    what: str = "this model",
    advice: str = "choose a smaller model or batch",
) -> int:
    """Refuse, before anything is allocated, a model over ``GENLAB_MAX_PARAMS`` or a model and ``batch``
    images over ``GENLAB_MAX_MODEL_BYTES``; return the parameter count."""
    lim, public = limits(), settings().public
    prefix = "GENLAB_PUBLIC_" if public else "GENLAB_"
    model = meta_model(cls, config)
    n = count_parameters(model)
    if n > lim.max_params:
        raise _refuse(what, f"{n:,} parameters", f"{lim.max_params:,}", prefix + "MAX_PARAMS", advice)
    if batch:
        per_param = BYTES_PER_PARAM_TRAINING if training else BYTES_PER_PARAM_INFERENCE
        need = n * per_param + forward_bytes(model, batch, training) * (2 if training else 1)
        if need > lim.max_bytes:
            doing = f"training on batches of {batch}" if training else f"drawing {batch} samples"
            amount, limit = f"about {_gib(need)}", _gib(lim.max_bytes)
            raise _refuse(f"{what}, {doing},", amount, limit, prefix + "MAX_MODEL_BYTES", advice)
    return n


__all__ = ["ModelTooLarge", "check_model", "limits"]
