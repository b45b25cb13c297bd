"""A run's progress as one object, and the pure functions of it that the training loop consults.

``TrainState`` is what a checkpoint's ``trainer_state.json`` holds (beside the weights, the optimizer
and the random state), so a resumed run continues exactly where the checkpoint was taken. The
learning-rate schedule is ``TrainConfig.lr_at(step, total)``; the time budget is ``over_budget``;
the random streams are seeded from (seed, epoch), (seed, step) and (seed, rank, step) alone: the batch
order and the flips of any number of processes, and of any resume, are what an uninterrupted single
process would have drawn (the model's own noise is, too, for one process).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from .config import TrainConfig

# Seeds of the run's random streams: a large odd multiplier keeps the streams of nearby seeds apart.
_SPREAD = 1_000_003


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch``'s order of the training images."""
    return seed * _SPREAD + epoch


def flip_seed(seed: int, step: int) -> int:
    """The seed of step ``step``'s horizontal flips (``--hflip``), drawn for the global batch."""
    return seed * _SPREAD + step + (1 << 40)


def rank_seed(seed: int, rank: int, step: int) -> int:
    """The seed of the model's own noise on process ``rank`` > 0, from ``step`` on (rank 0 keeps the checkpoint's)."""
    return seed * _SPREAD + 7919 * rank + step


@dataclass
class TrainState:
    """Where a run is. The saved fields are written with every checkpoint and read back on resume."""

    step: int = 0  # optimizer steps taken (skipped non-finite steps included: each consumed its batch)
    elapsed: float = 0.0  # seconds of training (evaluations, FID and checkpoints excluded)
    side_elapsed: float = 0.0  # seconds of evaluation, FID, samples and checkpoints (a public run's budget counts them)
    nonfinite_total: int = 0  # steps skipped over the whole run because the loss or gradients were not finite
    # not saved: a streak of bad steps starts afresh on resume (bad steps change no weight), and the best
    # weights are on disk
    consecutive_bad: int = field(default=0, metadata={"saved": False})
    best_bpd: float | None = field(default=None, metadata={"saved": False})

    def epoch(self, steps_per_epoch: int) -> float:
        return self.step / steps_per_epoch

    def to_json(self) -> dict:
        saved = {f.name for f in fields(self) if f.metadata.get("saved", True)}
        return {k: v for k, v in asdict(self).items() if k in saved}

    @classmethod
    def from_json(cls, d: dict) -> TrainState:
        """From a checkpoint's trainer_state.json (already checked by ``genlab.schema.TRAINER_STATE``)."""
        saved = {f.name for f in fields(cls) if f.metadata.get("saved", True)}
        return cls(**{k: v for k, v in d.items() if k in saved})


def over_budget(cfg: TrainConfig, state: TrainState, running_s: float) -> bool:
    """Whether the run's ``max_minutes`` is spent, ``running_s`` seconds into the step under way.
    A public run (``side_work_counts``) pays for its evaluations, FID and checkpoints too."""
    if not cfg.max_minutes:
        return False
    spent = state.elapsed + running_s + (state.side_elapsed if cfg.side_work_counts else 0.0)
    return spent > 60 * cfg.max_minutes


def diverged_message(cfg: TrainConfig, step: int, streak: int, loss: float, grad_norm: float, last: int | None) -> str:
    """What a run that failed on non-finite steps says: which step, the likely cause, and what is left."""
    fix = f" or tighten --grad-clip (now {cfg.grad_clip:g})" if cfg.grad_clip else " or set --grad-clip"
    kept = (
        f"The last good checkpoint (step {last}) is untouched."
        if last is not None
        else ("No checkpoint had been written yet.")
    )
    return (
        f"step {step}: the loss or gradients were not finite for {streak} consecutive steps (loss={loss:.4g}, "
        f"grad norm={grad_norm:.4g}). The likely cause is a learning rate too high for this model (lr={cfg.lr}); "
        f"lower --lr (e.g. {cfg.lr / 10:g}){fix}. {kept}"
    )
