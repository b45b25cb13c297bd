"""Model families by name. ``load_model`` rebuilds any of them from a directory."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from .base import CheckpointError, GenerativeModel, read_config
from .realnvp import RealNVP, RealNVPConfig
from .vae import VAE, VAEConfig

MODELS: dict[str, type[GenerativeModel]] = {}


def register_model(cls: type[GenerativeModel]) -> type[GenerativeModel]:
    """Make a family known to the trainer, the CLI, the loaders and the app (usable as a decorator)."""
    for attr in ("model_type", "config_class", "display_name"):
        if not hasattr(cls, attr):
            raise TypeError(f"{cls.__name__} must declare {attr} to be registered as a genlab model")
    MODELS[cls.model_type] = cls
    return cls


register_model(VAE)
register_model(RealNVP)


def model_class(model_type: str) -> type[GenerativeModel]:
    try:
        return MODELS[model_type]
    except KeyError:
        raise CheckpointError(f"unknown model type {model_type!r}; genlab knows {sorted(MODELS)}") from None


def resolve_model_dir(path: str | os.PathLike) -> Path:
    """A model directory, or a run directory whose ``checkpoint/`` holds one."""
    path = Path(path)
    if (path / "config.json").is_file():
        return path
    if (path / "checkpoint" / "config.json").is_file():
        return path / "checkpoint"
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    raise CheckpointError(
        f"{path} is neither a saved model (config.json + model.safetensors) nor a run directory with a checkpoint/"
    )


def model_options(model_type: str) -> dict[str, dataclasses.Field]:
    """The config fields a user chooses for a model family (its size knobs and loss weights); the image
    size and channels come from the data set (``setting(..., flag=False)``)."""
    return {f.name: f for f in dataclasses.fields(model_class(model_type).config_class) if f.metadata.get("flag", True)}


def load_model(path: str | os.PathLike, map_location="cpu") -> GenerativeModel:
    """Load a model saved by ``save_pretrained`` (or a run directory's checkpoint), strictly."""
    directory = resolve_model_dir(path)
    config = read_config(directory)  # read once: it names the family and configures it
    return model_class(config["model_type"]).from_pretrained(directory, map_location, config)


__all__ = [
    "MODELS",
    "register_model",
    "VAE",
    "VAEConfig",
    "RealNVP",
    "RealNVPConfig",
    "CheckpointError",
    "GenerativeModel",
    "load_model",
    "model_class",
    "model_options",
]
