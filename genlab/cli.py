"""``python -m genlab`` / ``genlab``: train, sample, list datasets.

genlab train vae --dataset emoji --image-size 64 --epochs 10 --out runs/vae-emoji
genlab train --resume runs/vae-emoji [--epochs 20]
genlab sample runs/vae-emoji --n 64 --temperature 0.8 --seed 0 --out grid.png
genlab eval runs/vae-emoji --k 100
genlab fid emoji:train emoji:test [--n N]   # also image folders, model/run dirs, .npz statistics
genlab fid-stats emoji:train --out ref.npz
genlab ood checkpoints/realnvp-fashion-32 --out mnist   # bits/dim on other data; AUROC of three scores
genlab sweep checkpoints/realnvp-mnist-32 --temperatures 0.5:1.0:0.1   # FID, KID, precision/recall against T
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
import json
import sys
from pathlib import Path

from . import cli_lab, cli_logs
from .catalog import dataset_of, default_temperature
from .config import bounded, given
from .data import list_datasets
from .device import resolve_device
from .display import dataset_row, run_row, text_table
from .errors import ConfigError, GenlabError
from .explore import sample_grid
from .export import export_model
from .hub import load_model, pull, push
from .metrics.fid import FID
from .metrics.likelihood import BOUND_IMAGES, evaluate, images_for
from .models import MODELS
from .models.base import MAX_TEMPERATURE, Temperature
from .recipes import RECIPES, build_checkpoint, chosen, recipe
from .runs.config import SEED_MAX, TrainConfig, add_train_arguments, config_from_args, model_options_given
from .runs.distributed import world_from_env
from .runs.records import RunStatus
from .runs.rundir import RunDir
from .runs.start import create_run, lower_priority, resume_config, run_path, train
from .runs.summary import list_runs, summarize
from .settings import settings


def _add_train(sub) -> None:
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


def _train(args) -> int:
    if args.nice:
        lower_priority(args.nice)
    if args.resume:
        if args.model or model_options_given(args) or args.out or args.preset:
            raise ConfigError(
                "a resumed run keeps its model, model options and folder; give only --resume RUN_DIR and the "
                "settings to change"
            )
        run = RunDir(args.resume)
        cfg = resume_config(run, given(args, TrainConfig))
    else:
        if not args.model:
            raise ConfigError(f"name a model to train ({', '.join(sorted(MODELS))}) or give --resume RUN_DIR")
        if world_from_env().distributed and not args.out:
            raise ConfigError("under torchrun give --out RUN_DIR (or --resume): every process must name the same run")
        cfg = config_from_args(args)
        run = RunDir(args.out) if args.out else run_path(settings().runs, cfg, preset=args.preset)
        if world_from_env().main:
            create_run(cfg, run, preset=args.preset)
    status = train(run, cfg, args.queue, args.nproc_per_node)
    error = run.info().error if status == RunStatus.FAILED else None
    print(f"run {run.path}: {status}" + (f" ({error})" if error else ""))
    return 1 if status == RunStatus.FAILED else 0


def _sample(args) -> int:
    model = load_model(args.path, map_location=resolve_device(args.device))
    temperature = args.temperature if args.temperature is not None else default_temperature(args.path, model)
    scale = args.scale or max(1, 64 // model.config.image_size)  # 0: each image at least 64 pixels wide
    sample_grid(model, args.n, temperature, args.seed, nrow=args.nrow, scale=scale, out=args.out)
    print(f"wrote {args.n} samples (T={show_temperature(temperature)}, seed={args.seed}, {scale}x) to {args.out}")
    return 0


def _eval(args) -> int:
    model = load_model(args.path, map_location=resolve_device(args.device))
    dataset = args.dataset or dataset_of(args.path)
    images = images_for(model, dataset, args.split)
    result = {
        "dataset": dataset,
        "split": args.split,
        **evaluate(model, images, args.k, args.n, args.n, args.batch_size),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, v in result.items():
            print(f"{key:>20}: {v:.4f}" if isinstance(v, float) else f"{key:>20}: {v}")
    return 0


def _fid(args) -> int:
    engine = FID(device=args.device, batch_size=args.batch_size)
    result = engine.between(args.a, args.b, n=args.n, image_size=args.image_size, seed=args.seed)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"FID: {result['fid']:.4f}   ({result['n_a']} vs {result['n_b']} images; weights: {result['weights']})")
    return 0


def _fid_stats(args) -> int:
    engine = FID(device=args.device, batch_size=args.batch_size)
    st = engine.stats(args.source, n=args.n, image_size=args.image_size, seed=args.seed)
    st.save(args.out)
    print(f"wrote mu/sigma of {st.n} images to {args.out} (weights: {engine.source})")
    return 0


def _runs(args) -> int:
    root = Path(args.root) if args.root else settings().runs
    runs = list_runs(root)
    print(text_table([run_row(summarize(r)) for r in runs]) if runs else f"no runs under {root}")
    return 0


def _datasets(args) -> int:
    print(text_table([dataset_row(i) for i in list_datasets()]))
    print("\nfolder:PATH reads any folder or .zip of images. Emoji: Twemoji graphics, CC-BY 4.0 (Twitter).")
    return 0


def _export(args) -> int:
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
    got = pull(args.repo_id, args.revision)
    print(f"{args.repo_id}@{got.commit or args.revision or 'main'}: {', '.join(got.files)}")
    print(got.path)
    return 0


def _push(args) -> int:
    done = push(args.source, args.repo_id, private=args.private, evaluate=args.evaluate, temperature=args.temperature)
    print(f"pushed {', '.join(done.files)} to {done.url} (commit {done.commit})")
    return 0


def _checkpoints(args) -> int:
    for r in chosen(args.names):
        out = build_checkpoint(r, args.runs, args.out, args.fid_samples, args.device, train_first=not args.export_only)
        print(f"exported {out}")
    return 0


def _publish(args) -> int:
    for r in chosen(args.names):
        done = push(Path(args.checkpoints) / r.name, r.repo_id, temperature=r.temperature)
        print(f"{r.name} -> {done.url}")
    return 0


# the bounds of the flags that are not fields of TrainConfig, declared once
TEMPERATURE = bounded(float, 0.0, MAX_TEMPERATURE)  # the latent noise's standard deviation; the sliders stop lower


def temperatures(text: str) -> Temperature:
    """``--temperature 0.8`` or, one per latent level, finest first, ``--temperature 1,1,0.5,0.5``."""
    values = [TEMPERATURE(part) for part in text.split(",")]
    return values[0] if len(values) == 1 else tuple(values)


def show_temperature(t: Temperature) -> str:
    return ",".join(f"{v:g}" for v in t) if isinstance(t, (list, tuple)) else f"{t:g}"


SEED = bounded(int, 0, SEED_MAX)
BATCH = bounded(int, 1, 4096)
FID_SAMPLES = bounded(int, 0, 100_000)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genlab", description="Train, sample and compare image generative models.")
    sub = p.add_subparsers(dest="command", required=True)
    lab, logs = cli_lab.add_lab_commands, cli_logs.add_log_commands
    for add in (_add_train, _add_sample, _add_eval, _add_fid, lab, _add_runs, _add_model_folders, _add_recipes, logs):
        add(sub)
    return p


def _add_sample(sub) -> None:
    s = sub.add_parser("sample", help="write a grid of samples from a model or run directory")
    s.add_argument("path", help="a run directory, a saved model directory or a Hub repo id (org/name)")
    s.add_argument("--n", type=bounded(int, 1, 1024), default=64, help="number of samples (1 to 1024; default 64)")
    s.add_argument(
        "--temperature",
        type=temperatures,
        default=None,
        help="standard deviation of the latent noise (default: the model card's temperature, else the family's); "
        "a comma-separated list gives one per latent level of a multi-scale flow, finest first (e.g. 1,1,0.5,0.5 "
        "cools the two coarsest)",
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


def _add_eval(sub) -> None:
    e = sub.add_parser("eval", help="held-out bits/dim: the loss's, and a k-sample bound (IWAE for a VAE)")
    e.add_argument("path", help="a run directory or a saved model directory")
    e.add_argument("--dataset", default=None, help="default: the run's own data set")
    e.add_argument("--split", default="test", choices=["train", "test"])
    e.add_argument(
        "--k",
        type=bounded(int, 0, 10_000),
        default=None,
        help="samples of the k-sample bound, tighter than the loss's when k > 1: IWAE for a VAE (default 100), "
        "dequantization samples for a flow (default 1, the loss's own); 0 or 1 skips it",
    )
    e.add_argument("--n", type=bounded(int, 1, 10**7), default=None, help="evaluate on the first N images only")
    e.add_argument(
        "--bound-n",
        type=bounded(int, 1, 10**7),
        default=BOUND_IMAGES,
        help=f"the k-sample bound on the first N of them (default {BOUND_IMAGES}, as on the model card: "
        "IWAE k=100 costs 100 decoder passes per image)",
    )
    e.add_argument("--batch-size", type=BATCH, default=64, help="images per forward pass (default 64)")
    e.add_argument("--device", default="auto")
    e.add_argument("--json", action="store_true")


def _add_fid(sub) -> None:
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


def _add_runs(sub) -> None:
    r = sub.add_parser("runs", help="list run directories with status, progress, ETA, bits/dim and FID")
    r.add_argument("root", nargs="?", default=None, help="the runs folder (default: GENLAB_RUNS, else ./runs)")
    sub.add_parser("datasets", help="list datasets and whether they are available here")


def _add_model_folders(sub) -> None:
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


def _add_recipes(sub) -> None:
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


def with_preset(argv: list[str]) -> list[str]:
    """``train --preset NAME [options]`` -> ``train <the recipe's arguments> --preset NAME [options]``:
    argparse keeps the last value of a flag, so options given after the preset override it."""
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


COMMANDS = {
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
    **cli_lab.COMMANDS,
    **cli_logs.COMMANDS,
}


def main(argv: list[str] | None = None) -> int:
    """Parse, run the command, and say in one line what the user must change (a ``GenlabError``) or what the
    system refused (an ``OSError``); any other exception is a bug in genlab and shows as a traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(with_preset(argv))
        return COMMANDS[args.command](args)
    except GenlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the disk or the system refused (a folder not writable, a file where a folder goes)
        print(f"error: {e}", file=sys.stderr)
        return 2
