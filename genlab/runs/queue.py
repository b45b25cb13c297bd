"""The queue of training runs: at most N of the runs under one folder train at once, in the order they were queued.

The runs under one folder share N slot files (``ROOT/.slots/slot-i``), and a run trains only while it holds a
slot's ``flock``. The kernel releases a dead process's slot, so a killed run can never leak one. A waiting
process holds its run's ``.lock``, so one that died while queued shows as ``interrupted``, not ``queued`` forever.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .. import names
from ..storage import try_lock
from .records import RunStatus
from .rundir import RunDir
from .summary import list_runs

SLOTS_DIR = names.SLOTS


def _queued_ahead(run: RunDir) -> list[RunDir]:
    """Live queued runs under the same folder that were queued before ``run``."""
    mine = run.info().queued_at or 0.0
    ahead = []
    for other in list_runs(run.path.parent):
        if other.path == run.path:
            continue
        try:
            info = other.info()
        except (OSError, ValueError):
            continue
        # status() counts a run whose process is still starting (alive, not yet locked) as queued
        if other.status() == RunStatus.QUEUED and (info.queued_at or 0.0, other.path.name) < (mine, run.path.name):
            ahead.append(other)
    return ahead


def try_slot(root: Path, max_concurrent: int):
    """A held slot lock if one of ``max_concurrent`` is free, else None (release it with ``.release()``)."""
    slots = Path(root) / SLOTS_DIR
    slots.mkdir(parents=True, exist_ok=True)
    for i in range(max_concurrent):
        slot = try_lock(slots / f"slot-{i}")
        if slot is not None:
            return slot
    return None


def wait_for_slot(run: RunDir, max_concurrent: int, poll_s: float = 0.5):
    """Block until ``run`` may train; return the slot (keep it open while training) or None if
    the run was stopped while it waited. The caller must not hold the run's ``.lock``."""
    lock = run.acquire_lock()  # marks this queued run as alive
    try:
        if not run.info().queued_at:
            run.update_info(queued_at=time.time())
        run.update_info(status=RunStatus.QUEUED, pid=os.getpid())
        while True:
            if run.stop_file.exists():
                run.clear_stop()
                run.update_info(status=RunStatus.STOPPED, error=None)
                return None
            if not _queued_ahead(run):
                slot = try_slot(run.path.parent, max_concurrent)
                if slot is not None:
                    return slot
            time.sleep(poll_s)
    finally:
        lock.release()
