"""The run directory: the one interface that the trainer writes and the app and CLI read.

    RUN/run.json        config, dataset, seed, versions, status, error
    RUN/metrics.jsonl   one JSON object per logged step ("kind": "train") and evaluation ("kind": "eval")
    RUN/checkpoint/     config.json + model.safetensors + optimizer.safetensors + trainer_state.json
    RUN/samples/        step-0000500.png (samples), recon-0000500.png (reconstructions, when the model has them)
    RUN/STOP            created by anyone who wants the run to stop; the trainer checkpoints and exits
    RUN/.lock           held (flock) by the process training this run, released by the kernel if it dies

Every file that is replaced is replaced atomically; ``checkpoint/`` is swapped as a whole
(``checkpoint.new`` -> ``checkpoint``), so a process killed at any instant leaves a
complete checkpoint on disk.
"""
from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .models.base import CheckpointError, atomic_write_bytes, atomic_write_json

CKPT, CKPT_NEW, CKPT_OLD = "checkpoint", "checkpoint.new", "checkpoint.old"
STATE_NAME = "trainer_state.json"        # written last: its presence marks a complete checkpoint
OPTIM_NAME = "optimizer.safetensors"


class RunLocked(RuntimeError):
    """Another live process is training this run."""


def package_versions() -> dict:
    import numpy
    import torchvision

    from . import __version__
    return {"genlab": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": numpy.__version__, "python": platform.python_version()}


def _pid_alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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

    def exists(self) -> bool:
        return self.run_json.is_file()

    # -- run.json --------------------------------------------------------------------------
    def read_info(self) -> dict:
        try:
            return json.loads(self.run_json.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.path} is not a run directory (no run.json)") from None

    def update_info(self, **fields) -> dict:
        info = self.read_info() if self.exists() else {}
        info.update(fields, updated_at=time.time())
        atomic_write_json(self.run_json, info)
        return info

    def status(self) -> str:
        """The recorded status, or 'interrupted' for a running or queued run whose process is gone."""
        info = self.read_info()
        st = info.get("status", "unknown")
        if st == "running" and not self.is_locked():
            return "interrupted"
        if st == "queued" and not self.is_locked() and not _pid_alive(info.get("pid")):
            return "interrupted"  # a process that is still starting up holds no lock yet, but is alive
        return st

    def has_checkpoint(self) -> bool:
        return any((self.path / d / STATE_NAME).is_file() for d in (CKPT, CKPT_NEW, CKPT_OLD))

    # -- single-writer lock ----------------------------------------------------------------
    def acquire_lock(self):
        """Hold ``.lock`` for this process's lifetime; raise RunLocked if another process holds it."""
        self.path.mkdir(parents=True, exist_ok=True)
        f = open(self.path / ".lock", "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise RunLocked(f"{self.path} is being trained by another live process; stop it first "
                            f"(touch {self.stop_file})") from None
        return f

    def is_locked(self) -> bool:
        lock = self.path / ".lock"
        if not lock.exists():
            return False
        with open(lock, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
            return False

    # -- metrics ---------------------------------------------------------------------------
    def append_metrics(self, row: dict) -> None:
        line = json.dumps(row, allow_nan=True) + "\n"
        with open(self.metrics_path, "a") as f:
            f.write(line)
            f.flush()

    def read_metrics(self) -> list[dict]:
        """All complete rows; a line cut short by a crash is ignored."""
        rows = []
        try:
            text = self.metrics_path.read_text()
        except FileNotFoundError:
            return rows
        for line in text.splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows

    def truncate_metrics(self, step: int) -> None:
        """Keep only rows up to ``step`` (the checkpoint a resumed run continues from)."""
        rows = [r for r in self.read_metrics() if r.get("step", 0) <= step]
        atomic_write_bytes(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows).encode())

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

    def save_checkpoint(self, model, optimizer: torch.optim.Optimizer, state: dict) -> None:
        from safetensors.torch import save_file

        for name, p in model.state_dict().items():
            if p.is_floating_point() and not torch.isfinite(p).all():
                raise FloatingPointError(f"refusing to checkpoint non-finite weights ('{name}')")
        self.recover_checkpoint()
        new, ckpt, old = self.path / CKPT_NEW, self.path / CKPT, self.path / CKPT_OLD
        new.mkdir(parents=True)
        try:
            model.save_pretrained(new)
            tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
            tensors["rng.cpu"] = torch.get_rng_state()
            if torch.cuda.is_available():
                tensors["rng.cuda"] = torch.cuda.get_rng_state()
            save_file(tensors, str(new / OPTIM_NAME))
            atomic_write_json(new / STATE_NAME, {**state, "optimizer": opt_meta})
            _fsync_dir(new)
        except BaseException:
            shutil.rmtree(new, ignore_errors=True)
            raise
        if ckpt.exists():
            os.rename(ckpt, old)
        os.rename(new, ckpt)
        _fsync_dir(self.path)
        shutil.rmtree(old, ignore_errors=True)

    def load_checkpoint(self, model, optimizer: torch.optim.Optimizer | None) -> dict:
        """Load weights (and optimizer and RNG state) into ``model``; return the trainer state."""
        from safetensors.torch import load_file

        from .models.base import read_weights
        self.recover_checkpoint()
        ckpt = self.path / CKPT
        if not (ckpt / STATE_NAME).is_file():
            raise CheckpointError(f"{self.path} has no complete checkpoint to resume from")
        state = json.loads((ckpt / STATE_NAME).read_text())
        model.load_state_dict(read_weights(ckpt / "model.safetensors", model), strict=True)
        tensors = load_file(str(ckpt / OPTIM_NAME))
        torch.set_rng_state(tensors.pop("rng.cpu"))
        cuda_rng = tensors.pop("rng.cuda", None)
        if cuda_rng is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(cuda_rng)
        if optimizer is not None:
            optimizer.load_state_dict(_unflatten_optimizer(tensors, state.pop("optimizer")))
        return state


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


@dataclass
class RunSummary:
    """What a run list shows: one row per run, read from run.json and metrics.jsonl."""

    name: str
    model: str
    dataset: str
    status: str
    step: int
    total_steps: int | None
    images_per_s: float | None
    eta_s: float | None          # training time left at the last logged speed (evaluations not counted)
    test_bpd: float | None
    fid: float | None
    fid_samples: int | None
    error: str | None

    @property
    def progress(self) -> float | None:
        return self.step / self.total_steps if self.total_steps else None

    def display_row(self) -> dict[str, str]:
        """The run list's columns as text (the CLI's ``genlab runs`` and the app's table)."""
        return {"run": self.name, "model": self.model, "dataset": self.dataset, "status": self.status,
                "step": f"{self.step}/{self.total_steps}" if self.total_steps else str(self.step),
                "images/s": f"{self.images_per_s:.0f}" if self.images_per_s else "-",
                "ETA": time.strftime("%H:%M:%S", time.gmtime(self.eta_s)) if self.eta_s is not None else "-",
                "test bpd": f"{self.test_bpd:.3f}" if self.test_bpd is not None else "-",
                "FID@K": f"{self.fid:.1f}@{self.fid_samples}" if self.fid is not None else "-"}


def summarize(run: RunDir) -> RunSummary:
    info = run.read_info()
    cfg = info.get("config", {})
    rows = run.read_metrics()
    last = {kind: next((r for r in reversed(rows) if r.get("kind") == kind), None) for kind in ("train", "eval", "fid")}
    step = max((r.get("step", 0) for r in rows), default=0)
    total = info.get("total_steps")
    speed = last["train"]["images_per_s"] if last["train"] else None
    status = run.status()
    eta = None
    if status == "running" and speed and total:
        eta = (total - step) * cfg.get("batch_size", 1) / speed
    return RunSummary(name=run.path.name, model=cfg.get("model", "?"), dataset=cfg.get("dataset", "?"), status=status,
                      step=step, total_steps=total, images_per_s=speed, eta_s=eta,
                      test_bpd=last["eval"].get("test_bpd") if last["eval"] else None,
                      fid=last["fid"]["fid"] if last["fid"] else None,
                      fid_samples=last["fid"]["fid_samples"] if last["fid"] else None, error=info.get("error"))


def list_runs(root: Path) -> list[RunDir]:
    """Run directories directly under ``root``, newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [RunDir(p) for p in root.iterdir() if (p / "run.json").is_file()]
    return sorted(runs, key=lambda r: r.run_json.stat().st_mtime, reverse=True)
