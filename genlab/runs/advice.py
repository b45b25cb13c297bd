"""What a run should tell its user while it goes: pure functions of its config, data and metric rows.

Each returns one sentence or None. They are computed when a run is read (``rundir.summarize``), not
stored, so they are the same in the app, ``genlab runs`` and a notebook, and they follow a run that
is resumed with another length.
"""

from __future__ import annotations

from .records import EvalRow, MetricRow

SHORT_RUN_STEPS = 100  # below this a model has not yet learned to draw anything
PATIENCE = 3  # evaluations in a row worse than the best before a run is called over-fitting
MARGIN = 0.01  # ... by more than this many bits/dim (evaluation noise on a small test split)


def short_run(total_steps: int | None) -> str | None:
    if total_steps is None or total_steps >= SHORT_RUN_STEPS:
        return None
    return (
        f"This run is only {total_steps} steps: a model needs a few hundred steps before its samples show "
        f"anything (expect grey or flat tiles). A preset at its own length trains long enough to draw something."
    )


def batch_exceeds_data(batch_size: int, train_images: int | None) -> str | None:
    if not train_images or batch_size <= train_images:
        return None
    return (
        f"The batch size ({batch_size}) is larger than the training set ({train_images} images): every step "
        f"sees all of it, and the batch is {train_images}, not {batch_size}. A batch of about a third of the "
        f"data (here {max(1, train_images // 3)}) gives the optimiser more steps per epoch."
    )


def evaluations(rows: list[MetricRow]) -> list[tuple[int, float]]:
    """(step, test bits/dim) of each evaluation, in order."""
    return [(r.step, v) for r in rows if isinstance(r, EvalRow) and (v := r.value("test_bpd")) is not None]


def overfitting(rows: list[MetricRow], train_images: int | None = None) -> str | None:
    """Said when the last ``PATIENCE`` evaluations were all worse than the best one by more than ``MARGIN``."""
    evals = evaluations(rows)
    if not evals:
        return None
    best_step, best = min(evals, key=lambda e: e[1])
    after = [v for s, v in evals if s > best_step]
    if len(after) < PATIENCE or not all(v > best + MARGIN for v in after[-PATIENCE:]):
        return None
    data = f" its {train_images} training images" if train_images else " its training images"
    return (
        f"Over-fitting: test bits/dim rose from {best:.2f} to {after[-1]:.2f} since step {best_step}; the model "
        f"is memorising{data}. The best checkpoint is step {best_step} (pick it on Sample as '… · best')."
    )


def run_warnings(total_steps: int | None, batch_size: int | None, train_images: int | None, rows) -> list[str]:
    """Every warning that applies, most urgent first."""
    found = [
        overfitting(rows, train_images),
        batch_exceeds_data(batch_size, train_images) if batch_size else None,
        short_run(total_steps),
    ]
    return [w for w in found if w]
