"""A model as a self-describing folder: what ships in ``checkpoints/`` and what goes to the Hub.

    NAME/config.json        the model's config (``model_type`` + its dataclass fields)
    NAME/model.safetensors  the weights (never a pickle)
    NAME/metrics.json       held-out bits/dim (and the VAE's IWAE bound), FID@K with K, the reference set and
                            the Inception weights' source, training steps/time/device, the grid's temperature
    NAME/samples.png        a sample grid at that temperature
    NAME/README.md          the model card: the Hub's YAML metadata (library_name, license, datasets, tags,
                            a model-index with the metrics) and the data set's credit, the command, the figures
    NAME/run.json, metrics.jsonl   the training run's record and curves, when exported from a run

The card is written with huggingface_hub's ``ModelCard``/``ModelCardData``/``EvalResult``, so the
metadata is what the Hub parses. ``load_model`` reads such a folder like any saved model.
"""

from __future__ import annotations

import math
import re
import shutil
import time
from pathlib import Path

import torch
from torchvision.utils import save_image

from . import names
from .data import dataset_info
from .device import resolve_device
from .display import count
from .errors import ConfigError
from .metrics.fid import FID, fid_from_stats
from .metrics.likelihood import BOUND_IMAGES, bound_keys, evaluate, images_for
from .models import MODELS, load_model, model_class, resolve_model_dir
from .models.base import (
    CONFIG_NAME,
    FORMAT_KEY,
    WEIGHTS_NAME,
    CheckpointError,
    GenerativeModel,
    config_from_dict,
    read_config,
)
from .runs.records import EvalRow, FidRow, RunInfo, TrainRow, rows_of
from .runs.rundir import RunDir
from .schema import MODEL_METRICS, check_bound_keys, check_fields, read_json
from .storage import atomic_write_json
from .version import __version__

METRICS_NAME, SAMPLES_NAME, CARD_NAME = names.METRICS, names.SAMPLES, names.CARD
RUN_FILES = (names.RUN_INFO, names.RUN_METRICS)
HUB_FILES = (CONFIG_NAME, WEIGHTS_NAME, METRICS_NAME, SAMPLES_NAME, CARD_NAME)

# what the model card says about each offline data set: Hub dataset id (when there is one) and licence
DATASET_CARD = {
    "emoji": {"license": "cc-by-4.0", "hub": None, "pretty": "Twemoji (all 4,009 emoji)"},
    "emoji-faces": {"license": "cc-by-4.0", "hub": None, "pretty": "Twemoji smiley faces"},
    "mnist": {"license": "cc-by-sa-3.0", "hub": "ylecun/mnist", "pretty": "MNIST"},
    "fashion-mnist": {"license": "mit", "hub": "zalando-datasets/fashion_mnist", "pretty": "Fashion-MNIST"},
    "cifar10": {"license": "other", "hub": "uoft-cs/cifar10", "pretty": "CIFAR-10"},
    "celeba": {"license": "other", "hub": None, "pretty": "CelebA"},
}


def read_metrics(folder: str | Path) -> dict:
    """A model folder's ``metrics.json``, its fields checked (``genlab.schema.MODEL_METRICS``); {} when it
    has none. A malformed one is a CheckpointError naming the file and the field."""
    path = Path(folder) / METRICS_NAME
    try:
        d = read_json(path, CheckpointError)
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise CheckpointError(f"{path} cannot be read ({e.strerror or e})") from None
    return check_bound_keys(check_fields(d, MODEL_METRICS, str(path), CheckpointError), str(path), CheckpointError)


def read_model_folder(folder: str | Path) -> tuple[type[GenerativeModel], dict, dict]:
    """A model folder (or a run directory) read as every page reads it: its family, its ``config.json`` (keys,
    types and bounds checked; nothing built) and its ``metrics.json``. A malformed file is a CheckpointError
    that names it."""
    model_dir = resolve_model_dir(folder)
    cfg = read_config(model_dir)
    family = model_class(cfg["model_type"])
    fields = {k: v for k, v in cfg.items() if k not in ("model_type", FORMAT_KEY)}
    config_from_dict(family.config_class, fields, str(model_dir / CONFIG_NAME))
    return family, cfg, read_metrics(folder)


