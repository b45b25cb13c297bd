"""A model family that genlab has never heard of, for tests: every pixel independent, each with its own
discretized logistic (the decoder of a VAE with no latent). No latent space, no k-sample bound, no
reconstructions. It imports only genlab's building blocks, so an entry point can name it
(``pixel_family:PixelBaseline``) without importing genlab's top level first.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

from genlab.config import check, setting
from genlab.distributions import discretized_logistic_log_prob
from genlab.models.base import GenerativeModel, TrainDefaults


@dataclass
class PixelConfig:
    image_size: int = setting(16, flag=False)
    channels: int = setting(3, flag=False)
    init_log_scale: float = setting(-1.0, "initial log-scale of every pixel's logistic", max=2.0)

    def __post_init__(self):
        check(self)


class PixelBaseline(GenerativeModel):
    model_type = "pixel"
    config_class = PixelConfig
    display_name = "Pixel baseline"
    train_defaults = TrainDefaults(batch_size=32, epochs=None, max_steps=20)
    loss_bpd_kind = "exact (independent pixels)"

    def __init__(self, config: PixelConfig | None = None):
        super().__init__(config or PixelConfig())
        c = self.config
        shape = (c.channels, c.image_size, c.image_size)
        self.mean = nn.Parameter(torch.full(shape, 0.5))
        self.log_scale = nn.Parameter(torch.full(shape, c.init_log_scale))

    def loss(self, x):
        lp = discretized_logistic_log_prob(x, self.mean.expand_as(x), self.log_scale.expand_as(x))  # [B, C, H, W]
        bpd = -lp.flatten(1).sum(1).mean() / (x[0].numel() * math.log(2))
        return bpd, {"loss": bpd.detach(), "bpd": bpd.detach()}

    @torch.no_grad()
    def sample(self, n, temperature=1.0, generator=None):
        u = torch.rand((n, *self.mean.shape), generator=generator).clamp(1e-6, 1 - 1e-6).to(self.mean.device)
        x = self.mean + temperature * self.log_scale.exp() * (u.log() - (-u).log1p())  # logistic noise
        return (x.clamp(0, 1) * 255).round() / 255


class NotTheVAE(PixelBaseline):
    """A plugin that would replace a built-in family: refused."""

    model_type = "vae"
