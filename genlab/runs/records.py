"""What a run directory records, as types: its status, ``run.json`` and the rows of ``metrics.jsonl``.

On disk these stay plain JSON (one flat object per metrics row, tagged by ``kind``), so notebooks
and other tools read them with ``json`` alone; in genlab they are the dataclasses below, and this
module is the only place that converts between the two. Unknown keys in ``run.json`` are refused
like unknown config keys (``genlab.config``); unknown keys in a metrics row are the model's own
metrics (a VAE logs ``kl_bpd``, a flow does not) and are kept in ``metrics``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from enum import Enum

from ..config import from_dict, setting
from ..schema import COUNT, NUMBER, TEXT, BadFile, check_fields
from .config import TrainConfig


class RunStatus(str, Enum):
    QUEUED = "queued"  # waiting for a training slot (or its process is starting)
    RUNNING = "running"
    STOPPED = "stopped"  # asked to stop; checkpointed
    FINISHED = "finished"
    FAILED = "failed"  # ``RunInfo.error`` says why
    INTERRUPTED = "interrupted"  # recorded as queued or running, but its process is gone (killed, crashed)
    UNKNOWN = "unknown"  # run.json has no status yet

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__  # f"{status}" is "running" on every Python version

    @property
    def active(self) -> bool:
        """A process is (or is about to be) working on it: Stop applies."""
        return self in (RunStatus.QUEUED, RunStatus.RUNNING)

    @property
    def resumable(self) -> bool:
        return self in (RunStatus.STOPPED, RunStatus.INTERRUPTED, RunStatus.FAILED)


@dataclass
class RunInfo:
    """``run.json``: what the run is (config, data, versions) and where it stands (status, error)."""

    config: TrainConfig | None = None
    status: RunStatus = RunStatus.UNKNOWN
    error: str | None = None
    warning: str | None = None  # something the user should know about a run that goes on (divergence)
    pid: int | None = None
    created_at: float | None = None
    queued_at: float | None = None
    updated_at: float | None = None
    launch: list[str] | None = None  # the command line a launcher started
    dataset: dict | None = None  # name, train/test counts, credit, unreadable files skipped
    device: str | None = None
    threads: int | None = setting(None, flag=False, min=1)  # torch's CPU threads per process (the speed depends on it)
    precision: str | None = None  # "bf16 autocast" or "float32": what the training steps computed in
    seed: int | None = None
    total_steps: int | None = setting(None, flag=False, min=0)
    steps_per_epoch: int | None = setting(None, flag=False, min=1)
    num_parameters: int | None = setting(None, flag=False, min=0)
    versions: dict | None = None
    processes: int | None = setting(None, flag=False, min=1, max=1024)  # training processes (torchrun); 1 without
    preset: str | None = None  # the recipe (genlab.recipes) it was launched from, if any
    resumable: bool | None = None  # False: it failed for a reason a resume cannot fix (data set, option)
    pid_start: int | None = None  # when ``pid`` started (clock ticks after boot): a reused PID is another program
    trackers: dict | None = None  # --log: each tracker's {"where": how to open its logs, "error": why it stopped}
    owner: str | None = None  # public mode: a hash of the launching session's token (genlab.runs.jobs)

    @classmethod
    def from_dict(cls, d: dict, source: str = "run.json") -> RunInfo:
        info = from_dict(cls, d, source)
        if isinstance(info.config, dict):
            info.config = TrainConfig.from_dict(info.config, f"{source} config")
        info.status = RunStatus(info.status) if info.status in RunStatus._value2member_map_ else RunStatus.UNKNOWN
        return info

    @staticmethod
    def fields_to_json(fields: dict) -> dict:
        """Keyword updates (TrainConfig and RunStatus values included) as run.json values; unknown names refused."""
        known = {f.name for f in dataclasses.fields(RunInfo)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise BadFile(f"run.json has no fields {unknown}")
        return {k: v.to_dict() if isinstance(v, TrainConfig) else v for k, v in fields.items()}


# -- metrics.jsonl ------------------------------------------------------------------------------
@dataclass
class MetricRow:
    step: int
    epoch: float
    time: float  # training seconds so far (evaluations not counted)
    timestamp: float  # wall clock (unix time)
    metrics: dict[str, float] = field(default_factory=dict)  # the model's own metrics, by name

    kind = "row"

    def value(self, key: str) -> float | None:
        """A finite number by name (a field or one of ``metrics``), else None."""
        v = getattr(self, key, None) if key in _FIELDS[type(self)] else self.metrics.get(key)
        return float(v) if _is_number(v) and math.isfinite(v) else None

    def to_json(self) -> str:
        d = {"kind": self.kind, **{k: getattr(self, k) for k in _FIELDS[type(self)]}, **self.metrics}
        return json.dumps(d, allow_nan=True)


@dataclass
class TrainRow(MetricRow):
    """The mean of ``model.loss`` metrics over the steps since the previous row, and the speed."""

    images_per_s: float = 0.0
    lr: float = 0.0
    skipped_steps: int = 0  # non-finite steps in this interval (weights unchanged)

    kind = "train"


@dataclass
class EvalRow(MetricRow):
    """Held-out ``model.loss`` metrics, prefixed ``test_`` (``test_bpd`` in every family)."""

    kind = "eval"


@dataclass
class FidRow(MetricRow):
    fid: float = math.nan
    fid_samples: int = 0  # K in FID@K
    fid_weights: str = ""  # where the Inception weights came from
    fid_ref_images: int = 0
    fid_seconds: float = 0.0

    kind = "fid"


ROW_KINDS: dict[str, type[MetricRow]] = {c.kind: c for c in (TrainRow, EvalRow, FidRow)}
_FIELDS = {c: [f.name for f in dataclasses.fields(c) if f.name != "metrics"] for c in (MetricRow, *ROW_KINDS.values())}


MAX_ROW_CHARS = 64 * 1024  # a row is a few hundred characters; a longer line was not written by genlab


# the types of every row's fields (fid is any number: NaN records a FID that could not be computed)
ROW_SPEC = {
    "step": COUNT,
    "epoch": NUMBER,
    "time": NUMBER,
    "timestamp": NUMBER,
    "images_per_s": NUMBER,
    "lr": NUMBER,
    "skipped_steps": COUNT,
    "fid_samples": COUNT,
    "fid_weights": TEXT,
    "fid_ref_images": COUNT,
    "fid_seconds": NUMBER,
}


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def parse_row(line: str) -> MetricRow | None:
    """One metrics.jsonl line -> its row; None for a line cut short by a crash, of an unknown kind, or with a
    field of the wrong type. The model's own metrics keep only their numbers."""
    if len(line) > MAX_ROW_CHARS:
        return None
    try:
        d = json.loads(line)
        cls = ROW_KINDS[d.pop("kind")]
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, RecursionError):
        return None
    names = set(_FIELDS[cls])
    numbers = {k: v for k, v in d.items() if k not in names and _is_number(v)}
    try:
        check_fields(d, ROW_SPEC, "row")
        if "fid" in d and not _is_number(d["fid"]):
            return None
        return cls(**{k: v for k, v in d.items() if k in names}, metrics=numbers)
    except (BadFile, TypeError):  # a field of the wrong type; a required field missing
        return None


def rows_of(rows: list[MetricRow], kind: type[MetricRow]) -> list:
    return [r for r in rows if isinstance(r, kind)]


def last_of(rows: list[MetricRow], kind: type[MetricRow]):
    return next((r for r in reversed(rows) if isinstance(r, kind)), None)
