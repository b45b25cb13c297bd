"""What the Sample and Compare pages compute, as pure functions of a model and a seed.

- Latent directions of a VAE ranked by their mean KL(q(z_i|x) || N(0, 1)) over test
  images: dimensions with ~0 KL are ignored by the decoder ("inactive units", Burda et
  al., arXiv 1509.00519, sec. 5.2), so those with the largest KL are the ones a slider
  visibly moves.
- Temperature strips as in Glow (Kingma & Dhariwal, arXiv 1807.03039, fig. 8): one row
  per temperature, the same noise in every column.
- Interpolation between the latents of two seeds, linear or spherical (slerp keeps the
  norm that a Gaussian latent concentrates on; White, arXiv 1609.04468).
"""

from __future__ import annotations

import io
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import make_grid

from .distributions import randn
from .errors import ConfigError
from .models.base import Temperature, eval_mode
from .models.sizing import check_model


def seeded_latents(model, n: int, seed: int, temperature: Temperature = 1.0) -> torch.Tensor:
    """n latents ~ N(0, T^2 I), identical for a given seed on any device: [n, *model.latent_shape]. One T per
    latent level (``model.latent_levels``) gives each level its own; the same seed draws the same unit noise."""
    g = torch.Generator().manual_seed(seed)
    return randn((n, *model.latent_shape), g, model.device) * model.temperature_scale(temperature)


@torch.no_grad()
def decode(model, z: torch.Tensor) -> torch.Tensor:
    """Latents -> images in [0, 1]: [n, *latent_shape] -> [n, C, H, W]."""
    return model.generate(z).float()


@torch.no_grad()
def sample(model, n: int, temperature: Temperature, seed: int) -> torch.Tensor:
    """``model.sample(n, temperature, generator=Generator().manual_seed(seed))``, in eval mode, as float."""
    if model.latent_shape is not None:  # the same images, from latents a slider can move
        return decode(model, seeded_latents(model, n, seed, temperature))
    with eval_mode(model):
        return model.sample(n, temperature, generator=torch.Generator().manual_seed(seed)).float()


def grid(images: torch.Tensor, nrow: int | None = None, scale: int = 1) -> Image.Image:
    """[n, C, H, W] in [0, 1] -> one PIL image, white 1-pixel gutters, nearest-neighbour upscaled."""
    nrow = nrow or int(math.ceil(math.sqrt(len(images))))
    g = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=1, pad_value=1.0)  # [3, H', W']
    arr = g.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    img = Image.fromarray(arr)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return img


def sample_grid(
    model, n: int, temperature: Temperature, seed: int, nrow: int | None, scale: int, out: str | Path
) -> Path:
    """``genlab sample``: ``n`` samples as one PNG grid at ``out`` (the grid's memory is checked first)."""
    check_model(type(model), model.config, batch=n, what=model.display_name, advice="draw fewer samples")
    if str(out).endswith(("/", os.sep)) or Path(out).is_dir():  # Path() would drop the trailing slash
        raise ConfigError(f"--out {out} is a folder; give the PNG file to write, e.g. {Path(out) / 'samples.png'}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid(sample(model, n, temperature, seed), nrow=nrow, scale=scale).save(out, format="PNG")
    return out


def png_bytes(img: Image.Image) -> bytes:
    """PNG at zlib level 1: a VAE 64×64 grid encodes in 6.8 ms instead of 16.4 ms (level 6, PIL's default) and
    is 12% larger; a flow's in 3.7 ms instead of 9.7 ms, 17% larger (docs/benchmarks.md, "PNG encoding")."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


# -- VAE latent directions ---------------------------------------------------------------------
@torch.no_grad()
def informative_dims(vae, images: torch.Tensor, k: int = 8, batch_size: int = 256) -> tuple[list[int], torch.Tensor]:
    """The k latent dimensions with the largest mean KL over ``images`` (uint8 [N, C, H, W]),
    and the mean KL of every dimension in nats, [Z]."""
    total, n = torch.zeros(vae.config.latent_dim, dtype=torch.float64), 0
    with eval_mode(vae):
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(vae.device).float().div(255)
            total += vae.latent_kl_per_dim(x).double().sum(0).cpu()
            n += len(x)
    kl = total / max(n, 1)
    return torch.argsort(kl, descending=True)[:k].tolist(), kl


def edit_latent(z: torch.Tensor, dims: list[int], offsets: list[float]) -> torch.Tensor:
    """z [Z] with ``offsets`` added along ``dims`` (in prior standard deviations)."""
    z = z.clone()
    for d, o in zip(dims, offsets):
        z[d] += o
    return z


STRIP_OFFSETS = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)  # prior standard deviations along one direction


def direction_strips(model, z: torch.Tensor, dims: list[int], offsets=STRIP_OFFSETS) -> torch.Tensor:
    """One row per latent dimension in ``dims``: z [Z] moved along it by each offset, the others held.
    Returns [len(dims) * len(offsets), C, H, W]."""
    rows = [edit_latent(z, [d], [o]) for d in dims for o in offsets]
    return decode(model, torch.stack(rows))


# -- strips and paths --------------------------------------------------------------------------
def temperature_strip(model, temperatures: list[float], n: int, seed: int) -> torch.Tensor:
    """Rows at each temperature from the same unit noise: [len(T) * n, C, H, W]."""
    eps = seeded_latents(model, n, seed, 1.0)
    return torch.cat([decode(model, t * eps) for t in temperatures])


def interpolation(
    model, seed_a: int, seed_b: int, steps: int = 8, method: str = "slerp", temperature: float = 1.0
) -> torch.Tensor:
    """Images along the path between the first latent of seed_a and that of seed_b: [steps, C, H, W]."""
    z0 = seeded_latents(model, 1, seed_a, temperature)[0]
    z1 = seeded_latents(model, 1, seed_b, temperature)[0]
    return model.interpolate(z0, z1, steps=steps, method=method).float()


# -- comparison ------------------------------------------------------------------------------
@dataclass
class SampleTiming:
    seconds_per_image: float
    n: int


def time_sampling(model, n: int = 64, repeats: int = 3, seed: int = 0) -> SampleTiming:
    """Best-of-``repeats`` wall time per image for one batch of n samples (after a warm-up batch)."""
    sample(model, min(n, 4), 1.0, seed)
    best = math.inf
    for _ in range(repeats):
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        sample(model, n, 1.0, seed)
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return SampleTiming(best / n, n)
