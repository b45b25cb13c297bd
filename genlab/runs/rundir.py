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

The checkpoint's format is ``genlab.runs.checkpoint``; a run list reads runs through
``genlab.runs.summary``; every name above is defined once, in ``genlab.names``.

What the files hold is typed in ``genlab.runs.records`` (``RunInfo``, ``RunStatus``, the metric
rows); pages and the CLI ask a ``RunDir`` for paths instead of building them.

Every file that is replaced is replaced atomically.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .. import names
from ..errors import CheckpointError, NotARun, RunLocked
from ..schema import MAX_LOG_BYTES, read_json
from ..storage import atomic_write_bytes, atomic_write_json, is_locked, try_lock
from . import checkpoint
from .config import TrainConfig
from .process import pid_alive, process_start
from .records import MetricRow, RunInfo, RunStatus, parse_row

RESERVE_BYTES = 256 * 1024


@dataclass
class RunDir:
    path: Path

    def __post_init__(self):
        self.path = Path(self.path)

    # -- paths -----------------------------------------------------------------------------
    @property
    def run_json(self) -> Path:
        return self.path / names.RUN_INFO

    @property
    def metrics_path(self) -> Path:
        return self.path / names.RUN_METRICS

    @property
    def checkpoint(self) -> Path:
        return self.path / names.CHECKPOINT

    @property
    def samples(self) -> Path:
        return self.path / names.RUN_SAMPLES

    @property
    def stop_file(self) -> Path:
        return self.path / names.STOP

    @property
    def log_path(self) -> Path:
        return self.path / names.LOG

    @property
    def weights_file(self) -> Path:
        return self.path / names.CHECKPOINT / names.WEIGHTS

    @property
    def best_dir(self) -> Path:
        return self.path / names.BEST

    def sample_grid(self, step: int) -> Path:
        return self.samples / f"step-{step:07d}.png"

    def recon_grid(self, step: int) -> Path:
        return self.samples / f"recon-{step:07d}.png"

    def latest_samples(self) -> Path | None:
        grids = sorted(self.samples.glob("step-*.png")) if self.samples.is_dir() else []
        return grids[-1] if grids else None

    def disk_bytes(self) -> int:
        """What the run takes on disk: its files, in every folder (W&B's links to its own logs counted once)."""
        total = 0
        for p in self.path.rglob("*"):
            try:
                total += p.stat().st_size if p.is_file() and not p.is_symlink() else 0
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
        if info.status == RunStatus.QUEUED and not self.is_locked() and not pid_alive(info.pid, info.pid_start):
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
            if not (self.path / names.RESERVE).is_file():
                atomic_write_bytes(self.path / names.RESERVE, bytes(RESERVE_BYTES))
        except OSError:
            pass

    def release_reserve(self) -> None:
        (self.path / names.RESERVE).unlink(missing_ok=True)

    # -- the checkpoint and the best weights (genlab.runs.checkpoint) ---------------------------
    def checkpoint_step(self) -> int | None:
        """The step of the complete checkpoint, or None."""
        return checkpoint.step(self.path)

    def has_checkpoint(self) -> bool:
        return checkpoint.exists(self.path)

    def best(self) -> tuple[int, float] | None:
        """(step, test bits/dim) of the kept best weights; None if there are none (or they are unreadable)."""
        return checkpoint.best(self.path)

    # -- single-writer lock ----------------------------------------------------------------
    def acquire_lock(self):
        """Hold ``.lock`` until ``.release()``; raise RunLocked if another process holds it."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = try_lock(self.path / names.LOCK)
        if lock is None:
            pid = self._raw_info().get("pid") if self.exists() else None
            raise RunLocked(
                f"{self.path} is in use by{f' PID {pid}' if pid else ' another live process'}; "
                f"stop it first (touch {self.stop_file})"
            )
        return lock

    def is_locked(self) -> bool:
        return is_locked(self.path / names.LOCK)

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
