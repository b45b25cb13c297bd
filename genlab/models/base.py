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
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


@contextmanager
def eval_mode(module: nn.Module):
    """Generate and evaluate in eval mode (running batch-norm statistics), then restore the caller's mode."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded into the model it describes."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def config_from_dict(cls, d: dict, source: str = "config"):
    """Build config dataclass ``cls`` from ``d``, refusing keys it does not know."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise CheckpointError(f"{source} has fields {unknown} that {cls.__name__} does not know; "
                              f"it was written by a different model or a newer genlab")
    return cls(**d)


class GenerativeModel(nn.Module):
    model_type: ClassVar[str]
    config_class: ClassVar[type]

    def __init__(self, config):
        super().__init__()
        self.config = config

    # -- the interface every family implements -------------------------------------
    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- save / load -----------------------------------------------------------------
    def config_dict(self) -> dict:
        return {"model_type": self.model_type, **dataclasses.asdict(self.config)}

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        from safetensors.torch import save as st_save

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        atomic_write_bytes(directory / WEIGHTS_NAME, st_save(state, metadata={"format": "pt"}))
        atomic_write_json(directory / CONFIG_NAME, self.config_dict())
        return directory

    @classmethod
    def from_config_dict(cls, d: dict, source: str = "config"):
        d = dict(d)
        mt = d.pop("model_type", cls.model_type)
        if mt != cls.model_type:
            raise CheckpointError(f"{source} describes a '{mt}' model, not a '{cls.model_type}'")
        return cls(config_from_dict(cls.config_class, d, source))

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, map_location: str | torch.device = "cpu"):
        directory = Path(directory)
        model = cls.from_config_dict(read_config(directory), str(directory / CONFIG_NAME))
        model.load_state_dict(read_weights(directory / WEIGHTS_NAME, model), strict=True)
        return model.to(map_location).eval()


def read_config(directory: Path) -> dict:
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a genlab model: it has no {CONFIG_NAME}")
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(d, dict) or "model_type" not in d:
        raise CheckpointError(f"{path} has no 'model_type'; it was not written by genlab")
    return d


def read_weights(path: Path, model: nn.Module) -> dict[str, torch.Tensor]:
    """Read a safetensors file and check it against ``model`` tensor by tensor."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

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
            f"unexpected tensors {unexpected[:5]}{' …' if len(unexpected) > 5 else ''}")
    for k, v in expected.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{path}: tensor '{k}' has shape {tuple(tensors[k].shape)} but the model "
                                  f"built from config.json expects {tuple(v.shape)}")
    return tensors
