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
import os
import sys
import time
from pathlib import Path

from .config import bounded
from .data import DatasetUnavailable, require_dataset
from .hub import HubError
from .metrics.fid import FIDWeightsUnavailable
from .models import MODELS
from .models.base import CheckpointError
from .models.sizing import check_model
from .runs.config import SEED_MAX
from .runs.records import RunStatus
from .runs.rundir import RunDir, RunLocked


def _add_train(sub) -> None:
    from .recipes import RECIPES
    from .runs.config import add_train_arguments

    p = sub.add_parser(
        "train",
        help="train a model; writes a run directory",
        description="Every option below is a field of genlab.runs.config.TrainConfig "
        "(or of the model's config); --batch-size is the batch of one optimizer step.",
    )
    p.add_argument(
        "--preset",
        metavar="NAME",
        help="start from a shipped checkpoint's recipe (" + ", ".join(r.name for r in RECIPES) + "); options "
        "given with it override the recipe's",
    )
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue (or start) the run in RUN_DIR with the config in its run.json; options given "
        "with it change that config where a running model allows it",
    )
    p.add_argument("--out", help="run directory (default runs/MODEL-DATASET-TIME)")
    p.add_argument(
        "--queue",
        type=bounded(int, 1, 1024),
        default=None,
        metavar="N",
        help="wait until fewer than N queued runs in the run's parent folder are training",
    )
    p.add_argument(
        "--nice",
        type=bounded(int, 0, 19),
        default=0,
        metavar="N",
        help="lower this process's CPU priority by N (0 to 19) first, as the app does for the runs it launches "
        "(GENLAB_RUN_NICE), so that the people using the app stay served while it trains",
    )
    p.add_argument(
        "--nproc-per-node",
        type=bounded(int, 1, 1024),
        default=None,
        metavar="N",
        help="train with N processes on this machine (torchrun + DDP; one per GPU on CUDA): the same as "
        "torchrun --standalone --nproc_per_node=N -m genlab train ...",
    )
    add_train_arguments(p)


def _lower_priority(n: int) -> None:
    """Lower this process's CPU priority by ``n``, before anything heavy (torchrun's workers and data loaders
    inherit it). A run the app launches leads its own session, and where Linux groups the scheduling of each
    session (autogroup), a process's nice value only ranks it within its group: the group's own nice, in
    /proc/self/autogroup, is what ranks the run against the app."""
    os.nice(n)
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(n))
    except OSError:
        pass  # not Linux, or no autogroup: the process's nice value is the whole story


def _train(args) -> int:
    from .config import given
    from .runs.config import TrainConfig, config_from_args, model_options_given
    from .runs.distributed import world_from_env
    from .runs.jobs import new_run_name
    from .runs.trainer import Trainer
    from .settings import settings

    if args.nice:
        _lower_priority(args.nice)
    options, model_opts = given(args, TrainConfig), model_options_given(args)
    world = world_from_env()
    if world.distributed and not (args.resume or args.out):
        print(
            "error: under torchrun give --out RUN_DIR (or --resume RUN_DIR): every process must name the same "
            "run directory",
            file=sys.stderr,
        )
        return 2
    if args.resume:
        run = RunDir(args.resume)
        if not run.exists():
            print(f"error: {args.resume} is not a run directory (no run.json)", file=sys.stderr)
            return 2
        if args.model or model_opts or args.out or args.preset:
            print(
                "error: a resumed run keeps its model, model options and folder; give only --resume RUN_DIR "
                "and the settings to change",
                file=sys.stderr,
            )
            return 2
        before = run.config()
        cfg = before.resumed_with(options)
        if cfg != before and world.main:  # on disk before training: the run records what it trains
            run.update_info(config=cfg)
        # a run stopped or killed before its first checkpoint starts again from step 0
        trainer = Trainer(cfg, run.path, resume=run.has_checkpoint())
    else:
        if not args.model:
            print(
                "error: name a model to train (" + ", ".join(sorted(MODELS)) + ") or give --resume RUN_DIR",
                file=sys.stderr,
            )
            return 2
        cfg = config_from_args(args)
        require_dataset(cfg.dataset)  # an unknown or unavailable data set fails here, before a run directory exists
        cfg.check_size()  # and so does a model too large for this machine
        out = Path(args.out or settings().runs / new_run_name(cfg))
        if world.main and RunDir(out).exists() and not _never_started(RunDir(out)):
            print(
                f"error: {out} already holds a run; resume it with --resume {out}, or choose another --out",
                file=sys.stderr,
            )
            return 2
        trainer = Trainer(cfg, out)
        if world.main:
            trainer.run.create(cfg, preset=args.preset)
    slot = None
    if args.queue and not world.distributed:
        from .runs.jobs import wait_for_slot

        slot = wait_for_slot(trainer.run, args.queue)
        if slot is None:
            print(f"run {trainer.run.path}: stopped while queued")
            return 0
    if (args.nproc_per_node or 1) > 1 and not world.distributed:
        try:
            return _torchrun(trainer.run, args.nproc_per_node)
        finally:
            if slot is not None:
                slot.release()
    if world.main and not trainer.resume and trainer.run.metrics_path.exists():
        trainer.run.truncate_metrics(0)  # rows of an attempt that never reached a checkpoint
    try:
        status = trainer.fit()
    finally:
        if slot is not None:
            slot.release()
    error = trainer.run.info().error
    print(f"run {trainer.run.path}: {status}" + (f" ({error})" if error else ""))
    return 1 if status == RunStatus.FAILED else 0


