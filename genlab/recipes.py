"""The checkpoints that ship in ``checkpoints/``: how each is trained, where it lives on the Hub.

This table is the one place that names them. ``python -m genlab checkpoints`` (``make checkpoints``)
retrains every one from scratch with exactly these arguments and exports it with its figures
(``genlab.export``); ``python -m genlab publish`` pushes them to their repo ids.

The emoji models train on ``emoji-faces`` (the 109 round smileys of Twemoji): on all 4,009 emoji a
CPU-sized model learns colours and layouts but samples nothing a person can name (see
docs/img/vae-emoji-samples.png), while on one homogeneous kind of picture it draws faces.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, RunError
from .export import export_model, read_metrics
from .runs.config import TrainConfig, config_from_argv, resume_options
from .runs.records import RunStatus
from .runs.rundir import RunDir
from .runs.start import create_run, resume_config, train
from .settings import settings

HUB_ORG = settings().hub_org


BPD_FACTOR = 1.1  # a run from a preset "worked" when its test bits/dim are within this factor of the recipe's


@dataclass(frozen=True)
class Recipe:
    name: str  # folder under checkpoints/ and repo name on the Hub
    train: tuple[str, ...] | str  # `python -m genlab train` arguments, from scratch (a string is split on spaces)
    temperature: float  # the temperature of its grid: Home and the model card show it there
    title: str = ""  # what the Train form's preset list says: model, data, size, and what its samples show
    fid_ref_n: int = 2000  # training images in the FID reference statistics (emoji-faces has 98)
    # how the shipped checkpoint was made, when not in one run of ``train``: ``train``'s model and data trained
    # from scratch with the first stage's flags, then resumed with each later stage's (resumable) flags
    stages: tuple[str, ...] = ()

    def __post_init__(self):
        if isinstance(self.train, str):
            object.__setattr__(self, "train", tuple(self.train.split()))

    def stage_args(self) -> list[tuple[str, ...]]:
        """The argument lists of each stage: ``train`` alone, or the first stage's, then each resume's."""
        return [tuple(s.split()) for s in self.stages] if self.stages else [self.train]

    def commands(self) -> list[str]:
        """The command lines that made the shipped checkpoint, in order (RUN: the run directory)."""
        first, *later = self.stage_args()
        return [f"python -m genlab train {' '.join(first)} --out RUN"] + [
            f"python -m genlab train --resume RUN {' '.join(a)}" for a in later
        ]

    @property
    def repo_id(self) -> str:
        return f"{HUB_ORG}/{self.name}"

    @property
    def preset_args(self) -> tuple[str, ...]:
        """Its arguments as a preset (the Train form, ``genlab train --preset``): without ``--eval-every``,
        so that evaluations, grids and checkpoints follow the run's length (``runs.config.cadence``)
        when a user shortens or lengthens it. What it trains is the same."""
        args, out = list(self.train), []
        while args:
            a = args.pop(0)
            if a == "--eval-every":
                args.pop(0)
            else:
                out.append(a)
        return tuple(out)

    def config(self) -> TrainConfig:
        """The TrainConfig of the preset (the Train form, ``genlab train --preset``): a copy of one parse,
        since the form asks for every preset's on each rerun."""
        return dataclasses.replace(_parsed(self.preset_args))

    def measured(self) -> dict:
        """What training the shipped checkpoint measured (its metrics.json): ``test_bpd``, ``fid``,
        ``fid_samples``, ``wall_seconds``, ``device``, ``threads``; {} when it is not here."""
        try:
            m = read_metrics(settings().checkpoints / self.name)  # its fields' types checked
        except ValueError:
            return {}
        train = m.get("train") or {}
        out = {k: m.get(k) for k in ("test_bpd", "fid", "fid_samples")}
        out.update({k: train.get(k) for k in ("wall_seconds", "threads")})
        good = {k: v for k, v in out.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0}
        if isinstance(train.get("device"), str):
            good["device"] = train["device"]
        return good

    def expected_seconds(self, steps: int | None = None) -> float | None:
        """Wall-clock seconds its run took when the shipped checkpoint was trained, scaled to ``steps``."""
        wall, planned = self.measured().get("wall_seconds"), self.config().max_steps
        if not isinstance(wall, (int, float)) or not planned:
            return None
        return wall * (steps or planned) / planned

    def where_measured(self) -> str:
        m = self.measured()
        threads = m.get("threads") or 2
        return "a GPU" if str(m.get("device", "cpu")).startswith("cuda") else f"a {threads}-core CPU"

    def bpd_ceiling(self) -> float | None:
        """The test bits/dim a run of this recipe should reach: the shipped checkpoint's, plus 10%."""
        bpd = self.measured().get("test_bpd")
        return BPD_FACTOR * bpd if isinstance(bpd, (int, float)) else None


