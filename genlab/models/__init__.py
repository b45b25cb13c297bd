"""Model families by name. ``load_model`` rebuilds any of them from a directory.

A family outside genlab is registered with :func:`register_model`, or, so that every process genlab
starts (a run launched from the app, torchrun's workers) knows it too, by an installed package's
entry point in the group ``genlab.models`` (``pyproject.toml``:
``[project.entry-points."genlab.models"] pixel = "my_package.pixel:PixelBaseline"``).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import sys
import time
from pathlib import Path

from .. import names
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

PLUGIN_GROUP = "genlab.models"
PLUGIN_ERRORS: dict[str, str] = {}  # entry point name -> why it was not registered


def load_plugins() -> None:
    """Register the families that installed packages declare under the ``genlab.models`` entry point.

    A plugin that fails to import, is not a model class or would replace a family already known is
    skipped with one line on stderr (and in ``PLUGIN_ERRORS``): genlab itself keeps working.
    """
    for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        try:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, GenerativeModel)):
                raise TypeError(f"{ep.value} is not a GenerativeModel subclass")
            known = MODELS.get(getattr(cls, "model_type", None))
            if known is not None and known is not cls:
                raise ValueError(f"model type {cls.model_type!r} is already {known.__module__}.{known.__name__}")
            register_model(cls)
        except Exception as e:  # a broken plugin must not take genlab down with it
            PLUGIN_ERRORS[ep.name] = f"{type(e).__name__}: {e}"
            print(f"genlab: model plugin {ep.name!r} ({ep.value}) was not loaded: {e}", file=sys.stderr)


def model_class(model_type: str) -> type[GenerativeModel]:
    try:
        return MODELS[model_type]
    except KeyError:
        raise CheckpointError(f"unknown model type {model_type!r}; genlab knows {sorted(MODELS)}") from None


def resolve_model_dir(path: str | os.PathLike) -> Path:
    """A model directory, or a run directory whose ``checkpoint/`` holds one."""
    path = Path(path)
    if (path / names.CONFIG).is_file():
        return path
    if (path / names.CHECKPOINT / names.CONFIG).is_file():
        return path / names.CHECKPOINT
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    raise CheckpointError(
        f"{path} is neither a saved model (config.json + model.safetensors) nor a run directory with a checkpoint/"
    )


def model_options(model_type: str) -> dict[str, dataclasses.Field]:
    """The config fields a user chooses for a model family (its size knobs and loss weights); the image
    size and channels come from the data set (``setting(..., flag=False)``)."""
    return {f.name: f for f in dataclasses.fields(model_class(model_type).config_class) if f.metadata.get("flag", True)}


SWAP_RETRIES = 6  # a training run swaps checkpoint/ by two renames; a reader in between tries again


def load_model(path: str | os.PathLike, map_location="cpu") -> GenerativeModel:
    """Load a model saved by ``save_pretrained`` (or a run directory's checkpoint), strictly.

    A run that is training replaces ``checkpoint/`` while others read it (``genlab.runs.checkpoint.save``): a
    read that lands between its renames, or on files swapped under it, is tried again a few times over
    about a second, and whatever still fails is a CheckpointError sentence."""
    for attempt in range(SWAP_RETRIES):
        try:
            directory = resolve_model_dir(path)
            config = read_config(directory)  # read once: it names the family and configures it
            return model_class(config["model_type"]).from_pretrained(directory, map_location, config)
        except (CheckpointError, OSError, RuntimeError) as e:
            if attempt + 1 == SWAP_RETRIES or not (Path(path) / names.RUN_INFO).is_file():
                if isinstance(e, CheckpointError):
                    raise
                raise CheckpointError(f"{path} could not be loaded ({type(e).__name__}: {str(e)[:200]})") from None
            time.sleep(0.05 * 2**attempt)  # 50 ms, then 100, 200, ...: 1.55 s in all


load_plugins()

__all__ = [
    "MODELS",
    "register_model",
    "load_plugins",
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
