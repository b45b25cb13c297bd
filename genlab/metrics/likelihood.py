"""Held-out likelihood of any genlab model, in bits/dim over 8-bit pixels.

``average_metrics`` averages ``model.loss`` metrics over a split (the trainer's periodic
evaluation uses it); ``nll_bound_bpd`` averages a model's k-sample bound ``nll_bpd(x, k)``:
for the VAE the IWAE bound (Burda et al., arXiv 1509.00519), tighter than the ELBO and what
should be compared with a flow's bits/dim; for RealNVP k dequantization samples inside the
log (Ho et al., arXiv 1902.00275), where k=1 is the usual bits/dim.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch


def _batches(
    images: torch.Tensor, batch_size: int, device, memory_format=torch.contiguous_format, max_images: int | None = None
):
    """uint8 [N, C, S, S] -> float [B, C, S, S] batches in [0, 1] on ``device``."""
    n = len(images) if max_images is None else min(max_images, len(images))
    for start in range(0, n, batch_size):
        x = images[start : min(start + batch_size, n)].to(device).float().div_(255.0)
        yield x.contiguous(memory_format=memory_format)


@torch.no_grad()
def average_metrics(
    model,
    images: torch.Tensor,
    batch_size: int = 256,
    max_images: int | None = None,
    seed: int = 12345,
    autocast: contextlib.AbstractContextManager | None = None,
    memory_format=torch.contiguous_format,
) -> dict[str, float]:
    """Image-weighted means of ``model.loss`` metrics, in eval mode, with a fixed seed that
    leaves the caller's RNG stream untouched."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sums, n = {}, 0
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            for x in _batches(images, batch_size, device, memory_format, max_images):
                with autocast or contextlib.nullcontext():
                    _, m = model.loss(x)
                for k, v in m.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * len(x)
                n += len(x)
    finally:
        model.train(was_training)
    return {k: v / n for k, v in sums.items()}


@torch.no_grad()
def nll_bound_bpd(
    model, images: torch.Tensor, k: int = 1, batch_size: int = 64, max_images: int | None = None, seed: int = 0
) -> float:
    """Mean k-sample bound on -log2 p(x) / D (bits/dim); needs a family with ``default_eval_k > 0``."""
    if not model.default_eval_k:
        raise ValueError(f"{model.display_name} has no k-sample bound (nll_bpd)")
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    total, n = 0.0, 0
    for x in _batches(images, batch_size, device, max_images=max_images):
        total += model.nll_bpd(x, k=k, generator=g).sum().item()
        n += len(x)
    return total / n


@dataclass
class HeldOutBpd:
    bpd: float
    kind: str  # "IWAE bound, k=100" or "exact (1 dequantization)"
    images: int
    dataset: str


def held_out_bpd(model, dataset: str, k: int | None = None, max_images: int | None = None) -> HeldOutBpd:
    """Test-split bits/dim comparable across families: the model's k-sample bound (k defaults to its
    ``default_eval_k``: IWAE k=100 for the VAE, the exact likelihood of one dequantization for the flow),
    or the bits/dim of its loss for a family without one."""
    from ..data import load_dataset

    images = load_dataset(dataset, model.config.image_size).test
    n = min(len(images), max_images or len(images))
    k = k or model.default_eval_k
    if not k:
        value = average_metrics(model, images, max_images=max_images)["bpd"]
        return HeldOutBpd(value, model.loss_bpd_kind, n, dataset)
    return HeldOutBpd(nll_bound_bpd(model, images, k, max_images=max_images), model.bound_kind(k), n, dataset)
