"""Which models are there to sample from: shipped checkpoints and runs with a checkpoint.

A shipped checkpoint is a directory under ``checkpoints/`` (``GENLAB_CHECKPOINTS``) written by
``genlab.export`` (or a run directory copied whole): its ``metrics.json`` or ``run.json`` says what
data it was trained on and the temperature its grid is shown at, and ``metrics.jsonl`` carries its
curves. Runs live under ``runs/`` (``GENLAB_RUNS``). Models pulled from the Hub are listed in
``GENLAB_HOME/hub-models.json`` (repo id -> snapshot folder in huggingface_hub's cache).
"""

from __future__ import annotations

import functools
import io
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from . import hub, names, public
from .data import DatasetUnavailable, dataset_info
from .device import has_fast_bf16
from .display import count
from .errors import ConfigError
from .export import read_metrics, read_model_folder
from .hub import is_repo_id
from .metrics.fid import describe_weights
from .models import MODELS, resolve_model_dir
from .models.base import CheckpointError, GenerativeModel
from .paths import cache_dir
from .recipes import RECIPES
from .runs.records import EvalRow, FidRow, RunStatus, last_of
from .runs.rundir import RunDir
from .runs.summary import list_runs
from .schema import short
from .settings import settings


def checkpoints_dir() -> Path:
    return settings().checkpoints


def runs_dir() -> Path:
    return settings().runs


@dataclass(frozen=True)
class ModelEntry:
    label: str  # what a picker shows
    path: Path  # the directory load_model takes (model dir or run dir)
    source: str  # "shipped", "run" or "hub"
    model_type: str
    image_size: int
    channels: int
    dataset: str | None  # what it was trained on, when known
    status: RunStatus | None  # a run's status; None for shipped models
    temperature: float = 1.0  # where its samples look best (an exported model's metrics.json, else its family)
    best_step: int | None = None  # a run's best weights by test bits/dim (RUN/best/), kept at this step

    @property
    def family(self) -> type[GenerativeModel]:
        return MODELS[self.model_type]

    @property
    def weights_file(self) -> Path:
        return resolve_model_dir(self.path) / names.WEIGHTS

    @property
    def mtime(self) -> float:
        """Changes whenever the weights are replaced: part of every cache key."""
        return self.weights_file.stat().st_mtime

    @property
    def run(self) -> RunDir | None:
        run = RunDir(self.path)
        return run if run.exists() else None


@dataclass(frozen=True)
class BrokenEntry:
    """A model genlab lists but cannot offer: the pages show it with ``error``, and a pulled one can be removed."""

    label: str
    path: Path
    source: str  # "shipped", "run" or "hub"
    error: str  # one sentence naming the file and what is wrong with it
    repo_id: str | None = None  # a pulled model's repo, for Remove


def _entry(path: Path, source: str, name: str | None = None, best_step: int | None = None) -> ModelEntry | None:
    """The entry a picker offers, or None when ``path`` holds no model that can be loaded."""
    entry = _entry_or_error(path, source, name, best_step)
    return entry if isinstance(entry, ModelEntry) else None


def _entry_or_error(path: Path, source: str, name: str | None = None, best_step: int | None = None):
    """A ``ModelEntry``, or a ``BrokenEntry`` saying which file of ``path`` is malformed (every file of a
    model folder is read through ``genlab.schema``, so one bad file is one bad entry, never a page error)."""
    try:
        # a run's process can die with no file changing: its status is read on every listing
        status = RunDir(path if best_step is None else path.parent).status() if source == "run" else None
        return _entry_as_read(path, source, name, best_step, status, _stamp(path), settings())
    except (CheckpointError, ValueError, OSError) as e:
        return _broken(path, source, name, best_step, e)


def _broken(path: Path, source: str, name: str | None, best_step: int | None, e: Exception) -> BrokenEntry:
    label = name or (path.name if best_step is None else f"{path.parent.name} · best")
    return BrokenEntry(label, path, source, str(e) or type(e).__name__, name if source == "hub" else None)


