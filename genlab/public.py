"""Public mode (``GENLAB_PUBLIC=1``): what a hosted app, such as our Hugging Face Space, lets visitors do.

A local user owns the machine; a visitor of a public app does not. In public mode:

- every path a visitor can name (the runs folder, ``folder:PATH`` data sets) must lie inside the
  app's own folders: the runs folder, the shipped checkpoints, genlab's cache (``GENLAB_HOME``) and
  ``GENLAB_DATA_DIR`` (default ``GENLAB_HOME/data``); anything else is refused before it is read;
- the runs folder is the app's (``GENLAB_RUNS``), and the page cannot change it;
- at most ``GENLAB_MAX_RUNS`` runs train at once (default 1), and a visitor cannot raise it;
- every run, launched or resumed, is capped at ``GENLAB_PUBLIC_MAX_STEPS`` steps (default 2000) and
  ``GENLAB_PUBLIC_MAX_MINUTES`` minutes of work (default 10; evaluations, FID and checkpoints count);
- the work a run asks for is capped too: batch, image size, model size (``genlab.models.sizing``), FID@K
  and how many FIDs and evaluations a run makes, and test images per evaluation (docs/security.md);
- a visitor can stop only the runs their own session launched (``owner`` in run.json).

The app has no file upload, so there is no upload size to cap. The library enforces all of this in
``genlab.runs.jobs`` (what the pages call), not in the pages, so no front end can bypass it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import PublicModeError
from .paths import cache_dir
from .settings import settings


def enabled() -> bool:
    return settings().public


@dataclass(frozen=True)
class Limits:
    """What the Train page tells a visitor (the full list is in docs/security.md)."""

    max_steps: int
    max_minutes: float
    max_runs: int
    max_batch: int
    max_image_size: int
    max_params: int


def limits() -> Limits:
    s = settings()
    return Limits(
        max_steps=s.public_max_steps,
        max_minutes=s.public_max_minutes,
        max_runs=s.max_runs,
        max_batch=s.public_max_batch,
        max_image_size=s.public_max_image_size,
        max_params=min(s.max_params, s.public_max_params),
    )


def data_dir() -> Path:
    return settings().data_dir


def max_pull_bytes() -> int:
    """The most one Hub pull may download (``genlab.hub``): lower in public mode, where a visitor names the repo."""
    s = settings()
    return s.public_max_pull_bytes if enabled() else s.max_pull_bytes


def allowed_roots() -> list[Path]:
    s = settings()
    return [p.resolve() for p in (s.runs, s.checkpoints, cache_dir(), data_dir())]


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


def _at_most(what: str, value, cap) -> None:
    if value is not None and value > cap:
        raise PublicModeError(f"this is a public genlab app: {what} may be at most {cap:,}; {value:,} was asked")


def _at_least(what: str, value, floor: int, why: str) -> None:
    if value is not None and value < floor:
        raise PublicModeError(
            f"this is a public genlab app: {what} must be at least {floor:,} ({why}); {value} was asked"
        )


def cap_config(cfg):
    """A ``TrainConfig`` within public mode's per-run caps (unchanged when public mode is off).

    Steps and minutes are lowered to the caps, and the minutes count evaluations, FID and checkpoints
    too. What a visitor chose beyond the caps on work (batch, image size, FID@K, how often to evaluate)
    is refused in a sentence; the test images per evaluation are capped, since "all of them" is the
    default."""
    if not enabled():
        return cfg
    s = settings()
    if cfg.log:  # W&B would log in as the host, trackio writes outside the runs folder
        raise PublicModeError(
            "this is a public genlab app: runs log only to genlab's own files here, not to trackers (--log)"
        )
    cfg = replace(cfg, **run_caps(cfg.max_minutes, cfg.step_limit), side_work_counts=True)
    _at_most("the batch size", cfg.batch_size, s.public_max_batch)
    _at_most("the image size", cfg.image_size, s.public_max_image_size)
    _at_most("FID samples (K of FID@K)", cfg.fid_samples if cfg.fid_every else None, s.public_max_fid_samples)
    planned = min(cfg.max_steps or cfg.step_limit, cfg.step_limit)
    fid_floor, eval_floor = -(-planned // s.public_max_fids), -(-planned // s.public_max_evals)
    _at_least("steps between FIDs", cfg.fid_every, fid_floor, f"at most {s.public_max_fids} per run")
    _at_least("steps between evaluations", cfg.eval_every, eval_floor, f"at most {s.public_max_evals} per run")
    _at_least("steps between checkpoints", cfg.checkpoint_every, eval_floor, f"at most {s.public_max_evals} per run")
    eval_batches = max(1, s.public_max_eval_images // cfg.batch_size)
    # FID's reference statistics cost an Inception pass per image, like its samples: the same cap, silently,
    # since the form does not ask for it (10,000 is the default)
    fid_ref_n = min(cfg.fid_ref_n, s.public_max_fid_samples)
    return replace(cfg, eval_batches=min(cfg.eval_batches or eval_batches, eval_batches), fid_ref_n=fid_ref_n)


def cap_bound_images(n: int) -> int:
    """Test images a page may compute a k-sample bound on (Compare: IWAE k=100 costs 100 decoder passes
    an image, about 10 s per 100 images on a CPU): capped in public mode."""
    return min(n, settings().public_max_bound_images) if enabled() else n


def cap_processes(processes: int) -> int:
    """One training process per run in public mode (a visitor cannot take every GPU)."""
    return 1 if enabled() else max(1, processes)


def cap_runs(max_concurrent: int | None) -> int | None:
    return limits().max_runs if enabled() else max_concurrent
