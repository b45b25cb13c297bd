"""genlab: train, sample and compare image generative models (VAE, RealNVP) with FID."""

from __future__ import annotations

from .errors import CheckpointError, GenlabError
from .hub import load_model
from .version import __version__

__all__ = ["load_model", "CheckpointError", "GenlabError", "__version__"]
