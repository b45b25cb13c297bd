"""Public mode (``GENLAB_PUBLIC=1``): what a hosted app, such as our Hugging Face Space, lets visitors do.

A local user owns the machine; a visitor of a public app does not. In public mode:

- every path a visitor can name (the runs folder, ``folder:PATH`` data sets) must lie inside the
  app's own folders: the runs folder, the shipped checkpoints, genlab's cache (``GENLAB_HOME``) and
  ``GENLAB_DATA_DIR`` (default ``GENLAB_HOME/data``); anything else is refused before it is read;
- the runs folder is the app's (``GENLAB_RUNS``), and the page cannot change it;
- at most ``GENLAB_MAX_RUNS`` runs train at once (default 1), and a visitor cannot raise it;
- every run, launched or resumed, is capped at ``GENLAB_PUBLIC_MAX_STEPS`` steps (default 2000) and
  ``GENLAB_PUBLIC_MAX_MINUTES`` minutes of training (default 10).

The app has no file upload, so there is no upload size to cap. The library enforces all of this in
``genlab.runs.jobs`` (what the pages call), not in the pages, so no front end can bypass it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from .settings import settings


class PublicModeError(PermissionError):
    """Something a visitor of a public app may not do; the message says what is allowed."""


def enabled() -> bool:
    return settings().public


@dataclass(frozen=True)
class Limits:
    max_steps: int
    max_minutes: float
    max_runs: int


def limits() -> Limits:
    s = settings()
    return Limits(max_steps=s.public_max_steps, max_minutes=s.public_max_minutes, max_runs=s.max_runs)


def data_dir() -> Path:
    return settings().data_dir


def allowed_roots() -> list[Path]:
    from .catalog import checkpoints_dir, runs_dir
    from .paths import cache_dir

    return [p.resolve() for p in (runs_dir(), checkpoints_dir(), cache_dir(), data_dir())]


def check_path(path: str | os.PathLike, what: str = "path") -> Path:
    """``path`` resolved (symlinks and '..' followed); in public mode, refused outside the allowed folders."""
    resolved = Path(path).expanduser().resolve()
    if enabled() and not any(resolved == root or root in resolved.parents for root in allowed_roots()):
        raise PublicModeError(
            f"this is a public genlab app: the {what} must lie inside "
            f"{', '.join(str(r) for r in allowed_roots())}; {path} does not"
        )
    return resolved


def check_dataset(name: str) -> None:
    if name.startswith("folder:"):
        check_path(name[len("folder:") :], "data folder")


def run_caps(max_minutes: float | None = None, step_limit: int | None = None) -> dict:
    """The per-run ``max_minutes`` and ``step_limit`` a run gets: the asked values, lowered to public mode's
    caps (and set where none was asked). Unchanged when public mode is off."""
    if not enabled():
        return {"max_minutes": max_minutes, "step_limit": step_limit}
    lim = limits()
    return {
        "max_minutes": min(max_minutes or lim.max_minutes, lim.max_minutes),
        "step_limit": min(step_limit or lim.max_steps, lim.max_steps),
    }


def cap_config(cfg):
    """A ``TrainConfig`` within public mode's per-run caps (unchanged when public mode is off)."""
    return replace(cfg, **run_caps(cfg.max_minutes, cfg.step_limit)) if enabled() else cfg


def cap_processes(processes: int) -> int:
    """One training process per run in public mode (a visitor cannot take every GPU)."""
    return 1 if enabled() else max(1, processes)


def cap_runs(max_concurrent: int | None) -> int | None:
    return limits().max_runs if enabled() else max_concurrent