# each recipe is the command line it trains, kept readable
# fmt: off
RECIPES: tuple[Recipe, ...] = (
    Recipe("vae-mnist-32",
           "vae --dataset mnist --image-size 32 --batch-size 128 --latent-dim 16 --max-steps 5000"
           " --eval-every 500 --eval-batches 20",
           temperature=1.0, title="VAE on MNIST, 32×32: digits"),
    # four scales (coarse levels at 8×8 and 4×4): digits after ~2,500 steps, where the default two scales
    # drew stroke fragments after 14,000 (docs/benchmarks.md). The shipped one was made in two stages:
    # 1,500 steps at a constant 1e-3, then resumed with the cosine (held at 1e-3 until step 2,500, so the
    # same rates as in one run) and --ema, whose average therefore starts at step 1,500 rather than 0
    Recipe("realnvp-mnist-32",
           "realnvp --dataset mnist --image-size 32 --batch-size 64 --num-scales 4 --lr-schedule cosine"
           " --decay-steps 1500 --max-steps 4000 --eval-every 500 --eval-batches 20 --compile --ema 0.999",
           temperature=0.8, title="RealNVP on MNIST, 32×32: digits",
           stages=("realnvp --dataset mnist --image-size 32 --batch-size 64 --num-scales 4 --max-steps 1500"
                   " --eval-every 500 --eval-batches 20 --compile",
                   "--lr-schedule cosine --decay-steps 1500 --max-steps 4000 --ema 0.999")),
    # 98 training images. With independent logistics per colour channel, a pixel the decoder is unsure of
    # (an eye or the face around it) let each channel settle on a different colour: red on the brown
    # eye, green on the yellow face, and the shown mean was a green dot (the smears of the first emoji
    # VAEs). Coupled channels (PixelCNN++ §2.2) make a pixel's colour one decision; beta=16 keeps the
    # 98 codes where the prior samples (beta 4 and 8 still drew speckled faces), and 64 at 64×64, whose
    # loss per dimension divides the KL by four times the pixels (16 left purple blotches there; FID@1000
    # 256 against 219); flips double the faces;
    # the log-scale ceiling keeps the mean on the data (without it the faces went blank on teal).
    # docs/benchmarks.md, "The emoji VAEs' colours"
    Recipe("vae-emoji-32",
           "vae --dataset emoji-faces --image-size 32 --batch-size 32 --latent-dim 16 --max-log-scale -2.5"
           " --beta 16 --coupled-channels --hflip --max-steps 1500 --eval-every 500",
           temperature=0.5, title="VAE on emoji faces, 32×32: smiley faces"),
    Recipe("vae-emoji-64",
           "vae --dataset emoji-faces --image-size 64 --batch-size 32 --latent-dim 16 --max-log-scale -2.5"
           " --beta 64 --coupled-channels --hflip --max-steps 1500 --eval-every 500",
           temperature=0.8, title="VAE on emoji faces, 64×64: smiley faces"),
    # four scales, the first split at the second: with the split at 16×16 every eye and mouth was factored
    # out there as independent noise and samples were blobs (docs/benchmarks.md, "RealNVP on emoji-faces");
    # flips double the 98 faces; 1,000 steps, where the grid is faces (test bits/dim are best near step
    # 500, and it overfits after; at 600 steps the faces were fainter and smudged)
    # the Fashion-MNIST pair of the likelihood lab (genlab ood; docs/benchmarks.md, "What likelihood models
    # believe about images they were not trained on"): the MNIST recipes with the data swapped; the flow in
    # one run of 1,200 steps, its cosine holding 1e-3 until its last 700, and no --ema: an average from
    # step 0 (0.999) still held the first steps' weights at step 2,000 and scored 32 test bits/dim where the
    # training weights scored 2.53 (docs/benchmarks.md)
    Recipe("vae-fashion-32",
           "vae --dataset fashion-mnist --image-size 32 --batch-size 128 --latent-dim 16 --max-steps 5000"
           " --eval-every 500 --eval-batches 20",
           temperature=1.0, title="VAE on Fashion-MNIST, 32×32: clothes and shoes"),
    Recipe("realnvp-fashion-32",
           "realnvp --dataset fashion-mnist --image-size 32 --batch-size 64 --num-scales 4 --lr-schedule cosine"
           " --decay-steps 700 --max-steps 1200 --eval-every 500 --eval-batches 20 --compile",
           temperature=0.8, title="RealNVP on Fashion-MNIST, 32×32: clothes and shoes"),
    Recipe("realnvp-emoji-32",
           "realnvp --dataset emoji-faces --image-size 32 --batch-size 32 --num-scales 4 --first-split 1 --hflip"
           " --lr-schedule cosine --max-steps 1000 --eval-every 250 --compile",
           temperature=0.6, title="RealNVP on emoji faces, 32×32: smiley faces"),
)
# fmt: on


