"""``TrainConfig``: the one declaration of a training run's settings.

The CLI's ``genlab train`` flags are generated from these fields (``genlab.config``), the app's
form builds a ``TrainConfig``, and ``run.json["config"]`` holds all of it before a training
process starts; the process reads it from there. A field marked ``resumable`` may change when a
run is resumed (how long it trains, how often it evaluates, the learning rate, the device); the
others fix what the run *is* (model, data, batch order) and are refused on resume.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass

from ..config import ConfigError, add_arguments, as_flags, check, from_dict, given, setting
from ..models import MODELS, model_class, model_options
from ..models.sizing import check_model
from .sinks import parse_sinks

LR_SCHEDULES = ("constant", "cosine")  # cosine: Loshchilov & Hutter, "SGDR", arXiv 1608.03983, without restarts
COSINE_FLOOR = 0.1  # the cosine schedule ends at this fraction of the peak learning rate
DEFAULT_STEPS = 1000  # a run's length when neither --epochs nor --max-steps is given
# seeds of the batch order and of each process are derived as seed * 1_000_003 + ...: a seed below 2^32
# keeps every derived one inside the 64-bit range torch.manual_seed takes
SEED_MAX = 2**32 - 1
EVALS_PER_RUN = 20  # the default cadence gives at least this many evaluations (and at most 2.5 times as many)


def cadence(total_steps: int) -> int:
    """Steps between evaluations, grids and checkpoints when the run does not say: the largest round
    number (1, 2 or 5 times a power of ten) that still gives ``EVALS_PER_RUN`` of them, so a run of any
    length on a data set of any size evaluates 20 to 50 times (98 emoji faces: not at every step)."""
    target = max(1.0, total_steps / EVALS_PER_RUN)
    best = 1
    for exp in range(0, 10):
        for m in (1, 2, 5):
            if m * 10**exp <= target:
                best = m * 10**exp
    return best


@dataclass
class TrainConfig:
    model: str = setting("vae", "model family", flag=False)
    model_config: dict = setting(factory=dict, flag=False)  # fields of the model's config dataclass
    dataset: str = setting("emoji", "emoji, emoji-faces, mnist, fashion-mnist, cifar10, celeba or folder:PATH")
    image_size: int | None = setting(None, "pixels per side; default: the model's own", min=8, max=512)
    epochs: int | None = setting(None, "passes over the training split, instead of --max-steps", min=1, resumable=True)
    max_steps: int | None = setting(
        None, f"optimizer steps to train (default {DEFAULT_STEPS} when --epochs is not given)", min=1, resumable=True
    )
    max_minutes: float | None = setting(
        None, "also end (finished, with a final evaluation) after this much training time", above=0, resumable=True
    )
    step_limit: int | None = setting(
        None, "a ceiling on steps, whatever epochs or --max-steps say", min=1, resumable=True
    )
    batch_size: int = setting(
        128, "images per optimizer step, over all processes under torchrun (the global batch)", min=1, max=65536
    )
    lr: float = setting(1e-3, "Adam learning rate (the peak, under a schedule)", above=0, max=10, resumable=True)
    lr_schedule: str = setting(
        "constant",
        "constant, or cosine: from --lr down to --lr/10 at the run's last step",
        choices=LR_SCHEDULES,
        resumable=True,
    )
    warmup_steps: int = setting(
        0, "steps of linear warm-up from 0 to --lr at the start of the run", min=0, resumable=True
    )
    decay_steps: int | None = setting(
        None,
        "cosine only: hold --lr, then decay over the run's last N steps (default: every step after warm-up)",
        min=1,
        resumable=True,
    )
    ema: float | None = setting(
        None,
        "keep an exponential moving average of the weights with this decay (e.g. 0.999); evaluations, "
        "sample grids, FID and the saved model use the average",
        min=0,
        max=0.99999,
        resumable=True,
    )
    hflip: bool = setting(
        False,
        "mirror a random half of each training batch left-right (the usual augmentation for pictures whose "
        "mirror image is as likely): doubles a small data set such as emoji-faces' 98 images. Test images "
        "are never flipped",
    )
    seed: int = setting(0, "seeds the weights, the batch order, the flips and the sample grids", min=0, max=SEED_MAX)
    device: str = setting("auto", "auto, cpu or cuda[:N]", resumable=True)
    grad_clip: float = setting(10.0, "max gradient norm; 0 turns clipping off", min=0, resumable=True)
    log_every: int = setting(10, "steps between logged train rows", min=1, resumable=True)
    eval_every: int | None = setting(
        None,
        "steps between evaluations and sample grids (default: a round number giving 20 to 50 per run)",
        min=1,
        resumable=True,
    )
    checkpoint_every: int | None = setting(
        None, "steps between checkpoints (default: at every evaluation)", min=1, resumable=True
    )
    eval_batches: int | None = setting(
        None, "cap on test batches per evaluation (default: the whole split)", min=1, resumable=True
    )
    sample_n: int = setting(64, "images in each saved sample grid", min=1, max=1024, resumable=True)
    max_nonfinite: int = setting(20, "consecutive non-finite steps before the run fails", min=1, resumable=True)
    amp: bool = setting(
        True,
        "bf16 autocast where bf16 is fast: CUDA, and CPUs with AVX512-BF16 or AMX (docs/benchmarks.md: the "
        "speed-up per model and machine)",
        resumable=True,
    )
    compile: bool = setting(
        False,
        "torch.compile the training step: it pays on runs longer than a few minutes, once compiling is paid "
        "for (docs/benchmarks.md)",
        resumable=True,
    )
    fid_every: int | None = setting(None, "steps between FID evaluations (default: none)", min=1, resumable=True)
    fid_samples: int = setting(1000, "generated images per FID (FID@K is biased up at small K)", min=2, resumable=True)
    fid_ref_n: int = setting(10000, "reference images from the training split", min=2)
    log: str = setting(
        "",
        "also send every metrics row, the sample grids and the config to these trackers, comma-separated: "
        "tensorboard (RUN/tensorboard), wandb (offline in RUN/wandb unless you are logged in), trackio (its "
        "local store); each is an optional extra (pip install 'genlab[tensorboard]'). Under a plain torchrun "
        "write --log-to: torchrun's own parser takes --log for its --log-dir",
        resumable=True,
        aliases=("--log-to",),
    )
    # public mode's minute cap bounds the whole run's work: evaluations, FID and checkpoints count too
    side_work_counts: bool = setting(False, flag=False, resumable=True)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ConfigError(f"unknown model {self.model!r}; genlab knows {', '.join(sorted(MODELS))}")
        mcls = model_class(self.model)
        if self.image_size is None:
            self.image_size = mcls.default_image_size()
        if self.epochs is None and self.max_steps is None:  # length is in steps unless epochs are asked for
            self.max_steps = DEFAULT_STEPS
        if self.grad_clip is None:  # written by genlab 0.2 for "off"
            self.grad_clip = 0.0
        check(self)
        self.log = ",".join(parse_sinks(self.log))
        foreign = sorted(set(self.model_config) - set(model_options(self.model)))
        if foreign:
            raise ConfigError(
                f"{', '.join(foreign)} {'is not an option' if len(foreign) == 1 else 'are not options'} of {self.model}"
            )
        try:  # the model's own checks (e.g. a size it cannot be built at) fail here, before a run exists
            mcls.config_class(**{**self.model_config, "image_size": self.image_size})
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def check_size(self, channels: int = 3) -> int:
        """Refuse (``ModelTooLarge``) a model, or a model and one batch, over genlab's size limits before
        anything is allocated (``genlab.models.sizing``); the parameter count. RGB is assumed until the
        data set is read."""
        mcls = model_class(self.model)
        mconf = mcls.config_class(**{**self.model_config, "image_size": self.image_size, "channels": channels})
        return check_model(mcls, mconf, batch=self.batch_size, training=True, what=f"this {self.model}")

    def total_steps(self, steps_per_epoch: int) -> int:
        """Optimizer steps this run trains: ``max_steps``, else ``epochs`` passes, under ``step_limit``."""
        total = self.max_steps or (self.epochs or 1) * steps_per_epoch
        return min(total, self.step_limit) if self.step_limit else total

    def lr_at(self, step: int, total_steps: int) -> float:
        """The learning rate of optimizer step ``step`` (0-based) of a run planned for ``total_steps``.

        A pure function of the step, so a resumed run continues the schedule where it stopped, and a
        resume with a new ``--lr``, schedule or length recomputes it from that step on. Cosine decays
        to a tenth of the peak rather than to zero (as in nanoGPT), so a run extended later still learns.
        With ``decay_steps`` the rate holds at the peak until the last ``decay_steps`` steps
        (warm-up, stable, decay): a run far from converged keeps learning at full speed, and a run
        extended by ``--resume --max-steps`` decays at its new end, not its old one.
        """
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.lr_schedule == "constant":
            return self.lr
        start = self.warmup_steps
        if self.decay_steps is not None:
            start = max(start, total_steps - self.decay_steps)
        span = max(1, total_steps - 1 - start)  # the last step, total_steps - 1, is at the floor
        progress = min(1.0, max(0.0, (step - start) / span))
        floor = self.lr * COSINE_FLOOR
        return floor + 0.5 * (self.lr - floor) * (1 + math.cos(math.pi * progress))

    @classmethod
    def from_dict(cls, d: dict, source: str = "run config") -> TrainConfig:
        return from_dict(cls, d, source)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def resumable_fields(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls) if f.metadata.get("resumable")}

    def resumed_with(self, overrides: dict) -> TrainConfig:
        """This config with ``overrides`` applied for a resumed run. Settings that fix what the run is
        are refused with a sentence naming them; a new ``epochs`` replaces ``max_steps`` (and back)."""
        changed = {k: v for k, v in overrides.items() if v is not None and getattr(self, k, object()) != v}
        fixed = sorted(set(changed) - self.resumable_fields())
        if fixed:
            flags = ", ".join("--" + k.replace("_", "-") for k in fixed)
            raise ConfigError(
                f"{flags} cannot change when a run is resumed: they fix the model, its data or the "
                f"order of its batches. Start a new run for that (resumable: "
                f"{', '.join(sorted(self.resumable_fields()))})"
            )
        if "epochs" in changed and "max_steps" not in changed:
            changed["max_steps"] = None
        return dataclasses.replace(self, **changed)

    def argv(self) -> list[str]:
        """The ``genlab`` command line that trains this config: ``train MODEL`` and every non-default flag."""
        default = TrainConfig(model=self.model)
        options = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("model", "model_config") and getattr(self, f.name) != getattr(default, f.name)
        }
        return ["train", self.model] + as_flags(options) + as_flags(self.model_config)


MODEL_PREFIX = "model__"  # argparse dests of the model's own options


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """``MODEL`` and one flag per field of TrainConfig and of every model's config (``genlab train``)."""
    p.add_argument("model", nargs="?", choices=sorted(MODELS), help="model family (omit with --resume or --preset)")
    add_arguments(p.add_argument_group("training"), TrainConfig)
    seen: set[str] = set()
    for name, cls in sorted(MODELS.items()):
        group = p.add_argument_group(f"{name} options")
        add_arguments(group, cls.config_class, skip=tuple(seen), dest_prefix=MODEL_PREFIX)
        seen |= set(model_options(name))


def model_options_given(args: argparse.Namespace) -> dict:
    return {k[len(MODEL_PREFIX) :]: v for k, v in vars(args).items() if k.startswith(MODEL_PREFIX) and v is not None}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig that parsed ``genlab train MODEL ...`` arguments describe."""
    return TrainConfig(model=args.model, model_config=model_options_given(args), **given(args, TrainConfig))


def config_from_argv(argv: list[str] | tuple[str, ...]) -> TrainConfig:
    """``["vae", "--dataset", "mnist", ...]`` (what follows ``genlab train``) as a TrainConfig."""
    p = argparse.ArgumentParser(prog="genlab train", add_help=False)
    add_train_arguments(p)
    return config_from_args(p.parse_args(list(argv)))


def resume_options(argv: list[str] | tuple[str, ...]) -> dict:
    """``["--max-steps", "4000", ...]`` (what follows ``genlab train --resume RUN``) as the fields it sets."""
    p = argparse.ArgumentParser(prog="genlab train --resume RUN", add_help=False)
    add_train_arguments(p)
    return given(p.parse_args(list(argv)), TrainConfig)


__all__ = ["TrainConfig", "ConfigError", "cadence", "config_from_argv"]
