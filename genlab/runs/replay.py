"""``genlab export-logs RUN --to tensorboard DIR``: an existing run, replayed into a tracker.

A run folder, or a model folder that carries its run's ``metrics.jsonl`` (every shipped checkpoint does), is
sent row by row through the same ``Sinks`` a live run uses: the same tags, the same steps, its grids as
images (a run's ``samples/step-*.png`` and ``recon-*.png``, a model folder's ``samples.png`` at its last
step) and its config as hyper-parameters. Everything read is untrusted: rows go through
``parse_row``, grids through ``grids.readable`` (bounded bytes and pixels).

TensorBoard gets ``DIR/<run name>``, opened with ``purge_step=0``, so replaying a run twice leaves one
series; W&B gets an offline run under ``DIR``; trackio gets its store (``TRACKIO_DIR``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .. import names
from ..errors import BadFile, ConfigError, NotARun
from ..paths import safe_name
from ..schema import read_json
from .grids import readable
from .rundir import RunDir
from .sinks import SINKS, TENSORBOARD_DIR, RunLogs, Sinks, require

GRID = re.compile(r"(step|recon)-(\d{1,9})\.png")
GRID_NAMES = {"step": "samples", "recon": "reconstructions"}


def _config(folder: Path) -> tuple[dict, float | None]:
    """The run's config and creation time: run.json's, else the model folder's config.json."""
    run = RunDir(folder)
    if run.exists():
        info = run.info()
        return (info.config.to_dict() if info.config else {}), info.created_at
    if (folder / names.CONFIG).is_file():
        return read_json(folder / names.CONFIG, BadFile), None
    return {}, None


def _grids(folder: Path, last_step: int) -> list[tuple[int, str, bytes]]:
    """(step, name, PNG) of every readable grid, in step order."""
    found = []
    samples = folder / names.RUN_SAMPLES
    for p in sorted(samples.glob("*.png")) if samples.is_dir() else []:
        m = GRID.fullmatch(p.name)
        if m and (png := readable(p)) is not None:
            found.append((int(m.group(2)), GRID_NAMES[m.group(1)], png))
    if not found and (png := readable(folder / names.SAMPLES)) is not None:
        found.append((last_step, "samples", png))
    return sorted(found, key=lambda g: g[0])


def export_logs(source: str | Path, to: str, dest: str | Path | None = None, opener=None) -> str:
    """Replay ``source`` (a run or model folder with a metrics.jsonl) into tracker ``to``; where the logs are.
    A tracker that fails is said in one sentence (``ConfigError``), after what it took."""
    folder = Path(source)
    if to not in SINKS:
        raise ConfigError(f"--to takes {', '.join(SINKS)}; {to!r} is not one of them")
    require((to,))
    rows = RunDir(folder).read_metrics()
    if not rows:
        raise NotARun(f"{folder} has no metrics.jsonl rows to export (a run folder or a model folder that carries one)")
    try:
        config, created = _config(folder)
    except json.JSONDecodeError as e:
        raise BadFile(f"{folder}: its run.json or config.json is not JSON ({e})") from None
    name = safe_name(folder.resolve().name)
    out = Path(dest) if dest is not None else folder
    # DIR/<name>: several runs replayed into one DIR are several TensorBoard runs
    logs = RunLogs(out, name, config, created, resume_step=-1, tensorboard=out / name if dest is not None else None)
    failures: list[str] = []
    sinks = Sinks((to,), logs, lambda _n, sentence: failures.append(sentence), opener)
    grids = _grids(folder, rows[-1].step)
    for row in rows:
        while grids and grids[0][0] <= row.step:  # a grid goes in beside the rows of its step
            step, kind, png = grids.pop(0)
            sinks.grids(step, {kind: png})
        sinks.row(row)
    for step, kind, png in grids:
        sinks.grids(step, {kind: png})
    where = sinks.where.get(to, "")
    sinks.close()
    if failures:
        raise ConfigError(f"the export stopped: {failures[0]}")
    return where


__all__ = ["export_logs", "TENSORBOARD_DIR"]
