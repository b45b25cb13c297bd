"""The three experiment trackers a run can also log to: TensorBoard, Weights & Biases and trackio.

Each adapter takes what ``genlab.runs.sinks`` hands it (scalars by tag, grids as uint8 arrays, the
config as flat hyper-parameters) and knows two things about its tool: where its files go, and the last
step the tool already holds for this run (``held``), read back from the tool's own files when it starts.
``Sinks`` sends nothing at or below ``held`` and fills the steps between ``held`` and the step a run
resumes from out of ``metrics.jsonl``: a killed attempt may have lost what its tool had not yet written
(W&B's service writes its file in blocks and drops the rest when its parent is killed), and a tracker
added on resume gets the whole run.

- TensorBoard (``torch.utils.tensorboard``) writes ``RUN/tensorboard``. A resumed run opens its writer
  with ``purge_step`` = the step it continues from + 1: TensorBoard's readers then drop whatever an earlier
  attempt wrote after it, so the series is what ``metrics.jsonl`` holds.
- W&B writes ``RUN/wandb`` in offline mode unless this machine is logged in (``WANDB_API_KEY`` or a
  netrc entry for the W&B host), or ``WANDB_MODE`` says otherwise: nothing leaves the machine by
  default. Every attempt of a run is one W&B run id; what earlier attempts hold is read with W&B's own
  reader (``wandb leet inspect``) offline, and is ``run.step`` online.
- trackio writes its local store (``TRACKIO_DIR``, default ``~/.cache/huggingface/trackio``), project
  ``genlab``, one run per run folder; what it holds is its store's last step for the run.

The tools are optional extras, imported here only when a run chose them.
"""

from __future__ import annotations

import glob
import json
import netrc
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

PROJECT = "genlab"  # the W&B project (unless WANDB_PROJECT says otherwise) and the trackio project


class Tracker:
    """One tool's side of a run. ``held``: the last step the tool already holds for this run (-1: none)."""

    name = ""
    held = -1

    def where(self) -> str:
        """Where the logs are, and the command that opens them: what the run page shows."""
        raise NotImplementedError

    def scalars(self, step: int, values: dict[str, float]) -> None:
        raise NotImplementedError

    def images(self, step: int, images: dict[str, np.ndarray]) -> None:
        """``images``: name -> a grid as uint8 [H, W, C]."""
        raise NotImplementedError

    def flush(self) -> None:
        """Everything logged so far is on disk (called at every checkpoint)."""

    def close(self) -> None:
        raise NotImplementedError


