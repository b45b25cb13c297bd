"""Likelihoods and unit conversions shared by the model families.

- Discretized logistic likelihood for 8-bit pixels: Salimans, Karpathy, Chen,
  Kingma, "PixelCNN++", arXiv 1701.05517, §2.1. It is the exact probability of
  the 8-bit bin, so it equals the density of uniformly dequantized pixels
  (Theis et al., arXiv 1511.01844) that is constant inside each bin; this is
  what makes a VAE's ELBO in bits/dim directly comparable to a flow's.
- Bits/dim: -log2 p(x) / D over the discrete 8-bit data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import ConfigError

LOG2 = math.log(2.0)
BIN = 1.0 / 255.0  # width of one 8-bit bin when pixels are k/255 in [0, 1]


def nats_to_bpd(nll_nats: torch.Tensor | float, num_dims: int):
    """Negative log-likelihood in nats per image -> bits per dimension."""
    return nll_nats / (num_dims * LOG2)


def discretized_logistic_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log P(x) for pixels ``x`` = k/255 under a logistic discretized to 256 bins on [0, 1].

    The end bins take the tails (k=0 gets (-inf, 0.5/255], k=255 gets [254.5/255, inf)),
    so the 256 probabilities sum to one. Elementwise; all tensors broadcast to x's shape.

    With a = (x - 1/510 - mean)/s, b = (x + 1/510 - mean)/s and w = b - a = (1/255)/s,

        sigmoid(b) - sigmoid(a) = sigmoid(b) * sigmoid(-a) * (1 - exp(-w)),

    so log P is a sum of three terms that are each exact in float32 in both tails: no
    cancelling difference of CDFs, no midpoint approximation, and fewer kernels than either.
    """
    inv_s = torch.exp(-log_scale)
    centered = x - mean
    log_cdf_upper = F.logsigmoid(inv_s * (centered + BIN / 2))  # log sigmoid(b); 0 for the top bin
    log_sf_lower = F.logsigmoid(inv_s * (BIN / 2 - centered))  # log sigmoid(-a); 0 for the bottom bin
    log_width = torch.log(-torch.expm1(-BIN * inv_s))  # log(1 - e^-w); 0 for either end bin
    top, bottom = x > 1 - BIN / 2, x < BIN / 2
    zero = torch.zeros((), dtype=log_width.dtype, device=x.device)
    return (
        torch.where(top, zero, log_cdf_upper)
        + torch.where(bottom, zero, log_sf_lower)
        + torch.where(top | bottom, zero, log_width)
    )


def coupled_channel_means(x: torch.Tensor, mean: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """PixelCNN++'s coupled colour channels (Salimans et al., §2.2), for an RGB pixel's discretized logistics:
    green's mean moves with red's deviation from its own mean, blue's with red's and green's,

        mu_g' = mu_g + alpha * (x_r - mu_r),   mu_b' = mu_b + beta * (x_r - mu_r) + gamma * (x_g - mu_g),

    so p(r) p(g | r) p(b | r, g) is a normalised distribution over the 256^3 colours of a pixel. Taken
    about the means rather than about x alone (as in the paper), the image of the means is unchanged: it
    is still what the decoder shows. x, mean: [B, 3, H, W]; coeffs [B, 3, H, W] = (alpha, beta, gamma)."""
    r, g, b = mean.unbind(1)
    alpha, beta, gamma = coeffs.unbind(1)
    dr, dg = x[:, 0] - r, x[:, 1] - g
    return torch.stack([r, g + alpha * dr, b + beta * dr + gamma * dg], dim=1)


@dataclass
class DiagonalGaussian:
    """q(z|x) = N(mean, diag(exp(logvar))); shapes [B, D]."""

    mean: torch.Tensor
    logvar: torch.Tensor

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.mean + self.std * randn_like(self.mean, generator)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Sum over the last dimension: [..., D] -> [...]."""
        return (-0.5 * (LOG2PI + self.logvar + (z - self.mean) ** 2 / torch.exp(self.logvar))).sum(-1)

    def kl_to_standard_normal(self) -> torch.Tensor:
        """KL(q || N(0, I)) in closed form, [B, D] -> [B]."""
        return self.kl_per_dim().sum(-1)

    def kl_per_dim(self) -> torch.Tensor:
        return 0.5 * (self.mean**2 + torch.exp(self.logvar) - 1.0 - self.logvar)


LOG2PI = math.log(2 * math.pi)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension."""
    return (-0.5 * (LOG2PI + z**2)).sum(-1)


def randn_like(t: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return randn(t.shape, generator=generator, device=t.device, dtype=t.dtype)


def randn(shape, generator: torch.Generator | None = None, device=None, dtype=None) -> torch.Tensor:
    """``torch.randn`` that draws on the generator's device, then moves to ``device``.

    A CPU generator then gives the same numbers whether the model is on the CPU or a GPU.
    """
    gen_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gen_device, dtype=dtype).to(device)


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between [D] vectors at fractions t [T] -> [T, D] (White 2016, arXiv 1609.04468)."""
    a, b = z0.flatten(), z1.flatten()
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    t = t[:, None]
    if omega.abs() < 1e-6:  # nearly parallel: slerp degenerates to lerp
        out = (1 - t) * a + t * b
    else:
        out = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
    return out.reshape(len(t), *z0.shape)


def interpolate_latents(z0: torch.Tensor, z1: torch.Tensor, steps: int, method: str = "slerp") -> torch.Tensor:
    t = torch.linspace(0, 1, steps, device=z0.device, dtype=z0.dtype)
    if method == "slerp":
        return slerp(z0, z1, t)
    if method == "linear":
        return torch.lerp(z0[None], z1[None], t.reshape(-1, *([1] * z0.dim())))
    raise ConfigError(f"unknown interpolation method {method!r}; use 'linear' or 'slerp'")
