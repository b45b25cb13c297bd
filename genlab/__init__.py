"""genlab: train, sample and compare image generative models (VAE, RealNVP) with FID."""
__version__ = "0.1.0"

from .models import CheckpointError, load_model  # noqa: E402

__all__ = ["load_model", "CheckpointError", "__version__"]