SHIPPED: tuple[Recipe, ...] = RECIPES  # every recipe's checkpoint ships in checkpoints/


@functools.cache
def _parsed(args: tuple[str, ...]) -> TrainConfig:
    return config_from_argv(args)


def fastest() -> Recipe:
    """The shipped recipe that trains in the least wall-clock time (the Train form's first preset)."""
    timed = [(r.expected_seconds(), i) for i, r in enumerate(SHIPPED)]
    return SHIPPED[min(timed, key=lambda t: (t[0] is None, t[0] or 0, t[1]))[1]]


def recipe(name: str) -> Recipe:
    for r in RECIPES:
        if r.name == name:
            return r
    raise ConfigError(f"there is no recipe (preset) called {name!r}; there are {', '.join(r.name for r in RECIPES)}")


def chosen(names: list[str]) -> list[Recipe]:
    """The recipes named (all of them when none is)."""
    return [recipe(n) for n in names] if names else list(RECIPES)


def build_checkpoint(
    r: Recipe,
    runs_root: str | Path,
    out_root: str | Path,
    fid_samples: int = 1000,
    device: str = "auto",
    train_first=True,
) -> Path:
    """``genlab checkpoints`` (``make checkpoints``): train recipe ``r`` from scratch into ``runs_root/NAME``, then
    export it to ``out_root/NAME`` with its figures and card. ``train_first=False`` exports the existing run."""
    run = RunDir(Path(runs_root) / r.name)
    if train_first:
        shutil.rmtree(run.path, ignore_errors=True)
        first, *later = r.stage_args()
        cfg = config_from_argv(first)  # with its own evaluation cadence, unlike the preset
        _train_stage(r, create_run(cfg, run), cfg)
        for args in later:
            _train_stage(r, run, resume_config(run, resume_options(args)))
    return export_model(
        run.path,
        Path(out_root) / r.name,
        name=r.name,
        repo_id=r.repo_id,
        recipe=r.name,
        temperature=r.temperature,
        fid_samples=fid_samples,
        fid_ref_n=r.fid_ref_n,
        device=device,
        stages=r.commands() if r.stages else None,
    )


def _train_stage(r: Recipe, run: RunDir, cfg: TrainConfig) -> None:
    status = train(run, cfg)
    if status != RunStatus.FINISHED:
        raise RunError(f"{r.name} did not finish training ({status}: {run.info().error}); nothing was exported")
