"""RealNVP: a multi-scale normalizing flow with affine coupling layers.

- Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP", arXiv 1605.08803:
  the architecture (§3.6: per scale, 3 checkerboard couplings, squeeze, 3 channel-wise
  couplings, factor out half; the last scale has 4 checkerboard couplings) and the logit
  preprocessing with alpha = 0.05 (§4.1).
- Theis, van den Oord, Bethge, "A note on the evaluation of generative models",
  arXiv 1511.01844, §3.1: uniform dequantization, which makes the continuous density a
  lower bound on the discrete 8-bit likelihood, hence bits/dim over 8-bit pixels.
- Kingma & Dhariwal, "Glow", arXiv 1807.03039: temperature T scales the base Gaussian's
  standard deviation; zero-initialised last layers start every coupling at the identity.
- Ho et al., "Flow++", arXiv 1902.00275, §3.1: ``nll_bpd(x, k)`` averages k dequantization
  samples inside the log (an importance-weighted bound; k=1 is the usual bits/dim).

``first_split`` is an ablation of §3.6's factor-out, measured here (docs/benchmarks.md, "RealNVP on
emoji-faces"): on 98 emoji faces the half factored out at 16×16 held every eye and mouth, as
independent Gaussian latents, so samples scattered brown blobs over the disk; with the first split
at the second scale the same features pass through the 8×8 and 4×4 couplings and samples have two
eyes and a mouth.

The s/t networks are weight-normalised ResNets with no batch statistics, so a sample's
log-determinant never depends on the rest of its batch and train and eval modes compute the
same function.

Data convention: ``forward``/``inverse`` act on continuous images in (0, 1); ``loss``,
``log_prob`` and ``nll_bpd`` take 8-bit images (k/255) and dequantize them first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from ..config import check, setting
from ..distributions import LOG2, randn, standard_normal_log_prob
from ..errors import ConfigError
from .base import GenerativeModel, Temperature, TrainDefaults, eval_mode


@dataclass
class RealNVPConfig:
    image_size: int = setting(32, flag=False, min=4, max=1024)  # from the data set
    channels: int = setting(3, flag=False, min=1, max=4)
    num_scales: int = setting(
        2, "scales with a squeeze and factor-out, plus the final one; 32×32 allows up to 4", min=1, max=8
    )
    num_blocks: int = setting(4, "residual blocks per s/t network (paper: 8 for CIFAR-10)", min=1, max=64)
    features: int = setting(32, "feature maps in the s/t networks (paper: 64)", min=1, max=1024)
    alpha: float = setting(0.05, "logit preprocessing: y = logit(alpha + (1 - 2 alpha) x)", above=0, max=0.4999)
    first_split: int = setting(
        0,
        "the first scale that factors out half of its channels (paper: 0, every scale); later splits send "
        "fine detail through the coarse couplings instead of into independent latents",
        min=0,
        max=7,
    )

    def __post_init__(self):
        check(self)
        if self.num_scales < 1:
            raise ConfigError("RealNVP needs num_scales >= 1")
        if self.image_size % (2 ** (self.num_scales - 1)) or self.image_size < 2**self.num_scales:
            raise ConfigError(
                f"RealNVP image_size {self.image_size} cannot be squeezed {self.num_scales - 1} times "
                f"and still hold a 2×2 checkerboard"
            )
        if not 0 < self.alpha < 0.5:
            raise ConfigError("RealNVP alpha must lie in (0, 0.5)")
        if self.first_split > max(0, self.num_scales - 1):
            raise ConfigError(
                f"RealNVP first_split {self.first_split} is past its last scale that can split "
                f"({self.num_scales - 2 if self.num_scales > 1 else 'none'}); {self.num_scales - 1} means no split"
            )


def _wn_conv(c_in: int, c_out: int, k: int) -> nn.Module:
    return weight_norm(nn.Conv2d(c_in, c_out, k, padding=k // 2))


class ResBlock(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.conv1 = _wn_conv(features, features, 3)
        self.conv2 = _wn_conv(features, features, 3)

    def forward(self, h):
        return h + self.conv2(F.relu(self.conv1(F.relu(h))))


class STNet(nn.Module):
    """[B, c_in, H, W] -> (log-scale, shift), each [B, c_out, H, W]."""

    def __init__(self, c_in: int, c_out: int, features: int, num_blocks: int):
        super().__init__()
        self.inp = _wn_conv(c_in, features, 3)
        self.blocks = nn.Sequential(*[ResBlock(features) for _ in range(num_blocks)])
        self.out = nn.Conv2d(features, 2 * c_out, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # every coupling starts as the identity
        nn.init.zeros_(self.out.bias)
        # log-scale = scale * tanh(raw): bounded, so one bad step cannot overflow exp()
        self.scale = nn.Parameter(torch.ones(1, c_out, 1, 1))

    def forward(self, h):
        h = F.relu(self.blocks(self.inp(h)))
        # the last convolution in float32 even under bf16 autocast: a shift rounded to bf16 (8 bits of
        # mantissa) is off by ~0.01 in logit space, wider than MNIST's sharp pixel densities there
        with torch.autocast("cpu" if h.is_meta else h.device.type, enabled=False):  # meta: genlab.models.sizing
            raw_s, t = self.out(h.to(self.out.weight.dtype)).chunk(2, dim=1)
        return self.scale * torch.tanh(raw_s), t


def checkerboard(h: int, w: int, parity: int, device=None) -> torch.Tensor:
    """[1, 1, H, W] mask, 1 where (i + j + parity) is even: those entries condition the rest."""
    i = torch.arange(h, device=device)[:, None]
    j = torch.arange(w, device=device)[None, :]
    return ((i + j + parity) % 2 == 0).float()[None, None]


class CheckerboardCoupling(nn.Module):
    def __init__(self, channels: int, parity: int, cfg: RealNVPConfig):
        super().__init__()
        self.parity = parity
        self.net = STNet(channels, channels, cfg.features, cfg.num_blocks)

    def _st(self, x):
        b = checkerboard(x.shape[2], x.shape[3], self.parity, x.device).to(x.dtype)
        s, t = self.net(x * b)
        return s * (1 - b), t * (1 - b)

    def forward(self, x):  # -> (y, logdet [B])
        s, t = self._st(x)
        return x * torch.exp(s) + t, s.flatten(1).sum(1)

    def inverse(self, y):
        s, t = self._st(y)  # the conditioning half is unchanged, so s and t are recomputed exactly
        return (y - t) * torch.exp(-s)


class ChannelCoupling(nn.Module):
    def __init__(self, channels: int, parity: int, cfg: RealNVPConfig):
        super().__init__()
        self.parity = parity
        self.net = STNet(channels // 2, channels - channels // 2, cfg.features, cfg.num_blocks)

    def _split(self, x):
        a, b = x.chunk(2, dim=1)
        return (a, b) if self.parity == 0 else (b, a)

    def _join(self, cond, changed):
        return torch.cat([cond, changed] if self.parity == 0 else [changed, cond], dim=1)

    def forward(self, x):
        cond, other = self._split(x)
        s, t = self.net(cond)
        return self._join(cond, other * torch.exp(s) + t), s.flatten(1).sum(1)

    def inverse(self, y):
        cond, other = self._split(y)
        s, t = self.net(cond)
        return self._join(cond, (other - t) * torch.exp(-s))


class Scale(nn.Module):
    """One scale: checkerboard couplings, then (unless last) squeeze, channel-wise couplings, split."""

    def __init__(self, channels: int, last: bool, cfg: RealNVPConfig, split: bool = True):
        super().__init__()
        self.last = last
        self.split = split and not last  # factor out half of the channels after the squeeze
        n_cb = 4 if last else 3
        self.checker = nn.ModuleList([CheckerboardCoupling(channels, i % 2, cfg) for i in range(n_cb)])
        self.channel = nn.ModuleList([] if last else [ChannelCoupling(4 * channels, i % 2, cfg) for i in range(3)])


class RealNVP(GenerativeModel):
    model_type = "realnvp"
    config_class = RealNVPConfig
    display_name = "RealNVP flow"
    train_defaults = TrainDefaults(batch_size=64, epochs=None, max_steps=1000)
    default_temperature = 0.7  # flows look best a little below T=1 (Kingma & Dhariwal, Glow, sec. 6)
    prefers_channels_last = True  # NHWC convolutions are ~7% faster per step on the dev CPU
    default_eval_k = 1  # the exact likelihood of one dequantization
    loss_bpd_kind = "exact, 1 dequantization"

    def __init__(self, config: RealNVPConfig | None = None):
        super().__init__(config or RealNVPConfig())
        c, scales = self.config.channels, []
        for i in range(self.config.num_scales):
            last = i == self.config.num_scales - 1
            scales.append(Scale(c, last, self.config, split=i >= self.config.first_split))
            c = 2 * c if scales[-1].split else 4 * c  # squeeze gives 4c channels; a split factors out half
        self.scales = nn.ModuleList(scales)

    @property
    def num_dims(self) -> int:
        c = self.config
        return c.channels * c.image_size * c.image_size

    @property
    def shape(self) -> tuple[int, int, int]:
        c = self.config
        return (c.channels, c.image_size, c.image_size)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return self.shape

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        with eval_mode(self):
            return self.inverse(z).clamp(0, 1).float()

    @classmethod
    def bound_kind(cls, k: int) -> str:
        return "exact (1 dequantization)" if k == 1 else f"{k} dequantizations inside the log"

    # -- preprocessing: [0, 1] <-> logit space ------------------------------------------------
    def to_logit(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """y = logit(alpha + (1 - 2 alpha) x) and log|dy/dx| summed per image: [B, C, H, W] -> (y, [B])."""
        a = self.config.alpha
        p = a + (1 - 2 * a) * x
        y = torch.log(p) - torch.log1p(-p)
        logdet = (math.log(1 - 2 * a) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(1)
        return y, logdet

    def from_logit(self, y: torch.Tensor) -> torch.Tensor:
        a = self.config.alpha
        return (torch.sigmoid(y) - a) / (1 - 2 * a)

    def dequantize(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """8-bit images k/255 -> (k + u) / 256 with u ~ U[0, 1): continuous, in [0, 1)."""
        k = torch.round(x * 255)
        gen_device = generator.device if generator is not None else x.device
        u = torch.rand(x.shape, generator=generator, device=gen_device, dtype=x.dtype).to(x.device)
        return (k + u) / 256

    # -- the flow ---------------------------------------------------------------------------
    def _flow(self, h, i: int):
        """Scale i onwards: [B, C, H, W] -> (z of the same shape, logdet [B])."""
        sc = self.scales[i]
        logdet = torch.zeros(h.shape[0], device=h.device, dtype=h.dtype)
        for layer in sc.checker:
            h, ld = layer(h)
            logdet = logdet + ld
        if sc.last:
            return h, logdet
        h = F.pixel_unshuffle(h, 2)  # squeeze: [B, C, H, W] -> [B, 4C, H/2, W/2]
        for layer in sc.channel:
            h, ld = layer(h)
            logdet = logdet + ld
        if not sc.split:  # everything goes on to the next scale
            z, ld = self._flow(h, i + 1)
            return F.pixel_shuffle(z, 2), logdet + ld
        z_out, h_rest = h.chunk(2, dim=1)  # factor out half of the channels
        z_rest, ld = self._flow(h_rest, i + 1)
        return F.pixel_shuffle(torch.cat([z_out, z_rest], dim=1), 2), logdet + ld

    def _flow_inverse(self, z, i: int):
        sc = self.scales[i]
        if not sc.last:
            if sc.split:
                z_out, z_rest = F.pixel_unshuffle(z, 2).chunk(2, dim=1)
                h = torch.cat([z_out, self._flow_inverse(z_rest, i + 1)], dim=1)
            else:
                h = self._flow_inverse(F.pixel_unshuffle(z, 2), i + 1)
            for layer in reversed(sc.channel):
                h = layer.inverse(h)
            z = F.pixel_shuffle(h, 2)
        for layer in reversed(sc.checker):
            z = layer.inverse(z)
        return z

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Continuous images in (0, 1) -> (z of x's shape, log|det dz/dx| [B]), logit step included."""
        y, ld_pre = self.to_logit(x)
        z, ld_flow = self._flow(y, 0)
        return z, ld_pre + ld_flow

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """z -> continuous images; values can leave [0, 1] slightly where sigmoid(y) < alpha."""
        # weight norm otherwise recomputes g·v/|v| on every weight access: sampling is ~1.5× faster cached
        with parametrize.cached():
            return self.from_logit(self._flow_inverse(z, 0))

    # -- likelihood ---------------------------------------------------------------------------
    def log_prob(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """log density (nats) of 8-bit images after one uniform dequantization, on the [0, 1] scale: [B]."""
        z, logdet = self(self.dequantize(x, generator))
        return standard_normal_log_prob(z.flatten(1)) + logdet

    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None):
        # bpd = (-log p(y) - log|det dy/dx| + D log 256) / (D ln 2), x dequantized to [0, 1]
        D = self.num_dims
        log_px = self.log_prob(x, generator)
        bpd = (-log_px + D * math.log(256)) / (D * LOG2)
        loss = bpd.mean()
        return loss, {"loss": loss.detach(), "bpd": loss.detach()}

    @torch.no_grad()
    def nll_bpd(self, x: torch.Tensor, k: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """-log2 P(x) / D bound with k dequantization samples inside the log: [B]. k=1 is ``loss``'s bpd."""
        with eval_mode(self):
            lp = torch.stack([self.log_prob(x, generator) for _ in range(k)])  # [k, B]
        log_px = torch.logsumexp(lp, 0) - math.log(k)
        D = self.num_dims
        return (-log_px + D * math.log(256)) / (D * LOG2)

    # -- generation ---------------------------------------------------------------------------
    # -- latent levels: the halves factored out at each scale, then the last scale's ----------------
    @property
    def latent_levels(self) -> list[tuple[int, ...]]:
        c, s, out = self.config.channels, self.config.image_size, []
        for sc in self.scales:
            if sc.last:
                out.append((c, s, s))
            elif sc.split:  # squeezed to [4c, s/2, s/2], half of it factored out here
                out.append((2 * c, s // 2, s // 2))
                c, s = 2 * c, s // 2
            else:
                c, s = 4 * c, s // 2
        return out

    def level_index(self) -> torch.Tensor:
        return self._level_map(0, self.config.channels, self.config.image_size, 0)

    def _level_map(self, i: int, c: int, s: int, level: int) -> torch.Tensor:
        """Scale i's part of z, long [c, s, s], holding each entry's level: ``_flow``'s assembly of z, on labels."""
        sc = self.scales[i]
        if sc.last:
            return torch.full((c, s, s), level)
        if sc.split:
            inner = torch.cat(
                [torch.full((2 * c, s // 2, s // 2), level), self._level_map(i + 1, 2 * c, s // 2, level + 1)]
            )
        else:
            inner = self._level_map(i + 1, 4 * c, s // 2, level)
        return F.pixel_shuffle(inner[None], 2)[0]  # [4c, s/2, s/2] -> [c, s, s]

    @torch.no_grad()
    def sample(self, n: int, temperature: Temperature = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """x = f^-1(z), z ~ N(0, T^2 I); T=0 gives the image of z=0; one T per latent level (``latent_levels``,
        coarsest last) cools or heats each level alone. -> [n, C, H, W] in [0, 1]."""
        z = randn((n, *self.shape), generator, self.device) * self.temperature_scale(temperature)
        with eval_mode(self):
            return self.inverse(z).clamp(0, 1)
