"""Where else a run's metrics go: ``genlab train --log tensorboard,wandb,trackio``.

``metrics.jsonl`` stays the record. Every row written there also goes to each chosen sink, at the same
step, named the same way in every tool (``tags``); the sample and reconstruction grids go as images and the
whole config as hyper-parameters. A sink is a guest: one that fails to start or to write is said once, in
run.json and the run's log, and is dropped; training never stops for it, and ``genlab export-logs`` replays
the run into it later from ``metrics.jsonl``. Under torchrun only rank 0 logs.

Each tool is an optional extra, imported only when chosen (peers do the same: pythae checks
``importlib.util.find_spec`` before its W&B callback). Choosing one that is not installed is refused
before the run starts, with the command that installs it.

(This module reads rows by their ``kind`` rather than importing ``genlab.runs.records``: the run config,
which records imports, checks ``--log`` with ``parse_sinks``.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import io
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ConfigError
from ..paths import safe_name
from . import trackers

# each sink: the module that must be importable, and what installs it
SINKS = {
    "tensorboard": ("tensorboard", "pip install 'genlab[tensorboard]' (or: pip install tensorboard)"),
    "wandb": ("wandb", "pip install 'genlab[wandb]' (or: pip install wandb)"),
    "trackio": ("trackio", "pip install 'genlab[trackio]' (or: pip install trackio)"),
}
TENSORBOARD_DIR = "tensorboard"  # in the run folder (W&B's offline runs go to RUN/wandb)


def parse_sinks(text: str) -> tuple[str, ...]:
    """``"tensorboard, wandb"`` -> ``("tensorboard", "wandb")``; an unknown name is refused in a sentence."""
    names = tuple(dict.fromkeys(n.strip().lower() for n in str(text).split(",") if n.strip()))
    unknown = [n for n in names if n not in SINKS]
    if unknown:
        verb = "is not one of them" if len(unknown) == 1 else "are not among them"
        raise ConfigError(f"--log takes {', '.join(SINKS)} (comma-separated); {', '.join(unknown)} {verb}")
    return names


def installed(name: str) -> bool:
    return importlib.util.find_spec(SINKS[name][0]) is not None


def available() -> list[str]:
    """The sinks this Python can log to."""
    return [n for n in SINKS if installed(n)]


def require(names: tuple[str, ...] | str) -> None:
    """Refuse, before a run starts, a sink whose package is not installed, naming the command that installs it."""
    for n in parse_sinks(names) if isinstance(names, str) else names:
        if not installed(n):
            raise ConfigError(f"--log {n}: {SINKS[n][0]} is not installed in this Python; {SINKS[n][1]}")


# -- what every tool is sent ------------------------------------------------------------------------------
def tags(row) -> dict[str, float]:
    """A metrics row as tagged scalars, the same in every tool: ``train/bpd``, ``train/lr``, ``test/bpd``,
    ``FID@1000`` (K in the name: FID@K is biased by K, so different Ks are different series). Only finite
    numbers: a NaN FID stays in metrics.jsonl, where it says the FID could not be computed."""
    if row.kind == "fid":
        out = {f"fid/FID@{row.fid_samples}": row.fid}
    elif row.kind == "eval":
        out = {"test/" + k.removeprefix("test_"): v for k, v in row.metrics.items()}
    else:  # train
        out = {f"train/{k}": v for k, v in row.metrics.items()}
        out.update({"train/lr": row.lr, "train/images_per_s": row.images_per_s, "train/epoch": row.epoch})
        out["train/skipped_steps"] = row.skipped_steps
    return {k: float(v) for k, v in out.items() if isinstance(v, (int, float)) and math.isfinite(v)}


def hparams(config: dict, prefix: str = "") -> dict[str, int | float | str | bool]:
    """A config as flat hyper-parameters (``model_config.num_scales``); None becomes ``"none"``, since
    TensorBoard's HParams take only numbers, strings and booleans."""
    flat: dict = {}
    for k, v in sorted(config.items()):
        if isinstance(v, dict):
            flat.update(hparams(v, f"{prefix}{k}."))
        else:
            flat[prefix + k] = "none" if v is None else v if isinstance(v, (int, float, str, bool)) else str(v)
    return flat


def grid_array(png: bytes) -> np.ndarray:
    """A grid PNG (written by genlab, so of a bounded size) as uint8 [H, W, C]."""
    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGB"))


