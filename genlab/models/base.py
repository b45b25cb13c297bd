"""The common model interface and its on-disk format.

Every genlab model is a ``GenerativeModel``: an ``nn.Module`` built from one
config dataclass, with

- ``loss(x) -> (loss, metrics)`` where ``x`` is a float batch in [0, 1] holding
  8-bit pixels (k/255) and ``metrics`` always contains ``bpd`` (bits/dim over
  the discrete 8-bit data, so that every model family is comparable);
- ``sample(n, temperature=, generator=) -> images in [0, 1]``.

A saved model is a directory with ``config.json`` (the dataclass plus
``model_type``) and ``model.safetensors``, the layout of diffusers and of
huggingface_hub's ``PyTorchModelHubMixin``. Loading is strict and never
unpickles: a missing, unexpected or mis-shaped tensor is a ``CheckpointError``
that says which one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import numbers
import os
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as st_save
from torch import nn

from .. import names
from ..config import ConfigError, from_dict
from ..distributions import interpolate_latents
from ..errors import CheckpointError
from ..schema import read_json
from ..storage import atomic_write_bytes, atomic_write_json
from .sizing import check_model

CONFIG_NAME, WEIGHTS_NAME = names.CONFIG, names.WEIGHTS
# the on-disk format of config.json + model.safetensors; a newer one is refused with a sentence, never guessed at
FORMAT_VERSION = 1
FORMAT_KEY = "genlab_format"


def check_format(d: dict, source: str) -> None:
    version = d.get(FORMAT_KEY, 1)  # files from before the stamp are format 1
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{source} was written by a newer genlab (format {version}; this genlab reads up to "
            f"{FORMAT_VERSION}): upgrade genlab to load it"
        )


@contextmanager
def eval_mode(module: nn.Module):
    """Generate and evaluate in eval mode (running batch-norm statistics), then restore the caller's mode."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def config_from_dict(cls, d: dict, source: str = "config"):
    """Build config dataclass ``cls`` from ``d``, refusing keys it does not know (genlab.config's one policy)."""
    return from_dict(cls, d, source, error=CheckpointError)


MAX_TEMPERATURE = 5.0  # the latent noise's standard deviation; the pages' sliders stop lower
Temperature = float | Sequence[float]  # one for the whole latent, or one per latent level (coarsest last)


def check_temperature(t) -> float:
    """A temperature as a float in [0, MAX_TEMPERATURE], or a ConfigError that says what was given."""
    if isinstance(t, bool) or not isinstance(t, numbers.Real) or not 0 <= t <= MAX_TEMPERATURE:
        raise ConfigError(f"a temperature is a number from 0 to {MAX_TEMPERATURE:g}, got {t!r}")
    return float(t)


@dataclass(frozen=True)
class TrainDefaults:
    """Where the Train page starts a family: its batch size and how long it trains."""

    batch_size: int = 128
    epochs: int | None = 10  # None: the family trains by steps
    max_steps: int | None = None