def _torchrun(run: RunDir, nproc: int) -> int:
    """Train ``run`` (its config is in run.json) with ``nproc`` processes on this machine, and wait.
    A job whose rank 0 died could not say so itself: its run is marked failed here."""
    import subprocess

    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "genlab",
        "train",
        "--resume",
        str(run.path),
    ]
    code = subprocess.call(cmd)
    if code and run.status() in (RunStatus.RUNNING, RunStatus.QUEUED, RunStatus.INTERRUPTED):
        run.update_info(
            status=RunStatus.FAILED,
            error=f"the {nproc}-process job ended with exit code {code} before rank 0 could record "
            f"why (rank 0 died; torchrun's summary in train.log names the rank); the last "
            f"checkpoint is intact. Resume with: python -m genlab train --resume {run.path}",
        )
    print(f"run {run.path}: {run.status()}")
    return 1 if run.status() == RunStatus.FAILED else 0


def _never_started(run: RunDir) -> bool:
    """A run directory written by a launcher (status queued) whose training has not begun."""
    return run.info().status == RunStatus.QUEUED and not run.has_checkpoint() and not run.read_metrics()


def _sample(args) -> int:
    from . import load_model
    from .catalog import model_entry
    from .device import resolve_device
    from .explore import grid, sample

    model = load_model(args.path, map_location=resolve_device(args.device))
    check_model(
        type(model), model.config, batch=args.n, what=f"{args.path}", advice="draw fewer samples"
    )  # the grid's memory, before drawing it
    temperature = args.temperature
    if temperature is None:  # where the model card says its samples look best
        entry = model_entry(args.path) if Path(args.path).exists() else None
        temperature = entry.temperature if entry else model.default_temperature
    scale = args.scale or max(1, 64 // model.config.image_size)  # 0: each image at least 64 pixels wide
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid(sample(model, args.n, temperature, args.seed), nrow=args.nrow, scale=scale).save(out)
    print(f"wrote {args.n} samples (T={temperature:g}, seed={args.seed}, {scale}x) to {out}")
    return 0


def _eval(args) -> int:
    import json

    from . import load_model
    from .data import load_dataset
    from .device import resolve_device
    from .metrics.likelihood import average_metrics, nll_bound_bpd

    model = load_model(args.path, map_location=resolve_device(args.device))
    dataset = args.dataset
    if dataset is None:
        run = RunDir(args.path)
        if not run.exists():
            print("error: give --dataset for a model directory (a run directory knows its own)", file=sys.stderr)
            return 2
        dataset = run.config().dataset
    images = load_dataset(dataset, model.config.image_size).split(args.split)
    if images.shape[1] != model.config.channels:
        raise ValueError(
            f"{dataset} has {images.shape[1]} colour channel(s) and this model {model.config.channels}: "
            "evaluate it on a data set like the one it was trained on"
        )
    result = {"dataset": dataset, "split": args.split, "images": min(len(images), args.n or len(images))}
    result.update(average_metrics(model, images, args.batch_size, args.n))
    k = args.k if args.k is not None else model.default_eval_k
    if k and model.default_eval_k:
        result[f"nll_bpd_k{k}"] = nll_bound_bpd(model, images, k, max_images=args.n)
    if args.json:
        print(json.dumps(result))
    else:
        for key, v in result.items():
            print(f"{key:>16}: {v:.4f}" if isinstance(v, float) else f"{key:>16}: {v}")
    return 0


def _fid_engine(args):
    from .metrics.fid import FID

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

    from .metrics.fid import fid_from_stats

    t0 = time.perf_counter()
    engine = _fid_engine(args)
    # a data set compared with a model is read at the model's resolution unless told otherwise
    size = args.image_size or _model_image_size(args.a) or _model_image_size(args.b)
    a = engine.stats(args.a, n=args.n, image_size=size, seed=args.seed)
    b = engine.stats(args.b, n=args.n, image_size=size, seed=args.seed + 1)
    value = fid_from_stats(a, b)
    result = {
        "fid": value,
        "n_a": a.n,
        "n_b": b.n,
        "weights": engine.source,
        "seconds": round(time.perf_counter() - t0, 2),
    }
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
    from .display import run_row, text_table
    from .runs.rundir import list_runs
    from .runs.summary import summarize
    from .settings import settings

    root = Path(args.root) if args.root else settings().runs
    runs = list_runs(root)
    if not runs:
        print(f"no runs under {root}")
        return 0
    print(text_table([run_row(summarize(r)) for r in runs]))
    return 0


def _datasets(args) -> int:
    from .data import list_datasets
    from .display import text_table

    def where(i) -> str:
        if not i.available:
            return "no"
        return "needs internet" if i.needs_network else "yes"

    rows = [
        {
            "dataset": i.name,
            "here": where(i),
            "images": str(i.count) if i.count else "?",
            "source / what to do": i.source if i.available else i.reason,
        }
        for i in list_datasets()
    ]
    print(text_table(rows))
    print("\nfolder:PATH reads any folder or .zip of images. Emoji: Twemoji graphics, CC-BY 4.0 (Twitter).")
    return 0


def _export(args) -> int:
    from .export import export_model

    out = export_model(
        args.source,
        args.out,
        temperature=args.temperature,
        evaluate=not args.no_eval,
        fid_samples=args.fid_samples,
        fid_ref_n=args.fid_ref_n,
        device=args.device,
    )
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
        out = export_model(
            run,
            Path(args.out) / r.name,
            name=r.name,
            repo_id=r.repo_id,
            recipe=r.name,
            temperature=r.temperature,
            fid_samples=args.fid_samples,
            fid_ref_n=r.fid_ref_n,
            device=args.device,
        )
        print(f"exported {out}")
    return 0


def _publish(args) -> int:
    from .hub import push
    from .recipes import SHIPPED, recipe

    for r in [recipe(n) for n in args.names] if args.names else SHIPPED:
        done = push(Path(args.checkpoints) / r.name, r.repo_id, temperature=r.temperature)
        print(f"{r.name} -> {done.url}")
    return 0


# the bounds of the flags that are not fields of TrainConfig, declared once
TEMPERATURE = bounded(float, 0.0, 5.0)  # the latent noise's standard deviation; the pages' sliders stop at 2
SEED = bounded(int, 0, SEED_MAX)
BATCH = bounded(int, 1, 4096)
FID_SAMPLES = bounded(int, 0, 100_000)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genlab", description="Train, sample and compare image generative models.")
    sub = p.add_subparsers(dest="command", required=True)
    _add_train(sub)
    s = sub.add_parser("sample", help="write a grid of samples from a model or run directory")
    s.add_argument("path", help="a run directory, a saved model directory or a Hub repo id (org/name)")
    s.add_argument("--n", type=bounded(int, 1, 1024), default=64, help="number of samples (1 to 1024; default 64)")
    s.add_argument(
        "--temperature",
        type=TEMPERATURE,
        default=None,
        help="standard deviation of the latent noise (default: the model card's temperature, else the family's)",
    )
    s.add_argument("--seed", type=SEED, default=0, help="the same seed gives the same grid as the app's Sample page")
    s.add_argument("--nrow", type=bounded(int, 1, 1024), default=None, help="images per row (default: a square grid)")
    s.add_argument(
        "--scale",
        type=bounded(int, 0, 16),
        default=0,
        help="enlarge each pixel this many times, nearest-neighbour (default 0: each image at least 64 pixels wide)",
    )
    s.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    s.add_argument("--out", default="samples.png", help="the PNG to write (default samples.png)")
    e = sub.add_parser("eval", help="held-out bits/dim: the loss's, and a k-sample bound (IWAE for a VAE)")
    e.add_argument("path", help="a run directory or a saved model directory")
    e.add_argument("--dataset", default=None, help="default: the run's own data set")
    e.add_argument("--split", default="test", choices=["train", "test"])
    e.add_argument(
        "--k",
        type=bounded(int, 0, 10_000),
        default=None,
        help="samples for the k-sample bound: IWAE for a VAE (default "
        "100), dequantization samples for a flow (default 1); 0 skips it",
    )
    e.add_argument("--n", type=bounded(int, 1, 10**7), default=None, help="evaluate on the first N images only")
    e.add_argument("--batch-size", type=BATCH, default=64, help="images per forward pass (default 64)")
    e.add_argument("--device", default="auto")
    e.add_argument("--json", action="store_true")
    for name, hlp in (
        ("fid", "FID between two of: dataset:split, image folder, model or run dir, stats .npz"),
        ("fid-stats", "save FID statistics (mu, sigma; pytorch-fid's .npz format)"),
    ):
        f = sub.add_parser(name, help=hlp)
        if name == "fid":
            f.add_argument("a")
            f.add_argument("b")
            f.add_argument("--json", action="store_true")
        else:
            f.add_argument("source")
            f.add_argument("--out", required=True)
        f.add_argument(
            "--n",
            type=bounded(int, 2, 10**7),
            default=None,
            help="images per side (default: all; 10000 samples for a model)",
        )
        f.add_argument("--batch-size", type=BATCH, default=100, help="images per Inception pass (default 100)")
        f.add_argument(
            "--image-size",
            type=bounded(int, 8, 512),
            default=None,
            help="for dataset inputs (default: the other side's model resolution, else 64)",
        )
        f.add_argument("--seed", type=SEED, default=0, help="for model inputs")
        f.add_argument("--device", default="auto")
    r = sub.add_parser("runs", help="list run directories with status, progress, ETA, bits/dim and FID")
    r.add_argument("root", nargs="?", default=None, help="the runs folder (default: GENLAB_RUNS, else ./runs)")
    sub.add_parser("datasets", help="list datasets and whether they are available here")
    x = sub.add_parser("export", help="write a model folder: weights, metrics.json, samples.png, model card")
    x.add_argument("source", help="a run directory or a model folder")
    x.add_argument("out")
    x.add_argument("--temperature", type=TEMPERATURE, default=1.0, help="of the sample grid")
    x.add_argument("--no-eval", action="store_true", help="take the figures from the run's log; compute nothing")
    x.add_argument("--fid-samples", type=FID_SAMPLES, default=1000, help="FID@K of samples at T=1 (0: no FID)")
    x.add_argument(
        "--fid-ref-n", type=bounded(int, 2, 10**7), default=10000, help="training images in the FID reference"
    )
    x.add_argument("--device", default="auto")
    pl = sub.add_parser("pull", help="download a genlab model from the Hugging Face Hub; prints its folder")
    pl.add_argument("repo_id", help="org/name")
    pl.add_argument("--revision", default=None, help="branch, tag or commit (default: main)")
    ps = sub.add_parser("push", help="upload a run or model folder to the Hub (token: HF_TOKEN or `hf auth login`)")
    ps.add_argument("source", help="a run directory or a model folder")
    ps.add_argument("repo_id", help="org/name")
    ps.add_argument("--private", action="store_true")
    ps.add_argument("--evaluate", action="store_true", help="recompute bits/dim and FID before pushing")
    ps.add_argument(
        "--temperature", type=TEMPERATURE, default=None, help="of the sample grid (default: the folder's, or 1)"
    )
    from .recipes import RECIPES

    names = [r.name for r in RECIPES]
    ck = sub.add_parser("checkpoints", help="retrain the shipped checkpoints from scratch and export them")
    ck.add_argument("names", nargs="*", metavar="NAME", help=f"default: all of {names}")
    ck.add_argument("--runs", default="runs/checkpoints", help="where the training runs go")
    ck.add_argument("--out", default="checkpoints")
    ck.add_argument("--export-only", action="store_true", help="export the existing runs; train nothing")
    ck.add_argument("--fid-samples", type=FID_SAMPLES, default=1000, help="FID@K of each exported model (0: none)")
    ck.add_argument("--device", default="auto")
    pb = sub.add_parser("publish", help="push the shipped checkpoints to their default repo ids (genlab.recipes)")
    pb.add_argument("names", nargs="*", metavar="NAME", help=f"default: all of {names}")
    pb.add_argument("--checkpoints", default="checkpoints")
    return p


def with_preset(argv: list[str]) -> list[str]:
    """``train --preset NAME [options]`` -> ``train <the recipe's arguments> --preset NAME [options]``:
    argparse keeps the last value of a flag, so options given after the preset override it."""
    from .recipes import recipe

    if not argv or argv[0] != "train":
        return argv
    for i, a in enumerate(argv):
        if a == "--preset" and i + 1 < len(argv):
            name, rest = argv[i + 1], argv[1:i] + argv[i + 2 :]
        elif a.startswith("--preset="):
            name, rest = a.split("=", 1)[1], argv[1:i] + argv[i + 1 :]
        else:
            continue
        return ["train", *recipe(name).preset_args, "--preset", name, *rest]
    return argv


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = with_preset(argv)
    except ValueError as e:  # an unknown preset
        print(f"error: {e}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    try:
        return {
            "train": _train,
            "sample": _sample,
            "eval": _eval,
            "fid": _fid,
            "fid-stats": _fid_stats,
            "runs": _runs,
            "datasets": _datasets,
            "export": _export,
            "pull": _pull,
            "push": _push,
            "checkpoints": _checkpoints,
            "publish": _publish,
        }[args.command](args)
    except (
        DatasetUnavailable,
        CheckpointError,
        RunLocked,
        FileNotFoundError,
        ValueError,
        FIDWeightsUnavailable,
        HubError,
    ) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
