"""``genlab export-logs RUN --to tensorboard DIR``: an existing run, replayed into a tracker.

A run folder, or a model folder that carries its run's ``metrics.jsonl`` (every shipped checkpoint does), is
sent through the same ``Sinks.catch_up`` a resumed run uses: the same tags, the same steps, its grids as
images (a run's ``samples/step-*.png`` and ``recon-*.png``, a model folder's ``samples.png`` at its last
step) and its config as hyper-parameters. Everything read is untrusted: rows go through
``parse_row``, grids through ``grids.readable`` (bounded bytes and pixels).

TensorBoard gets ``DIR/<run name>``, W&B an offline run under ``DIR/wandb``, trackio its store
(``TRACKIO_DIR``); nothing is written into the folder read (a shipped checkpoint, a pulled repo). Each
tracker is sent only the steps it does not hold, so exporting twice leaves one series. A run keeps its W&B
id and trackio name (``sinks.run_id``) however it reaches them: ``export-logs RUN --to wandb RUN`` or
``--to trackio`` after a live run fills in only what the tracker lost.
"""

from __future__ import annotations

from pathlib import Path

from .. import names
from ..errors import BadFile, ConfigError, NotARun
from ..paths import safe_name
from ..schema import read_json
from .grids import grids_on_disk
from .rundir import RunDir
from .sinks import SINKS, RunLogs, Sinks, require


def _config(folder: Path) -> tuple[dict, float | None]:
    """The run's config and creation time: run.json's, else the model folder's config.json."""
    run = RunDir(folder)
    if run.exists():
        info = run.info()
        return (info.config.to_dict() if info.config else {}), info.created_at
    if (folder / names.CONFIG).is_file():
        return read_json(folder / names.CONFIG, BadFile), None
    return {}, None


def export_logs(source: str | Path, to: str, dest: str | Path | None = None, opener=None) -> str:
    """Replay ``source`` (a run or model folder with a metrics.jsonl) into tracker ``to``; where the logs are.
    A tracker that fails is said in one sentence (``ConfigError``), after what it took."""
    folder, to = Path(source), to.lower()
    if to not in SINKS:
        raise ConfigError(f"--to takes {', '.join(SINKS)}; {to!r} is not one of them")
    if (dest is None) != (to == "trackio"):  # never into the folder read (a shipped checkpoint, a pulled repo)
        raise ConfigError(
            "trackio writes its own store (TRACKIO_DIR): give no folder"
            if to == "trackio"
            else f"--to {to} needs the folder to write into: --to {to} DIR"
        )
    require((to,))
    if not folder.is_dir():
        raise NotARun(f"{folder} is not a folder (a run folder, or a model folder with its metrics.jsonl)")
    rows = RunDir(folder).read_metrics()
    if not rows:
        raise NotARun(f"{folder} has no metrics.jsonl rows to export (a run folder or a model folder that carries one)")
    config, created = _config(folder)  # BadFile or CheckpointError: one sentence naming the file
    created = created if created is not None else rows[0].timestamp  # who the run is, with its name
    last = max(r.step for r in rows)
    name = safe_name(folder.resolve().name)
    out = Path(dest or ".")
    # DIR/<name>: several runs replayed into one DIR are several TensorBoard runs
    logs = RunLogs(out, name, config, created, resume_step=last, tensorboard=out / name, replay=True)
    failures: list[str] = []
    sinks = Sinks((to,), logs, lambda _n, sentence: failures.append(sentence), opener)
    sinks.catch_up(rows, grids_on_disk(folder, last), last)  # what the tracker does not hold
    where = sinks.where.get(to, "")
    sinks.close()
    if failures:
        raise ConfigError(f"the export stopped: {failures[0]}")
    return where


__all__ = ["export_logs"]