def _stamp(path: Path) -> tuple:
    """Size, mtime and inode of every file an entry of ``path`` is read from: a replaced or edited file, a
    finished run or new weights change it."""
    files = [
        path / names.CONFIG,
        path / names.CHECKPOINT / names.CONFIG,
        path / names.CHECKPOINT / names.WEIGHTS,
        path / names.WEIGHTS,
        path / names.METRICS,
        path / names.RUN_INFO,
        path.parent / names.RUN_INFO,
    ]
    out = []
    for f in files:
        try:
            st = f.stat()
            out.append((st.st_size, st.st_mtime_ns, st.st_ino))
        except OSError:
            out.append(None)
    return tuple(out)


# Every page lists the models on every rerun: reading and checking each folder's three JSON files cost half
# of the server's CPU with 40 visitors (docs/benchmarks.md, "The served app's capacity"), so an entry is kept
# for as long as the files it was read from and the settings (public mode's folders) are unchanged.
@functools.lru_cache(maxsize=512)
def _entry_as_read(path: Path, source: str, name: str | None, best_step: int | None, status, stamp: tuple, _env):
    try:
        return _read_entry(path, source, name, best_step, status)
    except (CheckpointError, ValueError, OSError) as e:
        return _broken(path, source, name, best_step, e)


@functools.lru_cache(maxsize=32)
def _available(name: str) -> bool:
    """Whether a named data set can be read here (cached: its check lists files, and pages ask on every rerun)."""
    return dataset_info(name).available


def readable_dataset(name) -> str | None:
    """The data set a model records, when the pages may read its test images here; None when it is unknown,
    needs the internet, or (public mode) lies outside the app's folders: a pulled repo's metrics.json names
    it, and a page must not read whatever folder a stranger wrote there."""
    if not isinstance(name, str):
        return None
    try:
        public.check_dataset(name)
        if name.startswith("folder:"):
            where = name[len("folder:") :].strip()
            return name if where and Path(where).expanduser().exists() else None
        return name if _available(name) else None
    except (DatasetUnavailable, public.PublicModeError, OSError, ValueError):
        return None


def _read_entry(path: Path, source: str, name: str | None, best_step: int | None, status) -> ModelEntry:
    family, cfg, metrics = read_model_folder(path)
    run = RunDir(path if best_step is None else path.parent)
    train_cfg = run.config() if run.exists() else None
    dataset = readable_dataset((train_cfg.dataset if train_cfg else None) or metrics.get("dataset"))
    size = int(cfg.get("image_size", family.default_image_size()))
    what = f"{family.model_type} {size}×{size}" + (f" · {dataset}" if dataset else "")
    if best_step is not None:
        name = f"{run.path.name} · best (step {best_step})"
    label = f"{name or path.name}  ({what}{', ' + status if status and status != RunStatus.FINISHED else ''})"
    return ModelEntry(
        label=label,
        path=path,
        source=source,
        model_type=family.model_type,
        image_size=size,
        channels=int(cfg.get("channels", 3)),
        dataset=dataset,
        status=status,
        temperature=_temperature(metrics, _preset_temperature(run) or family.default_temperature),
        best_step=best_step,
    )


def _preset_temperature(run: RunDir) -> float | None:
    """A run launched from a preset is shown at its recipe's temperature, like the shipped model."""
    try:
        preset = run.info().preset if run.exists() else None
    except (OSError, ValueError):
        return None
    return next((r.temperature for r in RECIPES if r.name == preset), None)


def _temperature(metrics: dict, default: float) -> float:
    """The card's temperature (metrics.json ``samples.temperature``) when it is a number in [0, 2]."""
    samples = metrics.get("samples")
    t = samples.get("temperature") if isinstance(samples, dict) else None
    ok = isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t <= 2
    return float(t) if ok else default


def model_entry(path: str | Path) -> ModelEntry | None:
    """One model or run directory as the pickers describe it (family, size, data set); None if unloadable."""
    return _entry(Path(path), "run" if RunDir(path).exists() else "shipped")


def default_temperature(path: str | Path, model: GenerativeModel) -> float:
    """Where ``path``'s samples look best: its card's temperature (or its preset's), else the family's."""
    entry = model_entry(path) if Path(path).exists() else None
    return entry.temperature if entry else model.default_temperature


def dataset_of(spec: str | Path) -> str:
    """The data set a run directory trained on, or a model folder's card names; ``spec`` may be a pulled repo id."""
    folder = Path(spec)
    if not folder.exists() and is_repo_id(str(spec)):
        folder = Path(hub.pulled_models()[0].get(str(spec), spec))
    run = RunDir(folder)
    dataset = run.config().dataset if run.exists() else read_metrics(folder).get("dataset")
    if not isinstance(dataset, str):
        raise ConfigError(f"{spec} does not say what data it was trained on: give --dataset")
    return dataset


