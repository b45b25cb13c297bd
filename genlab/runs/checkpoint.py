"""A run's checkpoint and best weights on disk: the format, and writes that a crash cannot leave half done.

    RUN/checkpoint/   config.json + model.safetensors   the model (its moving average under --ema): loads like any
                      optimizer.safetensors             the optimizer, the training weights under ``train.`` when
                                                        model.safetensors holds their average, the random state
                      trainer_state.json                ``TrainState``, written last: it marks a complete checkpoint
    RUN/best/         config.json + model.safetensors + metrics.json: the weights with the lowest test bits/dim

Both are built beside their place and swapped in whole (``checkpoint.new`` -> ``checkpoint``), so a process killed
at any instant leaves a complete checkpoint on disk; ``recover`` finishes or undoes a swap a crash interrupted.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file
from safetensors.torch import save as tensors_to_bytes

from .. import names
from ..errors import CheckpointError
from ..models.base import read_weights
from ..schema import BEST_METRICS, check_fields, read_json
from ..schema import TRAINER_STATE as TRAINER_STATE_FIELDS
from ..storage import atomic_write_bytes, atomic_write_json, fsync_dir

TRAIN_PREFIX = "train."  # in optimizer.safetensors: the training weights, when model.safetensors holds their average


def step(run: Path) -> int | None:
    """The step of the complete checkpoint, or None."""
    try:
        step = read_json(run / names.CHECKPOINT / names.TRAINER_STATE).get("step")
    except (OSError, ValueError):
        return None
    return step if isinstance(step, int) else None


def exists(run: Path) -> bool:
    """Whether ``run`` holds a complete checkpoint (or one a crash left mid-swap, which ``recover`` completes)."""
    sides = (names.CHECKPOINT, names.CHECKPOINT_NEW, names.CHECKPOINT_OLD)
    return any((run / d / names.TRAINER_STATE).is_file() for d in sides)


def recover(run: Path) -> None:
    """Finish or undo a checkpoint swap that a crash interrupted."""
    ckpt, new, old = run / names.CHECKPOINT, run / names.CHECKPOINT_NEW, run / names.CHECKPOINT_OLD
    if not ckpt.exists():
        for candidate in (new, old):
            if (candidate / names.TRAINER_STATE).is_file():
                os.rename(candidate, ckpt)
                break
    for leftover in (new, old):
        if leftover.exists():
            shutil.rmtree(leftover)


def save(run: Path, model, optimizer: torch.optim.Optimizer, state: dict, ema=None) -> None:
    """The model (``ema``, the weights' moving average, when there is one) as ``model.safetensors``, which
    is what loading the run gives; the training weights (under ``train.`` when they differ), the
    optimizer and the RNG state beside it, in ``optimizer.safetensors``."""
    for m in (model, ema) if ema is not None else (model,):
        for name, p in m.state_dict().items():
            if p.is_floating_point() and not torch.isfinite(p).all():
                raise FloatingPointError(f"refusing to checkpoint non-finite weights ('{name}')")
    recover(run)
    new, ckpt, old = run / names.CHECKPOINT_NEW, run / names.CHECKPOINT, run / names.CHECKPOINT_OLD
    new.mkdir(parents=True)
    try:
        (ema if ema is not None else model).save_pretrained(new)
        tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
        if ema is not None:
            tensors.update({TRAIN_PREFIX + k: v.contiguous() for k, v in model.state_dict().items()})
        tensors["rng.cpu"] = torch.get_rng_state()
        if torch.cuda.is_available():
            tensors["rng.cuda"] = torch.cuda.get_rng_state()
        atomic_write_bytes(
            new / names.OPTIMIZER, tensors_to_bytes(tensors)
        )  # a full disk is an OSError, like every write
        atomic_write_json(new / names.TRAINER_STATE, {**state, "optimizer": opt_meta})
        fsync_dir(new)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    if ckpt.exists():
        os.rename(ckpt, old)
    os.rename(new, ckpt)
    fsync_dir(run)
    shutil.rmtree(old, ignore_errors=True)


def load(run: Path, model, optimizer: torch.optim.Optimizer | None, ema=None) -> dict:
    """Load weights (and optimizer and RNG state) into ``model``, and the moving average into ``ema``
    when given (a run that starts averaging on resume starts from the weights); return the trainer
    state. A run saved with an average and resumed without one trains on from its training weights."""

    recover(run)
    ckpt = run / names.CHECKPOINT
    if not (ckpt / names.TRAINER_STATE).is_file():
        raise CheckpointError(f"{run} has no complete checkpoint to resume from")
    damaged = (
        f"; this checkpoint cannot be resumed. Its weights may still load (genlab sample {run}); "
        f"to train on, start a new run"
    )
    try:
        where = ckpt / names.TRAINER_STATE
        state = check_fields(read_json(where), TRAINER_STATE_FIELDS, str(where))
        if not isinstance(state.get("step"), int):
            raise ValueError("no step count")
    except (ValueError, OSError) as e:
        raise CheckpointError(f"{ckpt / names.TRAINER_STATE} is damaged ({e}){damaged}") from None
    saved = read_weights(ckpt / names.WEIGHTS, model)
    try:
        tensors = load_file(str(ckpt / names.OPTIMIZER))
        rng = tensors.pop("rng.cpu")
        cuda_rng = tensors.pop("rng.cuda", None)
        train = {k[len(TRAIN_PREFIX) :]: tensors.pop(k) for k in list(tensors) if k.startswith(TRAIN_PREFIX)}
        model.load_state_dict(train or saved, strict=True)
        if ema is not None:
            ema.load_state_dict(saved, strict=True)
        opt_state = _unflatten_optimizer(tensors, state.pop("optimizer")) if optimizer is not None else None
        if optimizer is not None:
            optimizer.load_state_dict(opt_state)
    except Exception as e:  # SafetensorError, a missing key, a state that does not fit the optimizer
        raise CheckpointError(
            f"{ckpt / names.OPTIMIZER} is damaged or does not fit this model "
            f"({type(e).__name__}: {str(e)[:200]}){damaged}"
        ) from None
    torch.set_rng_state(rng)
    if cuda_rng is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda_rng)
    return state


def save_best(run: Path, model, step: int, test_bpd: float, dataset: str) -> None:
    """Keep ``model``'s weights as the run's best (a model folder that ``load_model`` reads), swapped
    in whole like the checkpoint, with the evaluation that chose them in ``metrics.json``."""
    new, best = run / names.BEST_NEW, run / names.BEST
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    try:
        model.save_pretrained(new)
        atomic_write_json(new / names.METRICS, {"step": step, "test_bpd": test_bpd, "dataset": dataset})
        fsync_dir(new)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    shutil.rmtree(best, ignore_errors=True)
    os.rename(new, best)


def best(run: Path) -> tuple[int, float] | None:
    """(step, test bits/dim) of the kept best weights; None if there are none (or they are unreadable)."""
    try:
        d = check_fields(read_json(run / names.BEST / names.METRICS), BEST_METRICS, f"{names.BEST}/{names.METRICS}")
        step, bpd = d["step"], d["test_bpd"]
    except (OSError, ValueError, KeyError):
        return None
    if not (run / names.BEST / names.WEIGHTS).is_file() or step is None or bpd is None:
        return None
    return step, float(bpd)


def drop_best_after(run: Path, step: int) -> None:
    """A resumed run replays the steps after ``step``: best weights from those steps are dropped."""
    kept = best(run)
    if kept is not None and kept[0] > step:
        shutil.rmtree(run / names.BEST, ignore_errors=True)


def _flatten_optimizer(sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """torch optimizer state_dict -> (flat tensors for safetensors, JSON-able rest)."""
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"state.{idx}.{k}"] = v.detach().contiguous().cpu()
            else:
                scalars[f"{idx}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        _, idx, k = key.split(".", 2)
        state.setdefault(int(idx), {})[k] = v
    for key, v in meta.get("scalars", {}).items():
        idx, k = key.split(".", 1)
        state.setdefault(int(idx), {})[k] = v
    return {"state": state, "param_groups": meta["param_groups"]}
