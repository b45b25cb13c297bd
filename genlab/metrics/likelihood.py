"""Held-out likelihood of any genlab model, in bits/dim over 8-bit pixels: the one evaluation path.

``average_metrics`` averages ``model.loss`` metrics over a split (the trainer's periodic
evaluation uses it); ``nll_bound_bpd`` averages a model's k-sample bound ``nll_bpd(x, k)``:
for the VAE the IWAE bound (Burda et al., arXiv 1509.00519), tighter than the ELBO and what
should be compared with a flow's bits/dim; for RealNVP k dequantization samples inside the
log (Ho et al., arXiv 1902.00275), where k=1 is the usual bits/dim.

``evaluate`` puts the two together under one key scheme (``test_bpd``, ``test_bpd_kind``,
``iwae_k{K}_bpd``, ...): what ``genlab eval`` prints, what ``genlab export`` writes into
metrics.json and the model card, and what Compare shows, so every page shows the same figure
for the same evaluation.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ..data import load_dataset
from ..errors import ConfigError


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
def per_image_bpd(
    model, images: torch.Tensor, k: int = 1, batch_size: int = 64, max_images: int | None = None, seed: int = 0
) -> torch.Tensor:
    """Each image's k-sample bound on -log2 p(x) / D (bits/dim), float64 [N]; needs a family with
    ``default_eval_k > 0``. The same seed gives the same figures whatever the batch size."""
    if not model.default_eval_k:
        raise ConfigError(f"{model.display_name} has no k-sample bound (nll_bpd)")
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    out = [
        model.nll_bpd(x, k=k, generator=g).double().cpu()
        for x in _batches(images, batch_size, device, max_images=max_images)
    ]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def nll_bound_bpd(
    model, images: torch.Tensor, k: int = 1, batch_size: int = 64, max_images: int | None = None, seed: int = 0
) -> float:
    """Mean k-sample bound on -log2 p(x) / D (bits/dim) over the first ``max_images`` images."""
    return per_image_bpd(model, images, k, batch_size, max_images, seed).mean().item()


BOUND_IMAGES = 1000  # test images of a k-sample bound, by default: IWAE k=100 costs 100 decoder passes per image


def bound_key(k: int) -> str:
    """The metrics key of a k-sample bound, for every family (the flow's is importance-weighted over k
    dequantizations, the VAE's over k posterior samples)."""
    return f"iwae_k{k}_bpd"


def bound_keys(metrics: dict) -> dict[int, str]:
    """The k-sample bounds a metrics dict holds, as {k: key}."""
    out = {}
    for key in metrics:
        k = key[len("iwae_k") : -len("_bpd")] if key.startswith("iwae_k") and key.endswith("_bpd") else ""
        if k.isdigit():
            out[int(k)] = key
    return dict(sorted(out.items()))


def images_for(model, dataset: str, split: str = "test") -> torch.Tensor:
    """``dataset``'s ``split`` at ``model``'s image size, uint8 [N, C, S, S]; refused when its channels differ."""
    images = load_dataset(dataset, model.config.image_size).split(split)
    _check_channels(model, images, dataset)
    return images


def _check_channels(model, images: torch.Tensor, what: str) -> None:
    if images.shape[1] != model.config.channels:
        raise ConfigError(
            f"{what} has {images.shape[1]} colour channel(s) and this model {model.config.channels}: "
            "evaluate it on a data set like the one it was trained on"
        )


def evaluate(
    model,
    images: torch.Tensor,
    k: int | None = None,
    max_images: int | None = None,
    bound_images: int | None = None,
    batch_size: int = 64,
) -> dict:
    """The held-out evaluation: the means of the loss's metrics on the first ``max_images`` images (default
    all), as ``test_*``, and, when ``k`` > 1 and the family has one, the k-sample bound on the first
    ``bound_images`` of them (IWAE k=100 costs 100 decoder passes per image) with the loss's bits/dim on those
    same images, so that the two are compared like for like. ``k`` defaults to the family's ``default_eval_k``;
    k=1 is the loss's own bound, so it adds nothing."""
    _check_channels(model, images, "this set of images")
    n = len(images) if max_images is None else min(max_images, len(images))
    loss = average_metrics(model, images, batch_size, n)
    out = {"test_images": n, **{f"test_{name}": v for name, v in loss.items()}, "test_bpd_kind": model.loss_bpd_kind}
    k = model.default_eval_k if k is None else k
    if k > 1 and model.default_eval_k:
        nb = n if bound_images is None else min(n, bound_images)
        out[bound_key(k)] = nll_bound_bpd(model, images, k, batch_size, nb)
        out["iwae_images"] = nb
        out["elbo_bpd_iwae_images"] = loss["bpd"] if nb == n else average_metrics(model, images, batch_size, nb)["bpd"]
    return out


@dataclass
class HeldOutBpd:
    bpd: float
    kind: str  # "IWAE bound, k=100" or "exact (1 dequantization)"
    images: int
    dataset: str


def held_out_bpd(model, dataset: str, k: int | None = None, max_images: int | None = None) -> HeldOutBpd:
    """Test-split bits/dim comparable across families, through ``evaluate``: the model's k-sample bound when it
    has one tighter than its loss (k defaults to its ``default_eval_k``: IWAE k=100 for the VAE), else the
    bits/dim of its loss (the flow's exact likelihood of one dequantization)."""
    m = evaluate(model, images_for(model, dataset), k, max_images)
    bounds = bound_keys(m)
    if bounds:
        k, key = next(iter(bounds.items()))
        return HeldOutBpd(m[key], model.bound_kind(k), m["iwae_images"], dataset)
    return HeldOutBpd(m["test_bpd"], m["test_bpd_kind"], m["test_images"], dataset)
