"""The run directory: the one interface that the trainer writes and the app and CLI read.

    RUN/run.json        config, dataset, seed, versions, status, error
    RUN/metrics.jsonl   one JSON object per logged step ("kind": "train") and evaluation ("kind": "eval")
    RUN/checkpoint/     config.json + model.safetensors + optimizer.safetensors + trainer_state.json
    RUN/best/           config.json + model.safetensors + metrics.json: the weights with the lowest test bits/dim
    RUN/samples/        step-0000500.png (samples), recon-0000500.png (reconstructions, when the model has them),
                        at most 16 of each (genlab.runs.grids)
    RUN/STOP            created by anyone who wants the run to stop; the trainer checkpoints and exits
    RUN/.lock           held (flock) by the process training this run, released by the kernel if it dies
    RUN/train.log       the output of a process started by genlab.runs.jobs

A run list reads runs through ``genlab.runs.summary``.

What the files hold is typed in ``genlab.runs.records`` (``RunInfo``, ``RunStatus``, the metric
rows); pages and the CLI ask a ``RunDir`` for paths instead of building them.

Every file that is replaced is replaced atomically; ``checkpoint/`` is swapped as a whole
(``checkpoint.new`` -> ``checkpoint``), so a process killed at any instant leaves a
complete checkpoint on disk.
"""

from __future__ import annotations

import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy
import torch
import torchvision
from safetensors.torch import load_file, save

from ..errors import NotARun, RunLocked
from ..models.base import CheckpointError, read_weights
from ..schema import BEST_METRICS, MAX_LOG_BYTES, TRAINER_STATE, check_fields, read_json
from ..storage import atomic_write_bytes, atomic_write_json, fsync_dir, is_locked, try_lock
from ..version import __version__
from .config import TrainConfig
from .records import MetricRow, RunInfo, RunStatus, parse_row

CKPT, CKPT_NEW, CKPT_OLD = "checkpoint", "checkpoint.new", "checkpoint.old"
BEST, BEST_NEW = "best", "best.new"
STATE_NAME = "trainer_state.json"  # written last: its presence marks a complete checkpoint
OPTIM_NAME = "optimizer.safetensors"
TRAIN_PREFIX = "train."  # in OPTIM_NAME: the training weights, when model.safetensors holds their moving average
LOG_NAME = "train.log"
RESERVE_NAME, RESERVE_BYTES = ".reserve", 256 * 1024


