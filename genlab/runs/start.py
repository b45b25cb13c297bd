"""Creating a run and training it in this process: what ``genlab train`` does, and what a launched run's
process (``genlab.runs.jobs``) does once it starts.

    run = create_run(cfg, run_path(root, cfg))           # checked, then run.json (status queued)
    train(run, queue=1)                                  # wait for a slot, then train here (or through torchrun)

A run directory is named once, by ``run_path``, whoever creates it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from ..data import require_dataset
from ..errors import NotARun, RunExists
from ..paths import safe_name
from .config import TrainConfig
from .distributed import world_from_env
from .queue import wait_for_slot
from .records import RunStatus
from .rundir import RunDir
from .sinks import require
from .trainer import Trainer


def run_name(cfg: TrainConfig, preset: str | None = None) -> str:
    """``vae-emoji-faces-20261201-213000``, or the preset's name and the time for a preset's run."""
    what = preset or f"{cfg.model}-{cfg.dataset}"
    return safe_name(f"{what}-{time.strftime('%Y%m%d-%H%M%S')}")


def run_path(root: str | os.PathLike, cfg: TrainConfig, name: str | None = None, preset: str | None = None) -> RunDir:
    """Where a new run lives: ``root/name`` (made safe as a folder name), else ``root/`` + ``run_name``."""
    return RunDir(Path(root) / safe_name(name or run_name(cfg, preset)))


def never_started(run: RunDir) -> bool:
    """A run directory written by a launcher (status queued) whose training has not begun."""
    return run.info().status == RunStatus.QUEUED and not run.has_checkpoint() and not run.read_metrics()


def create_run(cfg: TrainConfig, run: RunDir, **fields) -> RunDir:
    """Check that ``cfg`` can train here (its data set, its size), then write ``run``'s run.json (status queued)
    with ``fields``. A folder that holds anything but a run that never started is refused."""
    require_dataset(cfg.dataset)  # an unknown or unavailable data set fails here, before anything is written
    cfg.check_size()  # so does a model too large for this machine (or this public app)
    require(cfg.log)  # and a tracker (--log) whose package is not installed
    if run.path.is_dir() and any(run.path.iterdir()) and not (run.exists() and never_started(run)):
        raise RunExists(
            f"a run named '{run.path.name}' already exists in {run.path.parent}: resume it "
            f"(python -m genlab train --resume {run.path}) or choose another name"
        )
    run.create(cfg, **fields)
    return run


def resume_config(run: RunDir, options: dict) -> TrainConfig:
    """The config ``run`` trains on when resumed with ``options`` (resumable fields only), recorded in run.json."""
    if not run.exists():
        raise NotARun(f"{run.path} is not a run directory (no run.json)")
    if world_from_env().main:  # before anything is written: a run a live process holds keeps its files
        run.acquire_lock().release()  # RunLocked, naming the process, when one holds it
    before = run.config()
    cfg = before.resumed_with(options)
    if cfg.log != before.log:
        require(cfg.log)
    if cfg != before and world_from_env().main:  # on disk before training: the run records what it trains
        run.update_info(config=cfg)
    return cfg


def lower_priority(n: int) -> None:
    """Lower this process's CPU priority by ``n``, before anything heavy (torchrun's workers inherit it). A run the
    app launches leads its own session, and where Linux groups the scheduling of each session (autogroup), a
    process's nice value only ranks it within its group: the group's own nice, in /proc/self/autogroup, is what
    ranks the run against the app."""
    os.nice(n)
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(n))
    except OSError:
        pass  # not Linux, or no autogroup: the process's nice value is the whole story


def train(run: RunDir, cfg: TrainConfig, queue: int | None = None, processes: int | None = None) -> RunStatus:
    """Train ``run`` on ``cfg`` in this process: wait for one of ``queue`` slots first, train through torchrun
    with ``processes`` > 1. A run stopped or killed before its first checkpoint starts again from step 0; the
    rows such an attempt logged are dropped."""
    world = world_from_env()
    slot = None
    if queue and not world.distributed:
        slot = wait_for_slot(run, queue)
        if slot is None:
            return RunStatus.STOPPED
    try:
        if (processes or 1) > 1 and not world.distributed:
            return torchrun(run, processes)
        resume = run.has_checkpoint()
        if world.main and not resume and run.metrics_path.exists():
            run.truncate_metrics(0)  # rows of an attempt that never reached a checkpoint
        return Trainer(cfg, run.path, resume=resume).fit()
    finally:
        if slot is not None:
            slot.release()


def torchrun(run: RunDir, nproc: int) -> RunStatus:
    """Train ``run`` with ``nproc`` processes on this machine, and wait. A job whose rank 0 died could not say
    so itself: its run is marked failed here."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    code = subprocess.call([*cmd, "-m", "genlab", "train", "--resume", str(run.path)])
    if code and run.status() in (RunStatus.RUNNING, RunStatus.QUEUED, RunStatus.INTERRUPTED):
        run.update_info(
            status=RunStatus.FAILED,
            error=f"the {nproc}-process job ended with exit code {code} before rank 0 could record "
            f"why (rank 0 died; torchrun's summary in train.log names the rank); the last "
            f"checkpoint is intact. Resume with: python -m genlab train --resume {run.path}",
        )
    return run.status()
