"""Training runs as background processes, with at most N at once: what the app's Launch,
Stop and Resume buttons do, usable from any other front end too.

A launched run is its own process (``python -m genlab train --resume RUN --queue N``),
detached from the caller's session, so a Streamlit rerun, a closed tab or a restarted
server neither stops nor duplicates it. Its run directory, with the whole ``TrainConfig``
in ``run.json`` (status ``queued``), exists before the process starts, and the process
reads its config from there: a process that dies at once leaves a run that resumes with
exactly the settings it was launched with.

The queue needs no server: the runs under one folder share N slot files
(``ROOT/.slots/slot-i``), and a run trains only while it holds a slot's ``flock``. The
kernel releases a dead process's slot, so a killed run can never leak one. Waiting runs
start in the order they were queued; a waiting process holds its run's ``.lock``, so
one that died while queued shows as ``interrupted`` rather than ``queued`` forever.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import subprocess
import sys
import threading
import time

from .. import public
from ..errors import NotARun, PublicModeError, RunError
from ..settings import settings
from .config import TrainConfig
from .process import process_start
from .records import RunStatus
from .rundir import RunDir
from .start import create_run, run_path


def default_max_concurrent() -> int:
    """``GENLAB_MAX_RUNS``, else 1: two CPU runs at once only halve each other's speed."""
    return settings().max_runs


# -- processes --------------------------------------------------------------------------------


def _reap(proc: subprocess.Popen) -> None:
    proc.wait()  # a finished child is collected here instead of lingering as a zombie


def _spawn(args: list[str], run: RunDir) -> subprocess.Popen:
    run.path.mkdir(parents=True, exist_ok=True)
    log = open(run.log_path, "ab")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"}
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "genlab", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    finally:
        log.close()
    threading.Thread(target=_reap, args=(proc,), daemon=True).start()
    return proc


def _start(run: RunDir, max_concurrent: int, processes: int = 1) -> None:
    """The run's process: it waits for a slot, then trains (through torchrun with ``processes`` > 1), at a lower
    CPU priority than the app that launched it (``GENLAB_RUN_NICE``): the pages stay quick while it trains, and
    it takes whatever CPU they leave (docs/benchmarks.md, "The served app's capacity")."""
    args = ["train", "--resume", str(run.path), "--queue", str(max_concurrent)]
    if settings().run_nice:
        args += ["--nice", str(settings().run_nice)]
    if processes > 1:
        args += ["--nproc-per-node", str(processes)]
    run.update_info(launch=args, processes=processes)
    try:
        pid = _spawn(args, run).pid
    except OSError as e:  # EAGAIN, ENOMEM: no process will ever take this run, so it must not wait as queued
        why = f"its training process could not start ({e.strerror or e}); resume it when the machine has room"
        run.update_info(status=RunStatus.FAILED, error=why, pid=None, pid_start=None)
        raise RunError(f"{run.path.name}: {why}") from None
    run.update_info(pid=pid, pid_start=process_start(pid))  # alive while it starts up, before it takes the lock


def launch(
    cfg: TrainConfig,
    runs_root: str | os.PathLike,
    name: str | None = None,
    max_concurrent: int | None = None,
    processes: int = 1,
    preset: str | None = None,
    owner: str | None = None,
) -> RunDir:
    """Create the run directory (status ``queued``, the whole config in run.json) and start its training
    process. In public mode (``genlab.public``) the paths are checked and the run is capped first, and
    ``owner`` (the launching session's secret token) is what Stop, Resume and Delete ask for later."""
    public.check_path(runs_root, "runs folder")
    public.check_dataset(cfg.dataset)
    cfg, max_concurrent = public.cap_config(cfg), public.cap_runs(max_concurrent)
    run = create_run(
        cfg, run_path(runs_root, cfg, name, preset), queued_at=time.time(), preset=preset, owner=owner_hash(owner)
    )
    _start(run, max_concurrent or default_max_concurrent(), public.cap_processes(processes))
    return run


def owner_hash(token: str | None) -> str | None:
    """What run.json keeps of a session's token: its hash, so that reading a run.json gives no one the token."""
    return hashlib.sha256(token.encode()).hexdigest() if token else None


def may_control(run: RunDir, owner: str | None) -> bool:
    """Whether the session with token ``owner`` may stop, resume or delete ``run``: anyone at a local app; in a
    public app, only the session that launched it."""
    if not public.enabled():
        return True
    try:
        recorded = run.info().owner
    except (OSError, ValueError):
        return False
    return recorded is not None and hmac.compare_digest(recorded, owner_hash(owner) or "")


def _check_owner(run: RunDir, owner: str | None, what: str) -> None:
    if not may_control(run, owner):
        raise PublicModeError(
            f"this is a public genlab app: only the visitor who launched {run.path.name} can {what} it"
        )


def resume(
    run: RunDir, max_concurrent: int | None = None, processes: int | None = None, owner: str | None = None, **overrides
) -> None:
    """Continue a stopped, interrupted or failed run from its last checkpoint (queued like a launch).
    ``overrides`` change resumable settings (``TrainConfig.resumed_with``); others raise ConfigError."""
    _check_owner(run, owner, "resume")
    status = run.status()
    if status.active:
        raise RunError(f"{run.path.name} is {status}; stop it before resuming")
    if run.info().resumable is False:
        raise RunError(f"{run.path.name} failed for a reason a resume cannot fix; launch a new run instead")
    public.check_path(run.path, "run")
    cfg = run.config().resumed_with(overrides)
    if public.enabled():  # the caps travel with the resumed run, whatever it was launched with
        cfg = public.cap_config(cfg)
    max_concurrent = public.cap_runs(max_concurrent) or default_max_concurrent()
    run.clear_stop()
    run.update_info(config=cfg, status=RunStatus.QUEUED, queued_at=time.time(), error=None)
    # as many processes as before unless told otherwise (a checkpoint resumes with any number)
    _start(run, max_concurrent, public.cap_processes(processes or run.info().processes or 1))


def stop(run: RunDir, owner: str | None = None) -> None:
    """Ask a run to stop: a training run checkpoints and exits, a queued one leaves the queue. A run whose
    process is gone has nobody to read the request, and is refused: it shows as interrupted, to resume or delete."""
    _check_owner(run, owner, "stop")
    if not run.status().active:
        raise RunError(f"{run.path.name} is not training; there is nothing to stop")
    run.stop_file.touch()


def delete(run: RunDir, owner: str | None = None) -> None:
    """Delete a run's folder for good; refused while a process trains it or waits to, and in a public app
    for anyone but the visitor who launched it."""
    if not run.exists():
        raise NotARun(f"{run.path} is not a run directory (no run.json)")
    try:
        status = run.status()
    except (OSError, ValueError):  # an unreadable run.json: still deletable unless a process holds the run
        status = RunStatus.UNKNOWN
    if status.active or run.is_locked():
        raise RunError(f"{run.path.name} is {status}; stop it before deleting it")
    _check_owner(run, owner, "delete")
    lock = run.acquire_lock()  # RunLocked if a process took it a moment ago; nothing trains it while we delete
    try:
        shutil.rmtree(run.path)
    finally:
        lock.release()
