"""Training runs as background processes, with at most N at once: what the app's Launch,
Stop and Resume buttons do, usable from any other front end too.

A launched run is its own process (``python -m genlab train ... --queue N``), detached
from the caller's session, so a Streamlit rerun, a closed tab or a restarted server
neither stops nor duplicates it. Its run directory exists (``run.json``, status
``queued``) before :func:`launch` returns, so every viewer sees it at once.

The queue needs no server: the runs under one folder share N slot files
(``ROOT/.slots/slot-i``), and a run trains only while it holds a slot's ``flock``. The
kernel releases a dead process's slot, so a killed run can never leak one. Waiting runs
start in the order they were queued; a waiting process holds its run's ``.lock``, so
one that died while queued shows as ``interrupted`` rather than ``queued`` forever.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

from .paths import safe_name
from .rundir import RunDir, list_runs

SLOTS_DIR = ".slots"
LOG_NAME = "train.log"


def default_max_concurrent() -> int:
    """``GENLAB_MAX_RUNS``, else 1: two CPU runs at once only halve each other's speed."""
    return max(1, int(os.environ.get("GENLAB_MAX_RUNS", "1")))


@dataclass
class TrainRequest:
    """What the app's form asks for; becomes ``python -m genlab train`` arguments."""

    model: str
    dataset: str = "emoji"
    image_size: int | None = None
    epochs: int | None = None
    max_steps: int | None = None
    max_minutes: float | None = None
    step_limit: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int | None = None
    device: str = "auto"
    fid_every: int | None = None
    fid_samples: int | None = None
    fid_ref_n: int | None = None
    eval_every: int | None = None
    log_every: int | None = None
    sample_n: int | None = None
    model_config: dict = field(default_factory=dict)

    def argv(self, out: Path, max_concurrent: int | None) -> list[str]:
        options = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("model", "model_config")}
        return (["train", self.model, "--out", str(out)] + cli_flags({**options, **self.model_config})
                + cli_flags({"queue": max_concurrent}))


def cli_flags(options: dict) -> list[str]:
    """{"max_steps": 10, "lr": None} -> ["--max-steps", "10"]: unset options are left to the CLI's defaults."""
    return [a for k, v in options.items() if v is not None for a in ("--" + k.replace("_", "-"), str(v))]


# -- processes --------------------------------------------------------------------------------


def _reap(proc: subprocess.Popen) -> None:
    proc.wait()  # a finished child is collected here instead of lingering as a zombie


def _spawn(args: list[str], run: RunDir) -> subprocess.Popen:
    run.path.mkdir(parents=True, exist_ok=True)
    log = open(run.path / LOG_NAME, "ab")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"}
    try:
        proc = subprocess.Popen([sys.executable, "-m", "genlab", *args], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    finally:
        log.close()
    threading.Thread(target=_reap, args=(proc,), daemon=True).start()
    return proc


def new_run_name(req: TrainRequest) -> str:
    return safe_name(f"{req.model}-{req.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")


def launch(req: TrainRequest, runs_root: str | os.PathLike, name: str | None = None,
           max_concurrent: int | None = None) -> RunDir:
    """Create the run directory (status ``queued``) and start its training process.
    In public mode (``genlab.public``) the paths are checked and the run is capped first."""
    from . import public
    from .data import DatasetUnavailable, dataset_info
    public.check_path(runs_root, "runs folder")
    public.check_dataset(req.dataset)
    req, max_concurrent = public.cap_request(req), public.cap_runs(max_concurrent)
    info = dataset_info(req.dataset)  # an unknown or unavailable data set fails here, before anything is written
    if not info.available:
        raise DatasetUnavailable(f"{req.dataset} is not available here: {info.reason}")
    run = RunDir(Path(runs_root) / safe_name(name or new_run_name(req)))
    if run.path.exists() and any(run.path.iterdir()):
        raise FileExistsError(f"a run named '{run.path.name}' already exists in {run.path.parent}; choose another name")
    max_concurrent = max_concurrent or default_max_concurrent()
    run.path.mkdir(parents=True, exist_ok=True)
    args = req.argv(run.path, max_concurrent)
    run.update_info(status="queued", queued_at=time.time(), config={"model": req.model, "dataset": req.dataset},
                    launch=args)
    proc = _spawn(args, run)
    run.update_info(pid=proc.pid)  # alive while it starts up, before it can take the run's lock
    return run


def resume(run: RunDir, max_concurrent: int | None = None, **overrides) -> None:
    """Continue a stopped, interrupted or failed run from its last checkpoint (queued like a launch)."""
    from . import public
    status = run.status()
    if status in ("running", "queued"):
        raise RuntimeError(f"{run.path.name} is {status}; stop it before resuming")
    public.check_path(run.path, "run")
    if public.enabled():  # the caps travel with the resumed run, whatever it was launched with
        overrides = {**overrides, **public.run_caps(overrides.get("max_minutes"), overrides.get("step_limit"))}
    max_concurrent = public.cap_runs(max_concurrent) or default_max_concurrent()
    run.stop_file.unlink(missing_ok=True)
    args = ["train", "--resume", str(run.path)] + cli_flags({"queue": max_concurrent, **overrides})
    run.update_info(status="queued", queued_at=time.time(), error=None)
    run.update_info(pid=_spawn(args, run).pid)


def stop(run: RunDir) -> None:
    """Ask a run to stop: a training run checkpoints and exits, a queued one leaves the queue."""
    run.stop_file.touch()


# -- the queue (runs in the training process, via ``genlab train --queue N``) ------------------
def _queued_ahead(run: RunDir) -> list[RunDir]:
    """Live queued runs under the same folder that were queued before ``run``."""
    mine = run.read_info().get("queued_at", 0.0)
    ahead = []
    for other in list_runs(run.path.parent):
        if other.path == run.path:
            continue
        try:
            info = other.read_info()
        except (OSError, ValueError):
            continue
        # status() counts a run whose process is still starting (alive, not yet locked) as queued
        if other.status() == "queued" and (info.get("queued_at", 0.0), other.path.name) < (mine, run.path.name):
            ahead.append(other)
    return ahead


def try_slot(root: Path, max_concurrent: int):
    """An open, flocked slot file if one of ``max_concurrent`` is free, else None."""
    slots = Path(root) / SLOTS_DIR
    slots.mkdir(parents=True, exist_ok=True)
    for i in range(max_concurrent):
        f = open(slots / f"slot-{i}", "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except BlockingIOError:
            f.close()
    return None


def wait_for_slot(run: RunDir, max_concurrent: int, poll_s: float = 0.5):
    """Block until ``run`` may train; return the slot (keep it open while training) or None if
    the run was stopped while it waited. The caller must not hold the run's ``.lock``."""
    lock = run.acquire_lock()  # marks this queued run as alive
    try:
        if not run.read_info().get("queued_at"):
            run.update_info(queued_at=time.time())
        run.update_info(status="queued", pid=os.getpid())
        while True:
            if run.stop_file.exists():
                run.stop_file.unlink(missing_ok=True)
                run.update_info(status="stopped", error=None)
                return None
            if not _queued_ahead(run):
                slot = try_slot(run.path.parent, max_concurrent)
                if slot is not None:
                    return slot
            time.sleep(poll_s)
    finally:
        lock.close()