def run_id(run_name: str, created_at: float | None) -> str:
    """The name a run has in W&B (its id) and trackio: the folder's name and a digest of when the run was
    created, so it stays the same over every resume (and a move of the folder), and two runs that share a
    folder name (one deleted and started again with the same --out) are two runs."""
    digest = hashlib.sha1(f"{run_name}|{created_at}".encode()).hexdigest()[:8]
    return f"{safe_name(run_name, 50)}-{digest}"


# -- the fan-out --------------------------------------------------------------------------------------------
@dataclasses.dataclass
class RunLogs:
    """What the sinks need to know about a run: its folder, name, config and the step it resumes from."""

    folder: Path
    name: str
    config: dict
    created_at: float | None = None  # with the name, who the run is (run_id)
    resume_step: int = 0
    tensorboard: Path | None = None  # TensorBoard's folder, when not RUN/tensorboard (an export's DIR/<name>)
    replay: bool = False  # export-logs: nothing comes after resume_step (a tracker that holds it all need not start)


def open_tracker(name: str, run: RunLogs):
    """The adapter of sink ``name`` for ``run`` (``genlab.runs.trackers``), started: it imports its tool."""
    hp = hparams(run.config)
    if name == "tensorboard":
        return trackers.TensorBoard(run.tensorboard or run.folder / TENSORBOARD_DIR, hp, run.resume_step)
    if name == "wandb":
        return trackers.WandB(run.folder, hp, run.name, run_id(run.name, run.created_at), run.resume_step, run.replay)
    return trackers.Trackio(hp, run_id(run.name, run.created_at))


class Sinks:
    """The chosen sinks of one run. Each call reaches every sink still open; the first exception of a sink is
    said once through ``report(name, what)`` ("wandb failed to write (OSError: ...) at step 40") and closes
    that sink. Nothing here raises."""

    def __init__(self, names: tuple[str, ...], run: RunLogs, report: Callable[[str, str], None], opener=None):
        self.report, self.open = report, {}
        opener = opener or open_tracker  # looked up at each start: a test may put a tracker of its own there
        self.where: dict[str, str] = {}
        self.last_step = run.resume_step
        for n in names:
            try:
                self.open[n] = opener(n, run)
                self.where[n] = self.open[n].where()
            except Exception as e:  # any failure of a guest's code: said, never raised
                self._drop(n, f"could not start ({_what(e)})")

    def _drop(self, name: str, what: str) -> None:
        tracker = self.open.pop(name, None)
        self.report(name, f"{name} {what} at step {self.last_step}")
        if tracker is not None:
            try:
                tracker.close()
            except Exception:
                pass  # it already failed once; its one sentence has been said

    def _each(self, step: int, call: Callable) -> None:
        self.last_step = step
        for n, tracker in list(self.open.items()):
            if step <= tracker.held:  # the tool has this step already (an earlier attempt, an earlier export)
                continue
            try:
                call(tracker)
            except Exception as e:
                self._drop(n, f"failed to write ({_what(e)})")

    def row(self, row) -> None:
        """A ``genlab.runs.records`` row (train, eval or fid), as ``tags``."""
        values = tags(row)
        if values:
            self._each(row.step, lambda t: t.scalars(row.step, values))

    def grids(self, step: int, pngs: dict[str, bytes]) -> None:
        if any(step > t.held for t in self.open.values()):  # decoded only for a tracker that lacks the step
            images = {k: grid_array(v) for k, v in pngs.items()}
            self._each(step, lambda t: t.images(step, images))

    def catch_up(self, rows: list, grids: list[tuple[int, str, bytes]], through: int) -> None:
        """Send each tracker the rows and grids (step, name, PNG) of steps up to ``through`` that it does not
        hold: what a killed attempt's tool lost, the whole run for a tracker added on resume, a whole run for
        ``export-logs``. Grids go in beside the rows of their step; all in step order."""
        grids = sorted(g for g in grids if g[0] <= through)
        for row in rows:
            if row.step > through:
                break
            while grids and grids[0][0] <= row.step:
                step, kind, png = grids.pop(0)
                self.grids(step, {kind: png})
            self.row(row)
        for step, kind, png in grids:
            self.grids(step, {kind: png})

    def flush(self) -> None:
        self._each(self.last_step, lambda t: t.flush())

    def close(self) -> None:
        for n, tracker in list(self.open.items()):
            try:
                tracker.close()
            except Exception as e:
                self._drop(n, f"failed to close ({_what(e)})")
        self.open = {}


def _what(e: Exception) -> str:
    first = str(e).splitlines()[0][:200] if str(e) else ""
    return f"{type(e).__name__}: {first}" if first else type(e).__name__
