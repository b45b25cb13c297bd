"""``python -m genlab`` / ``genlab``: train, sample, list datasets.

    genlab train vae --dataset emoji --image-size 64 --epochs 10 --out runs/vae-emoji
    genlab train --resume runs/vae-emoji [--epochs 20]
    genlab sample runs/vae-emoji --n 64 --temperature 0.8 --seed 0 --out grid.png
    genlab eval runs/vae-emoji --k 100
    genlab fid emoji:train emoji:test [--n N]   # also image folders, model/run dirs, .npz statistics
    genlab fid-stats emoji:train --out ref.npz
    genlab runs [runs/]                          # status, progress, ETA, test bpd, FID@K of every run
    genlab datasets
    genlab export runs/vae-emoji checkpoints/my-vae [--temperature 0.8]   # a model folder with metrics and card
    genlab pull org/name [--revision R]          # into the Hugging Face cache; prints where
    genlab push RUN_OR_MODEL_DIR org/name [--private]
    genlab checkpoints [NAME ...]                # retrain the shipped checkpoints from scratch (make checkpoints)
    genlab publish [NAME ...]                    # push the shipped checkpoints to their default repo ids
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

from .data import DatasetUnavailable, dataset_info
from .fid import FIDWeightsUnavailable
from .hub import HubError
from .models import MODELS, model_options
from .models.base import CheckpointError
from .paths import safe_name
from .rundir import RunDir, RunLocked

def _model_fields() -> dict[str, dict[str, dataclasses.Field]]:
    return {name: model_options(name) for name in MODELS}


def _parse_bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {s!r}")


def _add_train(sub) -> None:
    from .train import TrainConfig
    d = TrainConfig()
    p = sub.add_parser("train", help="train a model; writes a run directory")
    p.add_argument("model", nargs="?", choices=sorted(MODELS), help="model family (omit with --resume)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--dataset", default=d.dataset, help="emoji, mnist, fashion-mnist, cifar10, celeba or folder:PATH")
    p.add_argument("--image-size", type=int, default=None, help="default: the model's own (VAE 64, RealNVP 32)")
    p.add_argument("--epochs", type=int, default=None, help=f"default {d.epochs}")
    p.add_argument("--max-steps", type=int, default=None, help="train for this many steps instead of epochs")
    p.add_argument("--max-minutes", type=float, default=None, help="also stop after this much training time")
    p.add_argument("--step-limit", type=int, default=None, help="a ceiling on steps, whatever epochs or --max-steps say")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=None, help="auto (default), cpu or cuda")
    p.add_argument("--grad-clip", type=float, default=d.grad_clip, help="max gradient norm; 0 turns it off")
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--eval-every", type=int, default=None, help="steps between evaluations (default: one epoch)")
    p.add_argument("--checkpoint-every", type=int, default=None, help="default: at every evaluation")
    p.add_argument("--eval-batches", type=int, default=None, help="cap on test batches per evaluation")
    p.add_argument("--sample-n", type=int, default=d.sample_n)
    p.add_argument("--max-nonfinite", type=int, default=d.max_nonfinite)
    p.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    p.add_argument("--fid-every", type=int, default=None, help="steps between FID evaluations (default: none)")
    p.add_argument("--fid-samples", type=int, default=d.fid_samples, help="generated images per FID (FID@K)")
    p.add_argument("--fid-ref-n", type=int, default=d.fid_ref_n, help="reference images from the train split")
    p.add_argument("--out", help="run directory (default runs/MODEL-DATASET-TIME)")
    p.add_argument("--queue", type=int, default=None, metavar="N",
                   help="wait until fewer than N queued runs in the run's parent folder are training")
    seen = set()
    for model, fields in _model_fields().items():
        g = p.add_argument_group(f"{model} options")
        for name, f in fields.items():
            if name in seen:
                continue
            seen.add(name)
            typ = _parse_bool if isinstance(f.default, bool) else type(f.default)
            g.add_argument("--" + name.replace("_", "-"), dest=f"model__{name}", type=typ, default=None,
                           help=f"default {f.default}")


def _train(args) -> int:
    from .train import TrainConfig, Trainer
    model_opts = {k[len("model__"):]: v for k, v in vars(args).items() if k.startswith("model__") and v is not None}
    if args.resume:
        run = RunDir(args.resume)
        if not run.exists():
            print(f"error: {args.resume} is not a run directory (no run.json)", file=sys.stderr)
            return 2
        cfg = TrainConfig.from_dict(run.read_info()["config"])
        if args.epochs is not None:
            cfg.epochs, cfg.max_steps = args.epochs, None
        if args.max_steps is not None:
            cfg.max_steps = args.max_steps
        if args.max_minutes is not None:
            cfg.max_minutes = args.max_minutes
        if args.step_limit is not None:
            cfg.step_limit = args.step_limit
        if args.device:
            cfg.device = args.device
        # a run stopped or killed before its first checkpoint starts again from step 0
        trainer = Trainer(cfg, run.path, resume=run.has_checkpoint())
    else:
        if not args.model:
            print("error: name a model to train (" + ", ".join(sorted(MODELS)) + ") or give --resume RUN_DIR",
                  file=sys.stderr)
            return 2
        dataset_info(args.dataset)  # an unknown dataset name fails here, before a run directory exists
        foreign = sorted(set(model_opts) - set(_model_fields()[args.model]))
        if foreign:
            print(f"error: {', '.join('--' + f.replace('_', '-') for f in foreign)} "
                  f"is not an option of {args.model}", file=sys.stderr)
            return 2
        image_size = args.image_size or MODELS[args.model].config_class().image_size
        cfg = TrainConfig(model=args.model, model_config=model_opts, dataset=args.dataset, image_size=image_size,
                          epochs=args.epochs if args.epochs is not None else TrainConfig.epochs,
                          max_steps=args.max_steps, max_minutes=args.max_minutes, step_limit=args.step_limit,
                          batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                          device=args.device or "auto", grad_clip=args.grad_clip or None, log_every=args.log_every,
                          eval_every=args.eval_every, checkpoint_every=args.checkpoint_every,
                          eval_batches=args.eval_batches, sample_n=args.sample_n, max_nonfinite=args.max_nonfinite,
                          amp=not args.no_amp, fid_every=args.fid_every, fid_samples=args.fid_samples,
                          fid_ref_n=args.fid_ref_n)
        out = Path(args.out or f"runs/{args.model}-{safe_name(args.dataset)}-{time.strftime('%Y%m%d-%H%M%S')}")
        if RunDir(out).exists() and not _never_started(RunDir(out)):
            print(f"error: {out} already holds a run; resume it with --resume {out}, or choose another --out",
                  file=sys.stderr)
            return 2
        trainer = Trainer(cfg, out)
    slot = None
    if args.queue:
        from .jobs import wait_for_slot
        # the whole config is on disk while queued, so a run stopped in the queue can be resumed as launched
        trainer.run.path.mkdir(parents=True, exist_ok=True)
        trainer.run.update_info(config=dataclasses.asdict(trainer.cfg))
        slot = wait_for_slot(trainer.run, args.queue)
        if slot is None:
            print(f"run {trainer.run.path}: stopped while queued")
            return 0
    if not trainer.resume and trainer.run.metrics_path.exists():
        trainer.run.truncate_metrics(0)  # rows of an attempt that never reached a checkpoint
    try:
        status = trainer.fit()
    finally:
        if slot is not None:
            slot.close()
    info = trainer.run.read_info()
    print(f"run {trainer.run.path}: {status}" + (f" ({info.get('error')})" if info.get("error") else ""))
    return 1 if status == "failed" else 0


def _never_started(run: RunDir) -> bool:
    """A run directory written by a launcher (status queued) whose training has not begun."""
    return run.read_info().get("status") == "queued" and not run.has_checkpoint() and not run.read_metrics()


def _sample(args) -> int:
    import torch
    from torchvision.utils import save_image

    from . import load_model
    from .device import resolve_device
    model = load_model(args.path, map_location=resolve_device(args.device))
    g = torch.Generator().manual_seed(args.seed)
    imgs = model.sample(args.n, temperature=args.temperature, generator=g).float().cpu()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image(imgs, out, nrow=args.nrow or int(math.ceil(math.sqrt(args.n))), padding=1)
    print(f"wrote {args.n} samples (T={args.temperature}, seed={args.seed}) to {out}")
    return 0


def _eval(args) -> int:
    import json

    from . import load_model
    from .data import load_dataset
    from .evaluate import average_metrics, nll_bound_bpd
    from .device import resolve_device
    model = load_model(args.path, map_location=resolve_device(args.device))
    dataset = args.dataset
    if dataset is None:
        run = RunDir(args.path)
        if not run.exists():
            print("error: give --dataset for a model directory (a run directory knows its own)", file=sys.stderr)
            return 2
        dataset = run.read_info()["config"]["dataset"]
    images = load_dataset(dataset, model.config.image_size).split(args.split)
    result = {"dataset": dataset, "split": args.split, "images": min(len(images), args.n or len(images))}
    result.update(average_metrics(model, images, args.batch_size, args.n))
    k = args.k if args.k is not None else getattr(model, "default_eval_k", 1)
    if k and hasattr(model, "nll_bpd"):
        result[f"nll_bpd_k{k}"] = nll_bound_bpd(model, images, k, max_images=args.n)
    if args.json:
        print(json.dumps(result))
    else:
        for key, v in result.items():
            print(f"{key:>16}: {v:.4f}" if isinstance(v, float) else f"{key:>16}: {v}")
    return 0


def _fid_engine(args):
    from .fid import FID
    return FID(device=args.device, batch_size=args.batch_size)


def _model_image_size(spec: str) -> int | None:
    from .models import resolve_model_dir
    from .models.base import read_config
    try:
        return int(read_config(resolve_model_dir(spec))["image_size"])
    except (CheckpointError, KeyError, ValueError, OSError):
        return None


def _fid(args) -> int:
    import json

    from .fid import fid_from_stats
    t0 = time.perf_counter()
    engine = _fid_engine(args)
    # a data set compared with a model is read at the model's resolution unless told otherwise
    size = args.image_size or _model_image_size(args.a) or _model_image_size(args.b)
    a = engine.stats(args.a, n=args.n, image_size=size, seed=args.seed)
    b = engine.stats(args.b, n=args.n, image_size=size, seed=args.seed + 1)
    value = fid_from_stats(a, b)
    result = {"fid": value, "n_a": a.n, "n_b": b.n, "weights": engine.source,
              "seconds": round(time.perf_counter() - t0, 2)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"FID: {value:.4f}   ({a.n} vs {b.n} images; weights: {engine.source})")
    return 0


def _fid_stats(args) -> int:
    engine = _fid_engine(args)
    st = engine.stats(args.source, n=args.n, image_size=args.image_size, seed=args.seed)
    st.save(args.out)
    print(f"wrote mu/sigma of {st.n} images to {args.out} (weights: {engine.source})")
    return 0


def _runs(args) -> int:
    from .rundir import list_runs, summarize
    runs = list_runs(Path(args.root))
    if not runs:
        print(f"no runs under {args.root}")
        return 0
    table = [summarize(r).display_row() for r in runs]
    rows = [tuple(table[0])] + [tuple(r.values()) for r in table]
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def _datasets(args) -> int:
    from .data import list_datasets
    rows = [("dataset", "available", "images", "source / what to do")]
    for i in list_datasets():
        rows.append((i.name, "yes" if i.available else "no", str(i.count) if i.count else "?",
                     i.source if i.available else i.reason))
    widths = [max(len(r[c]) for r in rows) for c in range(3)]
    for r in rows:
        print("  ".join(r[c].ljust(widths[c]) for c in range(3)) + "  " + r[3])
    print("\nfolder:PATH reads any folder or .zip of images. Emoji: Twemoji graphics, CC-BY 4.0 (Twitter).")
    return 0


def _export(args) -> int:
    from .export import export_model
    out = export_model(args.source, args.out, temperature=args.temperature, evaluate=not args.no_eval,
                       fid_samples=args.fid_samples, fid_ref_n=args.fid_ref_n, device=args.device)
    print(f"wrote {out}")
    return 0


def _pull(args) -> int:
    from .hub import pull
    got = pull(args.repo_id, args.revision)
    print(f"{args.repo_id}@{got.commit or args.revision or 'main'}: {', '.join(got.files)}")
    print(got.path)
    return 0


def _push(args) -> int:
    from .hub import push
    done = push(args.source, args.repo_id, private=args.private, evaluate=args.evaluate, temperature=args.temperature)
    print(f"pushed {', '.join(done.files)} to {done.url} (commit {done.commit})")
    return 0


def _checkpoints(args) -> int:
    """Train each named recipe from scratch into RUNS/NAME, then export it to OUT/NAME with its figures."""
    import shutil

    from .export import export_model
    from .recipes import RECIPES, recipe
    for r in [recipe(n) for n in args.names] if args.names else RECIPES:
        run = Path(args.runs) / r.name
        if not args.export_only:
            shutil.rmtree(run, ignore_errors=True)
            code = main(["train", *r.train, "--out", str(run)])
            if code:
                return code
        out = export_model(run, Path(args.out) / r.name, name=r.name, repo_id=r.repo_id, recipe=r.name,
                           temperature=r.temperature,
                           fid_samples=args.fid_samples, fid_ref_n=r.fid_ref_n, device=args.device)
        print(f"exported {out}")
    return 0


def _publish(args) -> int:
    from .hub import push
    from .recipes import SHIPPED, recipe
    for r in [recipe(n) for n in args.names] if args.names else SHIPPED:
        done = push(Path(args.checkpoints) / r.name, r.repo_id, temperature=r.temperature)
        print(f"{r.name} -> {done.url}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genlab", description="Train, sample and compare image generative models.")
    sub = p.add_subparsers(dest="command", required=True)
    _add_train(sub)
    s = sub.add_parser("sample", help="write a grid of samples from a model or run directory")
    s.add_argument("path", help="a run directory or a saved model directory")
    s.add_argument("--n", type=int, default=64)
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--nrow", type=int, default=None)
    s.add_argument("--device", default="auto")
    s.add_argument("--out", default="samples.png")
    e = sub.add_parser("eval", help="held-out bits/dim: the loss's, and a k-sample bound (IWAE for a VAE)")
    e.add_argument("path", help="a run directory or a saved model directory")
    e.add_argument("--dataset", default=None, help="default: the run's own data set")
    e.add_argument("--split", default="test", choices=["train", "test"])
    e.add_argument("--k", type=int, default=None, help="samples for the k-sample bound: IWAE for a VAE (default "
                   "100), dequantization samples for a flow (default 1); 0 skips it")
    e.add_argument("--n", type=int, default=None, help="evaluate on the first N images only")
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--device", default="auto")
    e.add_argument("--json", action="store_true")
    for name, hlp in (("fid", "FID between two of: dataset:split, image folder, model or run dir, stats .npz"),
                      ("fid-stats", "save FID statistics (mu, sigma; pytorch-fid's .npz format)")):
        f = sub.add_parser(name, help=hlp)
        if name == "fid":
            f.add_argument("a")
            f.add_argument("b")
            f.add_argument("--json", action="store_true")
        else:
            f.add_argument("source")
            f.add_argument("--out", required=True)
        f.add_argument("--n", type=int, default=None, help="images per side (default: all; 10000 samples for a model)")
        f.add_argument("--batch-size", type=int, default=100)
        f.add_argument("--image-size", type=int, default=None,
                       help="for dataset inputs (default: the other side's model resolution, else 64)")
        f.add_argument("--seed", type=int, default=0, help="for model inputs")
        f.add_argument("--device", default="auto")
    r = sub.add_parser("runs", help="list run directories with status, progress, ETA, bits/dim and FID")
    r.add_argument("root", nargs="?", default="runs")
    sub.add_parser("datasets", help="list datasets and whether they are available here")
    x = sub.add_parser("export", help="write a model folder: weights, metrics.json, samples.png, model card")
    x.add_argument("source", help="a run directory or a model folder")
    x.add_argument("out")
    x.add_argument("--temperature", type=float, default=1.0, help="of the sample grid")
    x.add_argument("--no-eval", action="store_true", help="take the figures from the run's log; compute nothing")
    x.add_argument("--fid-samples", type=int, default=1000, help="FID@K of samples at T=1 (0: no FID)")
    x.add_argument("--fid-ref-n", type=int, default=10000, help="training images in the FID reference")
    x.add_argument("--device", default="auto")
    pl = sub.add_parser("pull", help="download a genlab model from the Hugging Face Hub; prints its folder")
    pl.add_argument("repo_id", help="org/name")
    pl.add_argument("--revision", default=None, help="branch, tag or commit (default: main)")
    ps = sub.add_parser("push", help="upload a run or model folder to the Hub (token: HF_TOKEN or `hf auth login`)")
    ps.add_argument("source", help="a run directory or a model folder")
    ps.add_argument("repo_id", help="org/name")
    ps.add_argument("--private", action="store_true")
    ps.add_argument("--evaluate", action="store_true", help="recompute bits/dim and FID before pushing")
    ps.add_argument("--temperature", type=float, default=None, help="of the sample grid (default: the folder's, or 1)")
    from .recipes import RECIPES
    names = [r.name for r in RECIPES]
    ck = sub.add_parser("checkpoints", help="retrain the shipped checkpoints from scratch and export them")
    ck.add_argument("names", nargs="*", metavar="NAME", help=f"default: all of {names}")
    ck.add_argument("--runs", default="runs/checkpoints", help="where the training runs go")
    ck.add_argument("--out", default="checkpoints")
    ck.add_argument("--export-only", action="store_true", help="export the existing runs; train nothing")
    ck.add_argument("--fid-samples", type=int, default=1000)
    ck.add_argument("--device", default="auto")
    pb = sub.add_parser("publish", help="push the shipped checkpoints to their default repo ids (genlab.recipes)")
    pb.add_argument("names", nargs="*", metavar="NAME", help=f"default: all of {names}")
    pb.add_argument("--checkpoints", default="checkpoints")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"train": _train, "sample": _sample, "eval": _eval, "fid": _fid, "fid-stats": _fid_stats,
                "runs": _runs, "datasets": _datasets, "export": _export, "pull": _pull, "push": _push,
                "checkpoints": _checkpoints, "publish": _publish}[args.command](args)
    except (DatasetUnavailable, CheckpointError, RunLocked, FileNotFoundError, ValueError, FIDWeightsUnavailable,
            HubError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