def shipped_models(root: Path | None = None) -> list[ModelEntry]:
    root = root or checkpoints_dir()
    if not root.is_dir():
        return []
    return [e for p in sorted(root.iterdir()) if p.is_dir() and (e := _entry(p, "shipped"))]


def broken_models(checkpoints: Path | None = None, runs: Path | None = None) -> list[BrokenEntry]:
    """The models every picker leaves out because a file of theirs is malformed, each with its sentence."""
    root = checkpoints or checkpoints_dir()
    found = [_entry_or_error(p, "shipped") for p in sorted(root.iterdir()) if p.is_dir()] if root.is_dir() else []
    pulled, unusable = hub.pulled_models()
    found += [_entry_or_error(Path(folder), "hub", repo_id) for repo_id, folder in pulled.items()]
    found += [_entry_or_error(r.path, "run") for r in list_runs(runs or runs_dir()) if r.has_checkpoint()]
    found += [
        BrokenEntry(k if is_repo_id(k) else short(k), hub.pulled_list_file(), "hub", why, k)
        for k, why in unusable.items()
    ]
    return [e for e in found if isinstance(e, BrokenEntry)]


def run_models(root: Path | None = None) -> list[ModelEntry]:
    """Runs that have a checkpoint to sample from (a live run's latest one included), newest first; after
    each, its best weights by test bits/dim when they are not the latest checkpoint's."""
    out = []
    for r in list_runs(root or runs_dir()):
        if not r.has_checkpoint() or (e := _entry(r.path, "run")) is None:
            continue
        out.append(e)
        best = r.best()
        if best is not None and best[0] != r.checkpoint_step() and (b := _entry(r.best_dir, "run", best_step=best[0])):
            out.append(b)
    return out


def worth_showing(entry: ModelEntry) -> bool:
    """Home shows a user's run beside the shipped models only when it finished, was launched from a preset,
    and reached test bits/dim within ``recipes.BPD_FACTOR`` of that recipe's shipped checkpoint."""
    run = entry.run
    if entry.source != "run" or entry.status != RunStatus.FINISHED or run is None or entry.best_step is not None:
        return False
    try:
        preset = run.info().preset
    except (OSError, ValueError):
        return False
    ceiling = next((r.bpd_ceiling() for r in RECIPES if r.name == preset), None)
    bpd = figures(entry).bpd  # the run's last evaluation, the figure every page shows for it
    return ceiling is not None and bpd is not None and bpd <= ceiling


def hub_models() -> list[ModelEntry]:
    """Models pulled from the Hub whose snapshot is still in the cache."""
    pulled = hub.pulled_models()[0]
    return [e for repo_id, folder in pulled.items() if (e := _entry(Path(folder), "hub", name=repo_id))]


def available_models(checkpoints: Path | None = None, runs: Path | None = None) -> list[ModelEntry]:
    return shipped_models(checkpoints) + hub_models() + run_models(runs)


@dataclass(frozen=True)
class Figures:
    """The one test bits/dim and FID the app shows for a model, on every page, and what produced them."""

    bpd: float | None
    bpd_kind: str  # "-ELBO, 1 sample" (a VAE's bound: its true bits/dim are lower) or "exact"
    bpd_source: str  # "model card, 10000 mnist test images" or "last evaluation (step 1500), 11 test images"
    fid: float | None = None
    fid_k: int | None = None
    fid_reference: str = ""  # "emoji-faces train split, 98 images"
    fid_weights: str = ""


def _number(v) -> float | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return float(v) if ok else None