def package_versions() -> dict:

    return {
        "genlab": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks after boot (/proc/PID/stat field 22); None if unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _pid_alive(pid, started: int | None = None) -> bool:
    """Whether ``pid`` is a live process, and the same one (``started``: its start time when recorded)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    if started is not None and process_start(pid) not in (None, started):
        return False  # the PID now belongs to another program
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


@dataclass
class RunDir:
    path: Path

    def __post_init__(self):
        self.path = Path(self.path)

    # -- paths -----------------------------------------------------------------------------
    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoint(self) -> Path:
        return self.path / CKPT

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @property
    def stop_file(self) -> Path:
        return self.path / "STOP"

    @property
    def log_path(self) -> Path:
        return self.path / LOG_NAME

    @property
    def weights_file(self) -> Path:
        return self.path / CKPT / "model.safetensors"

    @property
    def best_dir(self) -> Path:
        return self.path / BEST

    def sample_grid(self, step: int) -> Path:
        return self.samples / f"step-{step:07d}.png"

    def recon_grid(self, step: int) -> Path:
        return self.samples / f"recon-{step:07d}.png"

    def latest_samples(self) -> Path | None:
        grids = sorted(self.samples.glob("step-*.png")) if self.samples.is_dir() else []
        return grids[-1] if grids else None

    def disk_bytes(self) -> int:
        """What the run takes on disk (its files, one level of folders deep)."""
        total = 0
        for p in self.path.rglob("*"):
            try:
                total += p.stat().st_size if p.is_file() else 0
            except OSError:  # deleted while we looked (a checkpoint swap, a thinned grid)
                pass
        return total

    def exists(self) -> bool:
        return self.run_json.is_file()

    # -- run.json --------------------------------------------------------------------------
    def _raw_info(self) -> dict:
        try:
            return read_json(self.run_json, CheckpointError)
        except FileNotFoundError:
            raise NotARun(f"{self.path} is not a run directory (no run.json)") from None

    def info(self) -> RunInfo:
        return RunInfo.from_dict(self._raw_info(), str(self.run_json))

    def config(self) -> TrainConfig:
        cfg = self.info().config
        if cfg is None:
            raise CheckpointError(f"{self.run_json} has no config; it was not written by genlab train")
        return cfg

    def create(self, config: TrainConfig, **fields) -> None:
        """Write a new run.json holding the whole config, before any process trains it."""
        self.path.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        fields = {"pid": pid, "pid_start": process_start(pid), **fields}
        self.update_info(config=config, status=RunStatus.QUEUED, created_at=time.time(), **fields)

    def update_info(self, **fields) -> None:
        info = self._raw_info() if self.exists() else {}
        info.update(RunInfo.fields_to_json(fields), updated_at=time.time())
        atomic_write_json(self.run_json, info)

    def status(self, info: RunInfo | None = None) -> RunStatus:
        """The recorded status, or INTERRUPTED for a running or queued run whose process is gone
        (``info``: run.json when the caller has read it already)."""
        info = info or self.info()
        if info.status == RunStatus.RUNNING and not self.is_locked():
            return RunStatus.INTERRUPTED
        if info.status == RunStatus.QUEUED and not self.is_locked() and not _pid_alive(info.pid, info.pid_start):
            return RunStatus.INTERRUPTED  # a process that is still starting up holds no lock yet, but is alive
        return info.status

    def clear_stop(self) -> None:
        """Remove a STOP request, whatever it is (a file, or a folder someone made by that name)."""
        if self.stop_file.is_dir() and not self.stop_file.is_symlink():
            shutil.rmtree(self.stop_file)
        else:
            self.stop_file.unlink(missing_ok=True)

    # -- room to say why, on a full disk ------------------------------------------------------
    def ensure_reserve(self) -> None:
        """Hold back a little space (``.reserve``), so that a run stopped by a full disk can still record why."""
        try:
            if not (self.path / RESERVE_NAME).is_file():
                atomic_write_bytes(self.path / RESERVE_NAME, bytes(RESERVE_BYTES))
        except OSError:
            pass

    def release_reserve(self) -> None:
        (self.path / RESERVE_NAME).unlink(missing_ok=True)

    def checkpoint_step(self) -> int | None:
        """The step of the complete checkpoint, or None."""
        try:
            step = read_json(self.path / CKPT / STATE_NAME).get("step")
        except (OSError, ValueError):
            return None
        return step if isinstance(step, int) else None

    def has_checkpoint(self) -> bool:
        return any((self.path / d / STATE_NAME).is_file() for d in (CKPT, CKPT_NEW, CKPT_OLD))

    # -- single-writer lock ----------------------------------------------------------------
    def acquire_lock(self):
        """Hold ``.lock`` until ``.release()``; raise RunLocked if another process holds it."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = try_lock(self.path / ".lock")
        if lock is None:
            pid = self._raw_info().get("pid") if self.exists() else None
            raise RunLocked(
                f"{self.path} is in use by{f' PID {pid}' if pid else ' another live process'}; "
                f"stop it first (touch {self.stop_file})"
            )
        return lock

    def is_locked(self) -> bool:
        return is_locked(self.path / ".lock")

    # -- metrics ---------------------------------------------------------------------------
    def append_metrics(self, row: MetricRow) -> None:
        with open(self.metrics_path, "a") as f:
            f.write(row.to_json() + "\n")
            f.flush()

    def read_metrics(self) -> list[MetricRow]:
        """All complete rows; a line cut short by a crash, or not a row at all, is ignored. A metrics.jsonl that
        cannot be read (a folder, a device, unreadable) gives no rows; one over ``MAX_LOG_BYTES`` its first part."""
        if not self.metrics_path.is_file():
            return []
        try:
            with self.metrics_path.open("rb") as f:
                text = f.read(MAX_LOG_BYTES).decode("utf-8", errors="replace")
        except OSError:
            return []
        return [r for line in text.splitlines() if (r := parse_row(line)) is not None]

    def truncate_metrics(self, step: int) -> None:
        """Keep only rows up to ``step`` (the checkpoint a resumed run continues from)."""
        rows = [r for r in self.read_metrics() if r.step <= step]
        atomic_write_bytes(self.metrics_path, "".join(r.to_json() + "\n" for r in rows).encode())

    # -- checkpoints -----------------------------------------------------------------------
    def recover_checkpoint(self) -> None:
        """Finish or undo a checkpoint swap that a crash interrupted."""
        ckpt, new, old = self.path / CKPT, self.path / CKPT_NEW, self.path / CKPT_OLD
        if not ckpt.exists():
            for candidate in (new, old):
                if (candidate / STATE_NAME).is_file():
                    os.rename(candidate, ckpt)
                    break
        for leftover in (new, old):
            if leftover.exists():
                shutil.rmtree(leftover)

    def save_checkpoint(self, model, optimizer: torch.optim.Optimizer, state: dict, ema=None) -> None:
        """The model (``ema``, the weights' moving average, when there is one) as ``model.safetensors``, which
        is what loading the run gives; the training weights (under ``train.`` when they differ), the
        optimizer and the RNG state beside it, in ``optimizer.safetensors``."""
        for m in (model, ema) if ema is not None else (model,):
            for name, p in m.state_dict().items():
                if p.is_floating_point() and not torch.isfinite(p).all():
                    raise FloatingPointError(f"refusing to checkpoint non-finite weights ('{name}')")
        self.recover_checkpoint()
        new, ckpt, old = self.path / CKPT_NEW, self.path / CKPT, self.path / CKPT_OLD
        new.mkdir(parents=True)
        try:
            (ema if ema is not None else model).save_pretrained(new)
            tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
            if ema is not None:
                tensors.update({TRAIN_PREFIX + k: v.contiguous() for k, v in model.state_dict().items()})
            tensors["rng.cpu"] = torch.get_rng_state()
            if torch.cuda.is_available():
                tensors["rng.cuda"] = torch.cuda.get_rng_state()
            atomic_write_bytes(new / OPTIM_NAME, save(tensors))  # a full disk is an OSError, like every write
            atomic_write_json(new / STATE_NAME, {**state, "optimizer": opt_meta})
            fsync_dir(new)
        except BaseException:
            shutil.rmtree(new, ignore_errors=True)
            raise
        if ckpt.exists():
            os.rename(ckpt, old)
        os.rename(new, ckpt)
        fsync_dir(self.path)
        shutil.rmtree(old, ignore_errors=True)

    def load_checkpoint(self, model, optimizer: torch.optim.Optimizer | None, ema=None) -> dict:
        """Load weights (and optimizer and RNG state) into ``model``, and the moving average into ``ema``
        when given (a run that starts averaging on resume starts from the weights); return the trainer
        state. A run saved with an average and resumed without one trains on from its training weights."""

        self.recover_checkpoint()
        ckpt = self.path / CKPT
        if not (ckpt / STATE_NAME).is_file():
            raise CheckpointError(f"{self.path} has no complete checkpoint to resume from")
        damaged = (
            f"; this checkpoint cannot be resumed. Its weights may still load (genlab sample {self.path}); "
            f"to train on, start a new run"
        )
        try:
            state = check_fields(read_json(ckpt / STATE_NAME), TRAINER_STATE, str(ckpt / STATE_NAME))
            if not isinstance(state.get("step"), int):
                raise ValueError("no step count")
        except (ValueError, OSError) as e:
            raise CheckpointError(f"{ckpt / STATE_NAME} is damaged ({e}){damaged}") from None
        saved = read_weights(ckpt / "model.safetensors", model)
        try:
            tensors = load_file(str(ckpt / OPTIM_NAME))
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
                f"{ckpt / OPTIM_NAME} is damaged or does not fit this model "
                f"({type(e).__name__}: {str(e)[:200]}){damaged}"
            ) from None
        torch.set_rng_state(rng)
        if cuda_rng is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(cuda_rng)
        return state

    # -- the best weights by test bits/dim ---------------------------------------------------------------
    def save_best(self, model, step: int, test_bpd: float, dataset: str) -> None:
        """Keep ``model``'s weights as the run's best (a model folder that ``load_model`` reads), swapped
        in whole like the checkpoint, with the evaluation that chose them in ``metrics.json``."""
        new, best = self.path / BEST_NEW, self.path / BEST
        shutil.rmtree(new, ignore_errors=True)
        new.mkdir(parents=True)
        try:
            model.save_pretrained(new)
            atomic_write_json(new / "metrics.json", {"step": step, "test_bpd": test_bpd, "dataset": dataset})
            fsync_dir(new)
        except BaseException:
            shutil.rmtree(new, ignore_errors=True)
            raise
        shutil.rmtree(best, ignore_errors=True)
        os.rename(new, best)

    def best(self) -> tuple[int, float] | None:
        """(step, test bits/dim) of the kept best weights; None if there are none (or they are unreadable)."""
        try:
            d = check_fields(read_json(self.path / BEST / "metrics.json"), BEST_METRICS, "best/metrics.json")
            step, bpd = d["step"], d["test_bpd"]
        except (OSError, ValueError, KeyError):
            return None
        if not (self.path / BEST / "model.safetensors").is_file() or step is None or bpd is None:
            return None
        return step, float(bpd)

    def drop_best_after(self, step: int) -> None:
        """A resumed run replays the steps after ``step``: best weights from those steps are dropped."""
        best = self.best()
        if best is not None and best[0] > step:
            shutil.rmtree(self.path / BEST, ignore_errors=True)


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


def list_runs(root: Path) -> list[RunDir]:
    """Run directories directly under ``root``, newest first."""
    root = Path(root)
    try:
        folders = list(root.iterdir()) if root.is_dir() else []
    except OSError:  # a runs folder it may not read lists no runs (the pages say where they look)
        return []
    dated = [(_mtime(p / "run.json"), p) for p in folders]
    return [RunDir(p) for t, p in sorted(dated, reverse=True) if t > 0]


def _mtime(path: Path) -> float:
    """When ``path`` last changed; 0 when it is not a readable file (a folder that is not a run, or one
    deleted while the list was read)."""
    try:
        return path.stat().st_mtime if path.is_file() else 0.0
    except OSError:
        return 0.0