def _run_record(run: RunDir | None) -> dict:
    """Training facts from a run directory: steps, epochs, training and wall time, device, command."""
    if run is None:
        return {}
    info, rows = run.info(), run.read_metrics()
    train_rows = rows_of(rows, TrainRow)
    last = train_rows[-1] if train_rows else None
    speeds = sorted(r.images_per_s for r in train_rows if r.images_per_s)
    last_ts = max((r.timestamp for r in rows), default=None)
    cfg, versions = run.config(), info.versions or {}
    return {
        "steps": last.step if last else None,
        "epochs": round(last.epoch, 2) if last else 0.0,
        "train_seconds": last.time if last else None,
        "wall_seconds": round(last_ts - info.created_at, 1) if info.created_at and last_ts else None,
        "images_per_s_median": speeds[len(speeds) // 2] if speeds else None,
        "device": info.device,
        "threads": info.threads,
        "precision": info.precision,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "command": "python -m genlab " + " ".join(cfg.argv()),
        "torch": versions.get("torch"),
        "genlab": versions.get("genlab"),
    }


def _last_rows(run: RunDir | None) -> dict:
    """The run's own last evaluation and FID rows, for an export that does not re-evaluate."""
    out: dict = {}
    if run is None:
        return out
    for r in run.read_metrics():
        if isinstance(r, EvalRow):
            out.update({"test_bpd": r.value("test_bpd"), "test_bpd_step": r.step})
        elif isinstance(r, FidRow):
            out.update(
                {
                    "fid": r.fid,
                    "fid_samples": r.fid_samples,
                    "fid_weights": r.fid_weights,
                    "fid_reference": f"train split, {r.fid_ref_images} images",
                    "fid_temperature": 1.0,
                }
            )
    return out


def evaluate_model(
    model,
    dataset: str,
    fid_samples: int = 1000,
    fid_ref_n: int | None = 10000,
    iwae_k: int | None = None,
    eval_n: int | None = None,
    iwae_n: int = BOUND_IMAGES,
    device: str = "auto",
) -> dict:
    """Held-out bits/dim (the loss's on ``eval_n`` test images, default all; the k-sample bound on the first
    ``iwae_n``, since IWAE k=100 costs 100 decoder passes per image) and FID@K of samples at T=1 against
    the train split."""
    m = evaluate(model, images_for(model, dataset), iwae_k, eval_n, iwae_n)
    # the card keeps the bits/dim and the bounds; the loss's other terms are the run's business
    out = {k: v for k, v in m.items() if k in ("test_images", "test_bpd", "test_bpd_kind", "iwae_images")}
    out.update({k: v for k, v in m.items() if k in bound_keys(m).values() or k == "elbo_bpd_iwae_images"})
    if fid_samples:
        t = time.perf_counter()
        fid = FID(device=device)
        ref = fid.stats_of_dataset(dataset, "train", model.config.image_size, fid_ref_n)
        out.update(
            {
                "fid": fid_from_stats(fid.stats_of_model(model, fid_samples, temperature=1.0, seed=0), ref),
                "fid_samples": fid_samples,
                "fid_temperature": 1.0,
                "fid_reference": f"{dataset} train split, {ref.n} images",
                "fid_weights": fid.source,
                "fid_seconds": round(time.perf_counter() - t, 1),
            }
        )
    return out


def _reproduce(name: str, metrics: dict) -> list[str]:
    """The card's lines on how to make the model again: the recipe's command, and its stages when it had some."""
    if not metrics.get("recipe"):
        return []
    stages = [s for s in (metrics.get("recipe_stages") or "").split("\n") if s]
    if not stages:
        return [
            f"Reproduce it from scratch with `python -m genlab checkpoints {name}` (the step count it reached is "
            "pinned there).",
            "",
        ]
    return [
        f"It was made in {len(stages)} stages, the first from scratch and each later one resuming the same run "
        "with new settings; the command above is the configuration it ended with. "
        f"`python -m genlab checkpoints {name}` repeats them:",
        "",
        *[f"    {s}" for s in stages],
        "",
    ]


def model_card(name: str, config: dict, metrics: dict, repo_id: str | None) -> str:
    """The model card (README.md) of a model folder, from its config and its metrics.json."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    dataset = metrics.get("dataset", "?")
    meta = DATASET_CARD.get(dataset, {"license": "other", "hub": None, "pretty": dataset})
    mcls = MODELS.get(config.get("model_type"))
    family = mcls.display_name if mcls else config.get("model_type")
    size = config.get("image_size")
    results = []
    bound = mcls.bound_kind if mcls else (lambda k: f"{k}-sample bound")
    bounds = [(key, f"test bits/dim ({bound(k)})") for k, key in bound_keys(metrics).items()]
    for key, label in [("test_bpd", "test bits/dim"), *bounds, ("fid", f"FID@{metrics.get('fid_samples')}")]:
        if metrics.get(key) is not None:
            results.append(
                EvalResult(
                    task_type="unconditional-image-generation",
                    dataset_type=meta["hub"] or dataset,
                    dataset_name=meta["pretty"],
                    dataset_split="test" if "bpd" in key else "train",
                    metric_type="fid" if key == "fid" else "bits-per-dim",
                    metric_name=label,
                    metric_value=round(float(metrics[key]), 4),
                )
            )
    data = ModelCardData(
        library_name="genlab",
        license=meta["license"],
        pipeline_tag="unconditional-image-generation",
        datasets=[meta["hub"]] if meta["hub"] else None,
        model_name=repo_id or name,
        tags=[
            "genlab",
            config.get("model_type"),
            f"{size}x{size}",
            "unconditional-image-generation",
            "pytorch",
            "safetensors",
        ],
        eval_results=results or None,
    )
    tr = metrics.get("train", {})

    def fmt(v, spec=".4f"):
        return "-" if v is None else format(v, spec)

    wall = tr.get("wall_seconds")
    n_threads = tr.get("threads")
    threads = f" with {count(n_threads, 'thread')}" if n_threads and tr.get("device") == "cpu" else ""
    if tr.get("precision"):  # the last (re)start's: absent from runs before it was recorded
        threads += f" in {tr['precision']}"
    lines = [
        f"# {name}: a genlab {family} at {size}×{size} trained on {meta['pretty']}",
        "",
        f"![samples at T={metrics.get('samples', {}).get('temperature', 1.0)}]({SAMPLES_NAME})",
        "",
        f"A {family} with {metrics.get('num_parameters', 0):,} parameters, trained with "
        f"genlab {metrics.get('genlab_version', __version__)}. "
        f'Load it with `genlab.load_model("{repo_id or name}")` (strict, safetensors only) or open it in the '
        "genlab app's Sample page.",
        "",
        "## Data",
        "",
        f"`{dataset}` at {size}×{size}: {metrics.get('dataset_credit', '')} "
        f"({metrics.get('train_images', '?')} training and {metrics.get('test_images', '?')} test images).",
        "",
        "## Training",
        "",
        f"    {tr.get('command', '?')}",
        "",
        *_reproduce(name, metrics),
        f"{tr.get('steps', '?')} steps ({tr.get('epochs', '?')} epochs), {fmt(tr.get('train_seconds'), '.0f')} s of "
        f"training, {fmt(wall, '.0f')} s wall including evaluations, on `{tr.get('device', '?')}`{threads} "
        f"(median {fmt(tr.get('images_per_s_median'), '.0f')} images/s); torch {tr.get('torch', '?')}.",
        "",
        "## Figures",
        "",
        "| metric | value |",
        "|---|---|",
        f"| test bits/dim ({metrics.get('test_bpd_kind', '')}) | {fmt(metrics.get('test_bpd'))} |",
    ]
    loss_kind = mcls.loss_bpd_kind if mcls else "the loss"
    for k, key in bound_keys(metrics).items():
        kind = mcls.bound_kind(k) if mcls else f"{k}-sample bound"
        lines.append(
            f"| test bits/dim, {kind} (first {metrics.get('iwae_images')} test images; "
            f"{loss_kind} on them {fmt(metrics.get('elbo_bpd_iwae_images'))}) | {fmt(metrics[key])} |"
        )
    if metrics.get("fid") is not None:
        lines.append(
            f"| FID@{metrics.get('fid_samples')} (T={metrics.get('fid_temperature', 1.0)}, vs "
            f"{metrics.get('fid_reference', '?')}) | {fmt(metrics['fid'], '.2f')} |"
        )
        lines += [
            "",
            f"FID Inception weights: {metrics.get('fid_weights', '?')}. FID@K is biased upwards at small K "
            "and small reference sets; compare FIDs only at equal K and reference.",
        ]
    lines += [
        "",
        "Bits/dim are over 8-bit pixels (uniform dequantization for the flow), comparable between "
        "genlab's families at equal image size.",
    ]
    return ModelCard("---\n" + data.to_yaml() + "\n---\n\n" + "\n".join(lines) + "\n").content


def export_model(  # noqa: C901 - to split (one screen per function)
    source: str | Path,
    out: str | Path,
    name: str | None = None,
    repo_id: str | None = None,
    recipe: str | None = None,
    stages: list[str] | None = None,
    temperature: float = 1.0,
    evaluate: bool = True,
    fid_samples: int = 1000,
    fid_ref_n: int | None = 10000,
    eval_n: int | None = None,
    iwae_n: int = BOUND_IMAGES,
    device: str = "auto",
    dataset: str | None = None,
) -> Path:
    """Write ``out/`` (see the module docstring) from a run directory or a model folder.

    ``evaluate`` recomputes the figures (held-out bits/dim, IWAE k=100 for a VAE, FID@``fid_samples``);
    otherwise they come from the run's own last evaluation and FID rows. The folder is built beside
    ``out`` and renamed into place, so a failure never leaves half a model there.
    """
    source, out = Path(source), Path(out)
    run = RunDir(source) if RunDir(source).exists() else None
    model_dir = resolve_model_dir(source)
    model = load_model(model_dir, map_location=resolve_device(device))
    info = run.info() if run else RunInfo()
    previous = read_metrics(model_dir)
    dataset = dataset or (info.config.dataset if info.config else None) or previous.get("dataset")
    if dataset is None:
        raise ConfigError(f"{source} does not say what data it was trained on; give the data set")

    metrics = {
        **previous,
        "dataset": dataset,
        "image_size": model.config.image_size,
        "model_type": model.model_type,
        "num_parameters": model.num_parameters(),
        "dataset_credit": (info.dataset or {}).get("credit")
        or previous.get("dataset_credit")
        or dataset_info(dataset).credit,
        "train_images": (info.dataset or {}).get("train") or previous.get("train_images"),
        "genlab_version": __version__,
    }
    if run:
        metrics["train"] = _run_record(run)
        if not evaluate:
            metrics.update(_last_rows(run))
        metrics.setdefault("test_images", (info.dataset or {}).get("test"))
        metrics.setdefault("test_bpd_kind", model.loss_bpd_kind)
    if evaluate:
        metrics.update(
            evaluate_model(model, dataset, fid_samples, fid_ref_n, eval_n=eval_n, iwae_n=iwae_n, device=device)
        )
    metrics["samples"] = {"temperature": temperature, "seed": 0, "n": 64}
    if recipe:
        metrics["recipe"] = recipe
        metrics["recipe_stages"] = "\n".join(stages) if stages else None

    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in (CONFIG_NAME, WEIGHTS_NAME):
        shutil.copy2(model_dir / f, tmp / f)
    if run:
        for f in RUN_FILES:
            if (run.path / f).is_file():
                shutil.copy2(run.path / f, tmp / f)
    g = torch.Generator().manual_seed(0)
    imgs = model.sample(64, temperature=temperature, generator=g).float().cpu()
    save_image(imgs, tmp / SAMPLES_NAME, nrow=int(math.sqrt(64)), padding=1)
    atomic_write_json(tmp / METRICS_NAME, metrics)
    (tmp / CARD_NAME).write_text(model_card(name or out.name, model.config_dict(), metrics, repo_id))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


MAX_CARD_BYTES = 1 << 20


def card_text(folder: str | Path) -> str:
    """A model card's text for display: no YAML front matter (not parsed: the page shows none of it) and no
    image links relative to the repo (``samples.png`` is shown on its own); "" when there is none."""
    path = Path(folder) / CARD_NAME
    try:
        if not path.is_file() or path.stat().st_size > MAX_CARD_BYTES:
            return ""
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return ""
    text = re.sub(r"\A---\r?\n.*?\r?\n---\r?\n", "", text, flags=re.S)
    return re.sub(r"!\[[^\]]*\]\((?!https?:)[^)]*\)\n?", "", text).strip()