class GenerativeModel(nn.Module):
    """What the rest of genlab may ask of a model family. Nothing outside ``genlab/models`` branches on
    a family's name: it reads these declarations instead."""

    model_type: ClassVar[str]  # the name in config.json and on the command line
    config_class: ClassVar[type]
    display_name: ClassVar[str]  # what pages and model cards call the family
    train_defaults: ClassVar[TrainDefaults] = TrainDefaults()
    default_temperature: ClassVar[float] = 1.0  # where a freshly trained model's samples are shown first
    prefers_channels_last: ClassVar[bool] = False  # NHWC batches train faster
    default_eval_k: ClassVar[int] = 0  # samples of its held-out bound ``nll_bpd``; 0: it has none
    loss_bpd_kind: ClassVar[str] = "loss bits/dim"  # what the bpd of ``loss`` is ("-ELBO", "exact", ...)
    reconstructs: ClassVar[bool] = False  # has ``reconstruct(x)``
    ranked_latents: ClassVar[bool] = False  # has ``latent_kl_per_dim(x)``: latent sliders ranked by KL

    def __init__(self, config):
        super().__init__()
        self.config = config

    # -- the interface every family implements -------------------------------------
    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def sample(self, n: int, temperature: Temperature = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    # -- optional capabilities (declared by the class variables above) --------------------
    @classmethod
    def default_image_size(cls) -> int:
        return cls.config_class().image_size

    @property
    def latent_shape(self) -> tuple[int, ...] | None:
        """Shape of one latent ([Z] for a VAE, [C, H, W] for a flow); None: no latent space to explore."""
        return None

    @property
    def latent_levels(self) -> list[tuple[int, ...]]:
        """The shapes of the latent's levels, coarsest last; ``sample(n, temperature=[...])`` takes one temperature
        per level. A VAE's latent is one level; a multi-scale flow's are its factored-out halves."""
        return [self.latent_shape] if self.latent_shape is not None else []

    def level_index(self) -> torch.Tensor:
        """The level of each latent entry, long [*latent_shape] (all 0 with one level)."""
        return torch.zeros(self.latent_shape or (), dtype=torch.long)

    def temperature_scale(self, temperature: Temperature) -> float | torch.Tensor:
        """What multiplies unit latent noise: one temperature as it is, or one per level (``latent_levels``) as
        [*latent_shape], each entry its level's. Refused with a sentence when out of range or miscounted."""
        if not isinstance(temperature, (list, tuple)):
            return check_temperature(temperature)
        levels = self.latent_levels
        if len(temperature) != len(levels):
            shapes = ", ".join("×".join(map(str, s)) for s in levels)
            raise ConfigError(
                f"{self.display_name} has {len(levels)} latent level(s), finest first ({shapes}): give "
                f"{len(levels)} temperature(s), not {len(temperature)}"
            )
        t = torch.tensor([check_temperature(v) for v in temperature], dtype=torch.float32)
        return t[self.level_index()].to(self.device)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Latents [n, *latent_shape] -> images [n, C, H, W] in [0, 1]; ``sample`` draws z ~ N(0, T^2 I)."""
        raise NotImplementedError(f"{self.display_name} has no latent space")

    @torch.no_grad()
    def interpolate(self, z0: torch.Tensor, z1: torch.Tensor, steps: int = 8, method: str = "slerp") -> torch.Tensor:
        """Images along a 'slerp' or 'linear' path between latents z0 and z1: [steps, C, H, W]."""
        with eval_mode(self):
            return self.generate(interpolate_latents(z0, z1, steps, method))

    def nll_bpd(self, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A k-sample bound on -log2 P(x) / D per image, [B, C, H, W] -> [B]; see ``default_eval_k``."""
        raise NotImplementedError(f"{self.display_name} has no k-sample bound")

    @classmethod
    def bound_kind(cls, k: int) -> str:
        """How ``nll_bpd(x, k)`` relates to the likelihood, for tables and model cards."""
        return cls.loss_bpd_kind

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{self.display_name} does not reconstruct")

    def latent_kl_per_dim(self, x: torch.Tensor) -> torch.Tensor:
        """KL(q(z_i|x) || N(0, 1)) per latent dimension: [B, C, H, W] -> [B, Z]."""
        raise NotImplementedError(f"{self.display_name} has no per-dimension posterior")

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def digest(self) -> str:
        """A short hash of the config and every tensor: the key of every cache of what this model computed
        (a retrained or resumed model gets new entries, wherever its folder is). Kept until a tensor changes:
        a page asks for it on every rerun, and hashing the weights takes ~25 ms per 10 MB."""
        state = self.state_dict()
        stamp = tuple((t.data_ptr(), t._version) for t in state.values())  # _version counts in-place writes
        if getattr(self, "_digest", (None, None))[0] != stamp:
            h = hashlib.sha256(json.dumps(self.config_dict(), sort_keys=True).encode())
            for name, t in state.items():
                h.update(name.encode())
                h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
            self._digest = (stamp, h.hexdigest()[:16])
        return self._digest[1]

    # -- save / load -----------------------------------------------------------------
    def config_dict(self) -> dict:
        return {"model_type": self.model_type, FORMAT_KEY: FORMAT_VERSION, **dataclasses.asdict(self.config)}

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        atomic_write_bytes(directory / WEIGHTS_NAME, st_save(state, metadata={"format": "pt"}))
        atomic_write_json(directory / CONFIG_NAME, self.config_dict())
        return directory

    @classmethod
    def from_config_dict(cls, d: dict, source: str = "config"):
        d = dict(d)
        check_format(d, source)
        d.pop(FORMAT_KEY, None)
        mt = d.pop("model_type", cls.model_type)
        if mt != cls.model_type:
            raise CheckpointError(f"{source} describes a '{mt}' model, not a '{cls.model_type}'")
        config = config_from_dict(cls.config_class, d, source)
        try:  # sized before it is built: a few bytes of config.json can describe billions of parameters
            check_model(cls, config, what=f"the model in {source}", advice="it was not built")
        except ConfigError as e:
            raise CheckpointError(str(e)) from None
        return cls(config)

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike, map_location: str | torch.device = "cpu", config: dict | None = None
    ):
        """Load strictly; ``config`` is the directory's config.json when the caller has read it already."""
        directory = Path(directory)
        model = cls.from_config_dict(config or read_config(directory), str(directory / CONFIG_NAME))
        model.load_state_dict(read_weights(directory / WEIGHTS_NAME, model), strict=True)
        return model.to(map_location).eval()


def read_config(directory: Path) -> dict:
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a genlab model: it has no {CONFIG_NAME}")
    d = read_json(path, CheckpointError)
    if not isinstance(d.get("model_type"), str):
        raise CheckpointError(f"{path} has no 'model_type'; it was not written by genlab")
    check_format(d, str(path))
    return d


def read_weights(path: Path, model: nn.Module) -> dict[str, torch.Tensor]:
    """Read a safetensors file and check it against ``model`` tensor by tensor."""

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"missing weights file {path}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e}); it is corrupt or truncated") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not match the model in its config.json: "
            f"missing tensors {missing[:5]}{' …' if len(missing) > 5 else ''}, "
            f"unexpected tensors {unexpected[:5]}{' …' if len(unexpected) > 5 else ''}"
        )
    for k, v in expected.items():
        t = tensors[k]
        if tuple(t.shape) != tuple(v.shape):
            raise CheckpointError(
                f"{path}: tensor '{k}' has shape {tuple(t.shape)} but the model "
                f"built from config.json expects {tuple(v.shape)}"
            )
        if t.dtype != v.dtype:  # never cast silently: float64 or int8 weights were not written by genlab
            raise CheckpointError(f"{path}: tensor '{k}' is {t.dtype}, but the model stores it as {v.dtype}")
        if t.is_floating_point() and not torch.isfinite(t).all():
            what = "NaN" if torch.isnan(t).any() else "infinite values"
            raise CheckpointError(f"{path}: tensor '{k}' holds {what}; these weights cannot sample anything")
    return tensors
