"""A convolutional VAE for 32×32 and 64×64 images.

- Kingma & Welling, "Auto-Encoding Variational Bayes", arXiv 1312.6114.
- Burda, Grosse, Salakhutdinov, "Importance Weighted Autoencoders", arXiv 1509.00519
  (``nll_bpd``: the IWAE bound, a tighter estimate of -log p(x) as k grows).
- Higgins et al., "beta-VAE", ICLR 2017 (``beta``; 1 gives the true ELBO).

The decoder outputs a discretized logistic per subpixel (``genlab.distributions``)
whose mean is squashed into [0, 1], the data's range, so reconstructions, samples and
the likelihood all live where the data does. Bits/dim are over 8-bit pixels and
comparable with RealNVP's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..config import check, setting
from ..distributions import (
    LOG2,
    DiagonalGaussian,
    coupled_channel_means,
    discretized_logistic_log_prob,
    nats_to_bpd,
    randn,
    standard_normal_log_prob,
)
from ..errors import ConfigError
from .base import GenerativeModel, Temperature, TrainDefaults, eval_mode


@dataclass
class VAEConfig:
    image_size: int = setting(64, flag=False, min=8, max=1024)  # from the data set: a power of two >= 8
    channels: int = setting(3, flag=False, min=1, max=4)
    latent_dim: int = setting(128, "dimensions of z", min=1, max=4096)
    width: int = setting(32, "channels of the first conv; doubles at each downsampling", min=1, max=1024)
    max_width: int = setting(256, "cap on the channels of any conv", min=1, max=4096)
    beta: float = setting(
        1.0, "KL weight in the training loss; metrics always report the beta=1 ELBO", min=0, max=10000
    )
    min_log_scale: float = setting(
        -7.0, "floor of the decoder logistic's log-scale (-7: a quarter of a bin)", min=-20, max=5
    )
    # Where the data sits in the end bins (white backgrounds, black MNIST), a wide logistic scores well
    # wherever its location is, so the location -- the image we show -- drifts (green faces, grey strokes).
    # A ceiling of -2.5 (scale <= 0.08, ~21 levels) keeps it on the data.
    max_log_scale: float = setting(
        0.0, "ceiling of the decoder's log-scale (0: none; -2.5 keeps the mean on the data)", min=-20, max=5
    )
    # Independent logistics let each colour channel of an uncertain pixel settle on a different mode: red on
    # a brown eye, green on the yellow face around it, and the mean shows a green dot (the emoji VAEs' smears).
    coupled_channels: bool = setting(
        False,
        "RGB only: PixelCNN++'s coupled colour channels (green's mean follows red's pixel, blue's red's and "
        "green's), so each pixel's colour is one decision and the shown mean stays on the data's colours",
    )

    def __post_init__(self):
        check(self)
        n = self.image_size
        if n < 8 or n & (n - 1):
            raise ConfigError(f"VAE image_size must be a power of two >= 8, got {n}")
        if self.latent_dim < 1 or self.width < 1 or self.channels < 1:
            raise ConfigError("VAE latent_dim, width and channels must be positive")
        if self.max_log_scale and self.max_log_scale <= self.min_log_scale:
            raise ConfigError(
                f"max_log_scale ({self.max_log_scale:g}) must be above min_log_scale ({self.min_log_scale:g}), "
                "or 0 for no ceiling"
            )
        if self.coupled_channels and self.channels != 3:
            raise ConfigError(f"coupled_channels needs RGB images; these have {self.channels} channel(s)")


def _widths(cfg: VAEConfig) -> list[int]:
    n_down = int(math.log2(cfg.image_size // 4))  # down to a 4×4 feature map
    return [min(cfg.width * 2**i, cfg.max_width) for i in range(n_down)]


def _block(c_in: int, c_out: int, transpose: bool) -> nn.Sequential:
    conv = (nn.ConvTranspose2d if transpose else nn.Conv2d)(c_in, c_out, 4, stride=2, padding=1, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True))


class Encoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        w = _widths(cfg)
        self.convs = nn.Sequential(*[_block(c_in, c_out, False) for c_in, c_out in zip([cfg.channels] + w[:-1], w)])
        self.head = nn.Linear(w[-1] * 16, 2 * cfg.latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.convs(2 * x - 1).flatten(1)  # [B, C, H, W] in [0,1] -> centred -> [B, w*16]
        # float32 out of mixed precision: the KL and the sampling noise need full precision
        mean, logvar = self.head(h).float().chunk(2, dim=1)  # [B, Z] each
        return mean, logvar


class Decoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        w = _widths(cfg)[::-1]
        self.fc = nn.Linear(cfg.latent_dim, w[0] * 16)
        self.w0 = w[0]
        blocks = [_block(c_in, c_out, True) for c_in, c_out in zip(w[:-1], w[1:])]
        # last upsampling predicts the logistic's mean and log-scale for each subpixel (and, coupled, the
        # three coefficients of each pixel's colour channels)
        self.n_coeffs = 3 if cfg.coupled_channels else 0
        out = 2 * cfg.channels + self.n_coeffs
        self.convs = nn.Sequential(*blocks, nn.ConvTranspose2d(w[-1], out, 4, stride=2, padding=1))
        self.min_log_scale = cfg.min_log_scale
        self.max_log_scale = cfg.max_log_scale or None

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """z [B, Z] -> mean and log-scale [B, C, H, W] each, and the channel coefficients [B, 3, H, W] or None."""
        h = torch.relu(self.fc(z)).view(-1, self.w0, 4, 4)
        # float32 out of mixed precision: bf16 cannot resolve a 1/255 bin around a mean near 1
        out = self.convs(h).float()
        coeffs = torch.tanh(out[:, out.shape[1] - self.n_coeffs :]) if self.n_coeffs else None
        raw_mean, raw_log_scale = out[:, : out.shape[1] - self.n_coeffs].chunk(2, dim=1)
        return torch.sigmoid(raw_mean), raw_log_scale.clamp(self.min_log_scale, self.max_log_scale), coeffs


@dataclass
class ELBOTerms:
    """Per-image terms in nats, shape [B]."""

    recon_nll: torch.Tensor
    kl: torch.Tensor

    @property
    def nll_bound(self) -> torch.Tensor:
        return self.recon_nll + self.kl


class VAE(GenerativeModel):
    model_type = "vae"
    config_class = VAEConfig
    display_name = "VAE"
    train_defaults = TrainDefaults(batch_size=64, epochs=None, max_steps=1000)
    default_temperature = 0.8
    # NHWC lets oneDNN (CPU) and cuDNN (bf16 tensor cores) pick faster convolution kernels: ~10% per step here
    prefers_channels_last = True
    default_eval_k = 100  # IWAE samples for `genlab eval`, the Compare page and model cards
    loss_bpd_kind = "-ELBO, 1 sample"
    reconstructs = True
    ranked_latents = True

    def __init__(self, config: VAEConfig | None = None):
        super().__init__(config or VAEConfig())
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config)

    @property
    def num_dims(self) -> int:
        c = self.config
        return c.channels * c.image_size * c.image_size

    # -- encoder / decoder ---------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        """q(z|x) for images in [0, 1], [B, C, H, W] -> Gaussian over [B, Z]."""
        return DiagonalGaussian(*self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's mean image in [0, 1], [B, Z] -> [B, C, H, W]."""
        return self.decoder(z)[0]

    @property
    def latent_shape(self) -> tuple[int]:
        return (self.config.latent_dim,)

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        with eval_mode(self):
            return self.decode(z).float()

    @torch.no_grad()
    def latent_kl_per_dim(self, x: torch.Tensor) -> torch.Tensor:
        with eval_mode(self):
            return self.encode(x).kl_per_dim()

    @classmethod
    def bound_kind(cls, k: int) -> str:
        return f"IWAE bound, k={k}" if k > 1 else "-ELBO, 1 sample"

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) summed over pixels, [B, C, H, W], [B, Z] -> [B] nats."""
        mean, log_scale, coeffs = self.decoder(z)
        if coeffs is not None:
            mean = coupled_channel_means(x, mean, coeffs)
        return discretized_logistic_log_prob(x, mean, log_scale).flatten(1).sum(1)

    # -- objectives ----------------------------------------------------------------------
    def elbo_terms(
        self, x: torch.Tensor, generator: torch.Generator | None = None, analytic_kl: bool = True
    ) -> ELBOTerms:
        q = self.encode(x)
        z = q.sample(generator)
        recon_nll = -self.log_likelihood(x, z)
        # The closed-form KL has lower variance; the single-sample estimate is what IWAE with k=1 uses.
        kl = q.kl_to_standard_normal() if analytic_kl else q.log_prob(z) - standard_normal_log_prob(z)
        return ELBOTerms(recon_nll=recon_nll, kl=kl)

    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None):
        t = self.elbo_terms(x, generator)
        to_bpd = 1.0 / (self.num_dims * LOG2)
        loss = (t.recon_nll + self.config.beta * t.kl).mean() * to_bpd
        metrics = {
            "loss": loss.detach(),
            "bpd": t.nll_bound.mean().detach() * to_bpd,  # -ELBO in bits/dim (beta = 1)
            "recon_bpd": t.recon_nll.mean().detach() * to_bpd,
            "kl_bpd": t.kl.mean().detach() * to_bpd,
        }
        return loss, metrics

    @torch.no_grad()
    def nll_bpd(
        self, x: torch.Tensor, k: int = 100, generator: torch.Generator | None = None, chunk: int = 64
    ) -> torch.Tensor:
        """IWAE bound on -log2 p(x) / D with k importance samples, [B, C, H, W] -> [B].

        k=1 is the single-sample ELBO; the bound tightens (decreases) in expectation as k grows.
        """
        with eval_mode(self):
            q = self.encode(x)
            log_w = []
            for start in range(0, k, chunk):
                kk = min(chunk, k - start)
                z = q.mean[None] + q.std[None] * randn((kk, *q.mean.shape), generator, x.device, x.dtype)  # [kk, B, Z]
                zf = z.flatten(0, 1)
                xf = x[None].expand(kk, *x.shape).flatten(0, 1)
                log_px = self.log_likelihood(xf, zf).view(kk, -1)
                log_w.append(log_px + standard_normal_log_prob(z) - q.log_prob(z))
            log_w = torch.cat(log_w)  # [k, B]
            log_px_bound = torch.logsumexp(log_w, 0) - math.log(k)
            return nats_to_bpd(-log_px_bound, self.num_dims)

    # -- generation ----------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, temperature: Temperature = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode z ~ N(0, T^2 I); T=0 decodes the prior mean. Returns [n, C, H, W] in [0, 1]."""
        z = randn((n, self.config.latent_dim), generator, self.device) * self.temperature_scale(temperature)
        with eval_mode(self):
            return self.decode(z)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        with eval_mode(self):
            return self.decode(self.encode(x).mean)