def figures(entry: ModelEntry) -> Figures:
    """An exported model's figures come from its card (metrics.json: what its README and the Hub show); a
    run's from its last evaluation and FID rows. The Compare page's optional tighter bound is a separate,
    labelled number."""
    m = read_metrics(entry.path)
    if _number(m.get("test_bpd")) is not None:
        n, ref = m.get("test_images"), m.get("fid_reference")
        k = m.get("fid_samples")
        return Figures(
            bpd=_number(m["test_bpd"]),
            bpd_kind=str(m.get("test_bpd_kind") or entry.family.loss_bpd_kind),
            bpd_source="model card" + (f", {n} {entry.dataset or ''} test images" if isinstance(n, int) else ""),
            fid=_number(m.get("fid")),
            fid_k=k if isinstance(k, int) else None,
            fid_reference=ref if isinstance(ref, str) else "",
            fid_weights=str(m.get("fid_weights") or ""),
        )
    run = entry.run if entry.best_step is None else RunDir(entry.path.parent)
    if run is None:
        return Figures(None, entry.family.loss_bpd_kind, "no evaluation recorded")
    rows, info = run.read_metrics(), run.info()
    evals = [r for r in rows if isinstance(r, EvalRow) and r.value("test_bpd") is not None]
    if entry.best_step is not None:
        evals = [r for r in evals if r.step == entry.best_step]
    ev, fid = (evals[-1] if evals else None), last_of(rows, FidRow)
    cfg = info.config
    tests = (info.dataset or {}).get("test") if isinstance(info.dataset, dict) else None
    if isinstance(tests, int) and cfg and cfg.eval_batches:
        tests = min(tests, cfg.eval_batches * cfg.batch_size)
    where = f"evaluation at step {ev.step}" if ev else "no evaluation yet"
    return Figures(
        bpd=ev.value("test_bpd") if ev else None,
        bpd_kind=entry.family.loss_bpd_kind,
        bpd_source=where + (f", {tests} test images" if isinstance(tests, int) else ""),
        fid=fid.fid if fid else None,
        fid_k=fid.fid_samples if fid else None,
        fid_reference=f"{entry.dataset} train split, {fid.fid_ref_images} images" if fid else "",
        fid_weights=fid.fid_weights if fid else "",
    )


def comparison_notes(a: ModelEntry, b: ModelEntry, fa: Figures, fb: Figures) -> list[str]:
    """What makes the figures of models ``a`` and ``b`` (``fa``, ``fb``) not comparable, one sentence each: the
    image sizes, the training data, or FIDs measured at different K or against different references."""
    notes = []
    if a.image_size != b.image_size:
        notes.append(
            f"**Not comparable: image sizes differ** ({a.image_size}² vs {b.image_size}²). Bits/dim and FID "
            "describe different tasks at different sizes; train one at the other's size for a fair comparison."
        )
    if a.dataset != b.dataset or a.dataset is None:
        notes.append("**Not comparable: the training data differ**, so each number describes a different task.")
    measured = [f for f in (fa, fb) if f.fid is not None]
    refs, ks = {f.fid_reference for f in measured}, {f.fid_k for f in measured}
    if len(refs) > 1 or len(ks) > 1:
        notes.append(
            "**FIDs not comparable**: they were measured at different K or against different reference sets "
            f"({'; '.join(sorted(refs))}). FID@K is biased upwards at small K and small reference sets."
        )
    return notes


@dataclass(frozen=True)
class Environment:
    device: str  # "CPU (2 threads)" or "cuda: NVIDIA H100 ..."
    fid_weights: str  # where FID's Inception weights come from
    runs: Path
    checkpoints: Path
    cache: Path


def describe_environment() -> Environment:

    if torch.cuda.is_available():
        device = f"GPU: {torch.cuda.get_device_name(0)}"
    else:
        bf16 = ", trains in bf16" if has_fast_bf16(torch.device("cpu")) else ""
        device = f"CPU ({count(torch.get_num_threads(), 'thread')}{bf16}; no CUDA GPU)"
    return Environment(
        device=device, fid_weights=describe_weights(), runs=runs_dir(), checkpoints=checkpoints_dir(), cache=cache_dir()
    )


def export_zip(path: Path) -> bytes:
    """A model (or a run's checkpoint) as a zip that ``load_model`` reads once unpacked: config.json,
    model.safetensors, and the run's run.json and metrics.jsonl when there is a run."""

    model_dir = resolve_model_dir(path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:  # safetensors barely compress
        for name in (names.CONFIG, names.WEIGHTS):
            zf.write(model_dir / name, f"{path.name}/{name}")
        for name in (names.RUN_INFO, names.RUN_METRICS):
            if (path / name).is_file():
                zf.write(path / name, f"{path.name}/{name}")
    return buf.getvalue()