# -- TensorBoard ----------------------------------------------------------------------------------------------
class TensorBoard(Tracker):
    name = "tensorboard"

    def __init__(self, folder: Path, hparams: dict, resume_step: int):
        from torch.utils.tensorboard import SummaryWriter, summary  # an optional extra

        self.folder = folder
        self.held = min(_last_event_step(folder), resume_step)
        # purge_step: TensorBoard forgets what an earlier attempt logged after the step we continue from
        purge = self.held + 1 if self.held >= 0 else None
        self.writer = SummaryWriter(str(folder), purge_step=purge, flush_secs=20)
        # the HParams tab: the config, and the metrics to set beside it (in this run's own folder, not a new one)
        metrics = {"test/bpd": float("nan")}
        for s in summary.hparams(hparams, metrics):
            self.writer.file_writer.add_summary(s)

    def where(self) -> str:
        return f"tensorboard --logdir {self.folder}"

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for tag, v in values.items():
            self.writer.add_scalar(tag, v, step)

    def images(self, step: int, images: dict[str, np.ndarray]) -> None:
        for tag, img in images.items():
            self.writer.add_image(tag, img, step, dataformats="HWC")

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _last_event_step(folder: Path) -> int:
    """The last step of any summary in ``folder``'s event files (-1: none), read with TensorBoard's loader."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader  # an optional extra

    last = -1
    for f in sorted(folder.glob("events.out.tfevents.*")) if folder.is_dir() else []:
        for event in EventFileLoader(str(f)).Load():
            if event.HasField("summary"):
                last = max(last, int(event.step))
    return last


# -- Weights & Biases -----------------------------------------------------------------------------------------
WANDB_HOSTS = ("api.wandb.ai", "api.forge.coreweave.com")  # W&B's cloud, by its old and its 0.31 name


def wandb_logged_in(env: dict | None = None) -> bool:
    """An API key in the environment, or a netrc entry for the W&B host (what ``wandb login`` writes)."""
    env = os.environ if env is None else env
    if env.get("WANDB_API_KEY"):
        return True
    base = env.get("WANDB_BASE_URL")
    hosts = (urlsplit(base).hostname or "",) if base else WANDB_HOSTS
    path = env.get("NETRC") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".netrc")
    try:
        entries = netrc.netrc(path)
    except (OSError, netrc.NetrcParseError):
        return False
    return any(entries.authenticators(h) is not None for h in hosts)


def wandb_mode(env: dict | None = None) -> str | None:
    """The mode genlab asks W&B for: None when the user set ``WANDB_MODE`` (W&B reads it), else online
    only when logged in."""
    env = os.environ if env is None else env
    if env.get("WANDB_MODE"):
        return None
    return "online" if wandb_logged_in(env) else "offline"


def wandb_history(path: Path) -> list[dict]:
    """The history rows of a W&B run folder (or .wandb file), read by W&B's own reader: ``wandb leet inspect``."""
    exe = shutil.which("wandb") or str(Path(sys.executable).with_name("wandb"))
    out = subprocess.run(
        [exe, "leet", "inspect", "--json", str(path)], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [r["history"] for r in records if r.get("type") == "history"]


def _offline_runs(folder: Path, run_id: str) -> list[tuple[Path, int]]:
    """Earlier offline attempts of ``run_id`` under ``folder``, oldest first, each with its last step (-1: none)."""
    found = []
    for d in sorted(glob.glob(str(folder / "wandb" / f"offline-run-*-{glob.escape(run_id)}"))):
        steps = [int(h.get("step", {}).get("num", -1)) for h in wandb_history(Path(d))]
        found.append((Path(d), max(steps, default=-1)))
    return found


class WandB(Tracker):
    name = "wandb"

    def __init__(self, folder: Path, hparams: dict, run_name: str, run_id: str, through: int, replay: bool = False):
        import wandb  # an optional extra

        self.wandb, self.run = wandb, None
        mode = wandb_mode()
        earlier = _offline_runs(folder, run_id) if mode == "offline" else []
        self.held = max((last for _, last in earlier), default=-1)
        if replay and earlier and self.held >= through:  # an export W&B holds whole already: no empty attempt
            self.offline_dir = earlier[-1][0]
            return
        if mode == "offline" or os.environ.get("WANDB_MODE") in ("offline", "dryrun"):
            # offline, W&B 0.31 still asks its server whether it takes telemetry (a POST to its API host, in
            # wandb/analytics/opentelemetry): off, unless the user said otherwise
            os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT") or PROJECT,
            name=run_name,
            id=run_id,
            dir=str(folder),
            config=hparams,
            resume="allow",
            mode=mode,
        )
        self.offline_dir = Path(self.run.dir).parent if self.run.offline else None
        # online, a resumed run starts at the step after the last one W&B holds
        self.held = max(self.held, int(self.run.step or 0) - 1)

    def where(self) -> str:
        if self.offline_dir is not None:
            d = self.offline_dir
            return f"offline: wandb leet {d} (to view), wandb sync {d} (to upload)"
        return self.run.url or "online"

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def images(self, step: int, images: dict[str, np.ndarray]) -> None:
        self.run.log({tag: self.wandb.Image(img) for tag, img in images.items()}, step=step)

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()


# -- trackio --------------------------------------------------------------------------------------------------
class Trackio(Tracker):
    name = "trackio"

    def __init__(self, hparams: dict, run_name: str):
        import trackio  # an optional extra

        self.trackio = trackio
        self.run_name = run_name
        held = trackio.SQLiteStorage.get_max_step_for_run(PROJECT, run_name)
        self.held = -1 if held is None else int(held)
        self.run = trackio.init(project=PROJECT, name=run_name, config=hparams, resume="allow", embed=False)

    def where(self) -> str:
        return f"{self.trackio.TRACKIO_DIR}, project {PROJECT}, run {self.run_name}: trackio show --project {PROJECT}"

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def images(self, step: int, images: dict[str, np.ndarray]) -> None:
        self.run.log({tag: self.trackio.Image(img) for tag, img in images.items()}, step=step)

    def close(self) -> None:
        self.run.finish()
