"""The run list: the run directories under a folder (``list_runs``), and one ``RunSummary`` per run, read
from its run.json and metrics.jsonl.

The Train page's table and progress line, ``genlab runs`` and the Models page all read runs through
``summarize``: its status (a dead process is ``interrupted``), progress, a steady speed and ETA
(``genlab.runs.progress``), the last figures, the warnings that apply (``genlab.runs.advice``), the
best weights kept, and the disk the run takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import names
from . import advice, progress
from .records import EvalRow, FidRow, RunStatus, last_of
from .rundir import RunDir


@dataclass
class RunSummary:
    """What a run list shows: one row per run, read from run.json and metrics.jsonl."""

    name: str
    model: str
    dataset: str
    status: RunStatus
    step: int
    total_steps: int | None
    images_per_s: float | None  # smoothed while it trains; the mean over the run once it has ended
    eta_s: float | None  # wall-clock seconds left, evaluations included (genlab.runs.progress)
    test_bpd: float | None
    fid: float | None
    fid_samples: int | None
    error: str | None
    processes: int = 1  # training processes (torchrun)
    warnings: tuple[str, ...] = ()  # divergence, over-fitting, a short run, a batch larger than the data
    best: tuple[int, float] | None = None  # (step, test bits/dim) of the kept best weights
    disk_bytes: int = 0
    can_resume: bool = False  # stopped, interrupted, or failed for a reason a resume can fix
    preset: str | None = None
    logs: tuple[tuple[str, str], ...] = ()  # (tracker, where its logs are and the command that opens them)

    @property
    def progress(self) -> float | None:
        return self.step / self.total_steps if self.total_steps else None

    @property
    def warning(self) -> str | None:
        return self.warnings[0] if self.warnings else None


def summarize(run: RunDir) -> RunSummary:
    """The run's row; a run that cannot be read (a malformed run.json, a folder it may not read) is listed
    with the reason, so that one bad run never hides the others."""
    try:
        return _summarize(run)
    except (ValueError, OSError) as e:
        why = str(e) or type(e).__name__
        return RunSummary(run.path.name, "?", "?", RunStatus.UNKNOWN, 0, None, None, None, None, None, None, why)


def _summarize(run: RunDir) -> RunSummary:
    info = run.info()
    cfg = info.config
    rows = run.read_metrics()
    ev, fid = last_of(rows, EvalRow), last_of(rows, FidRow)
    step = max((r.step for r in rows), default=0)
    status = run.status(info)
    train_n = (info.dataset or {}).get("train") if isinstance(info.dataset, dict) else None
    train_n = train_n if isinstance(train_n, int) and train_n > 0 else None
    batch = min(cfg.batch_size, train_n or cfg.batch_size) if cfg else 0  # a batch never holds more than the data
    live = status in (RunStatus.RUNNING, RunStatus.QUEUED)
    speed = progress.smoothed_speed(rows) if live else progress.mean_speed(rows, batch)
    found = [info.warning] if info.warning else []
    found += advice.run_warnings(info.total_steps, cfg.batch_size if cfg else None, train_n, rows)
    logs, failed = tracker_notes(info.trackers)
    return RunSummary(
        name=run.path.name,
        model=cfg.model if cfg else "?",
        dataset=cfg.dataset if cfg else "?",
        status=status,
        step=step,
        total_steps=info.total_steps,
        images_per_s=speed,
        eta_s=progress.eta_seconds(rows, info.total_steps, batch) if status == RunStatus.RUNNING else None,
        test_bpd=ev.value("test_bpd") if ev else None,
        fid=fid.fid if fid else None,
        fid_samples=fid.fid_samples if fid else None,
        error=info.error,
        processes=info.processes or 1,
        warnings=(*found, *failed),
        best=run.best(),
        disk_bytes=run.disk_bytes(),
        can_resume=status.resumable and info.resumable is not False,
        preset=info.preset,
        logs=logs,
    )


def tracker_notes(trackers) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """run.json's ``trackers`` (untrusted: only text is kept) as (name, where) pairs and the failures' sentences."""
    if not isinstance(trackers, dict):
        return (), ()
    items = [(str(n)[:40], t) for n, t in sorted(trackers.items()) if isinstance(t, dict)]
    text = lambda v: v[:1000] if isinstance(v, str) and v else None
    where = tuple((n, w) for n, t in items if (w := text(t.get("where"))))
    return where, tuple(e for _, t in items if (e := text(t.get("error"))))


def list_runs(root: Path) -> list[RunDir]:
    """Run directories directly under ``root``, newest first."""
    root = Path(root)
    try:
        folders = list(root.iterdir()) if root.is_dir() else []
    except OSError:  # a runs folder it may not read lists no runs (the pages say where they look)
        return []
    dated = [(_mtime(p / names.RUN_INFO), p) for p in folders]
    return [RunDir(p) for t, p in sorted(dated, reverse=True) if t > 0]


def _mtime(path: Path) -> float:
    """When ``path`` last changed; 0 when it is not a readable file (a folder that is not a run, or one
    deleted while the list was read)."""
    try:
        return path.stat().st_mtime if path.is_file() else 0.0
    except OSError:
        return 0.0
