"""genlab: train, sample and compare image generative models (VAE, RealNVP) with FID."""

from __future__ import annotations

__version__ = "0.2.0"

import os  # noqa: E402
from pathlib import Path  # noqa: E402

from .models import CheckpointError  # noqa: E402
from .models import load_model as _load_local  # noqa: E402


def load_model(spec: str | os.PathLike, revision: str | None = None, map_location="cpu", token: str | None = None):
    """A model from a local folder (a saved model or a run directory) or a Hub repo id ``org/name``.

    Hub repos are downloaded into huggingface_hub's standard cache and loaded strictly, like a local
    folder; a local folder of the same name wins. Raises ``CheckpointError`` or ``genlab.hub.HubError``.
    """
    from .hub import HubError, is_repo_id, pull

    # 'checkpoints/nope' has a repo id's shape, but its first part is a folder of models here: a mistyped path
    if is_repo_id(str(spec)) and not Path(spec).exists() and _holds_models(Path(spec).parent):
        raise CheckpointError(
            f"{spec} does not exist: {Path(spec).parent}/ has no folder '{Path(spec).name}' "
            f"(a Hub repo id would be read as org/name only where no local folder '{Path(spec).parent}' exists)"
        )
    if is_repo_id(str(spec)):
        try:
            path = pull(str(spec), revision, token).path
        except HubError as e:  # 'runs/typo' looks like a repo id too: say both what was looked for
            raise HubError(f"{spec} is no local folder, and {e}") from None
        return _load_local(path, map_location)
    if revision is not None:
        raise CheckpointError(f"{spec} is a local folder; a revision applies only to a Hub repo id (org/name)")
    return _load_local(spec, map_location)


def _holds_models(folder: Path) -> bool:
    """A local folder with a saved model or a run in it (checkpoints/, runs/)."""
    try:
        return folder.is_dir() and any(
            (p / "config.json").is_file() or (p / "run.json").is_file() for p in folder.iterdir()
        )
    except OSError:
        return False


__all__ = ["load_model", "CheckpointError", "__version__"]
