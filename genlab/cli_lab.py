"""The likelihood lab's commands: ``genlab ood`` and ``genlab sweep`` (parsing and printing; the work is in
``genlab.metrics.ood`` and ``genlab.metrics.sweep``).

genlab ood checkpoints/realnvp-fashion-32 --in fashion-mnist --out mnist --out emoji
genlab sweep checkpoints/realnvp-mnist-32 checkpoints/vae-mnist-32 --temperatures 0.5:1.0:0.1
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from . import names
from .catalog import dataset_of
from .config import bounded
from .device import resolve_device
from .display import text_table
from .errors import ConfigError
from .hub import load_model
from .metrics.ood import OOD_IMAGES, ood_report, ship_scores
from .metrics.sweep import MAX_SWEEP_IMAGES, SWEEP_REF, SWEEP_SAMPLES, parse_temperatures, sweep
from .models import resolve_model_dir
from .paths import cache_dir

DEVICE_HELP = "auto (CUDA when present), cpu or cuda"


def add_lab_commands(sub) -> None:
    o = sub.add_parser(
        "ood",
        help="per-image bits/dim on the training data's test set and on others: raw, complexity-corrected and "
        "typicality scores, and their AUROC",
    )
    o.add_argument("model", help="a model folder, run directory or pulled Hub repo id")
    o.add_argument("--in", dest="in_dataset", default=None, help="its own data (default: what it was trained on)")
    o.add_argument(
        "--out", dest="out_datasets", action="append", required=True, help="a data set to compare with; repeat"
    )
    o.add_argument(
        "--n", type=bounded(int, 10, 100_000), default=OOD_IMAGES, help=f"images per set (default {OOD_IMAGES})"
    )
    o.add_argument(
        "--k",
        type=bounded(int, 1, 10_000),
        default=None,
        help="samples of each image's bound (default: the family's, IWAE k=100 for a VAE, exact for a flow)",
    )
    o.add_argument("--json", default=None, help="where to save the report (default: under GENLAB_HOME/ood/)")
    o.add_argument(
        "--ship",
        action="store_true",
        help="also save the per-image scores into the model folder's ood/, so the Likelihood page shows them at "
        "once wherever the folder is copied (how the shipped checkpoints carry theirs; a Hub push leaves them out)",
    )
    o.add_argument("--device", default="auto", help=DEVICE_HELP)
    s = sub.add_parser("sweep", help="FID, KID and precision/recall of samples at each temperature")
    s.add_argument("models", nargs="+", help="model folders, run directories or pulled Hub repo ids")
    s.add_argument(
        "--temperatures", type=str, default="0.5:1.0:0.1", help="start:stop:step or a list (default 0.5:1.0:0.1)"
    )
    size = bounded(int, 10, MAX_SWEEP_IMAGES)  # KID's and precision/recall's matrices grow with the square
    s.add_argument("--n", type=size, default=SWEEP_SAMPLES, help="samples per temperature (FID@N)")
    s.add_argument("--ref-n", type=size, default=SWEEP_REF, help="training images in the reference")
    s.add_argument("--seed", type=bounded(int, 0, 2**31 - 1), default=0)
    s.add_argument("--json", action="store_true", help="print the points as JSON lines")
    s.add_argument(
        "--ship",
        action="store_true",
        help="also save the points into each model folder's sweep/, so Compare plots them at once wherever the "
        "folder is copied (how the shipped checkpoints carry theirs; a Hub push leaves them out)",
    )
    s.add_argument("--device", default="auto", help=DEVICE_HELP)


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v if v is not None else "—")


def ood(args) -> int:
    model = load_model(args.model, map_location=resolve_device(args.device))
    in_dataset = args.in_dataset or dataset_of(args.model)
    folder = resolve_model_dir(args.model) if Path(args.model).exists() else None
    report = ood_report(
        model,
        in_dataset,
        args.out_datasets,
        n=args.n,
        k=args.k,
        label=str(args.model),
        on_set=lambda what: print(f"scoring {what}…", file=sys.stderr, flush=True),
        shipped=folder and folder / names.OOD,
    )
    if args.ship:
        if folder is None:
            raise ConfigError(f"--ship writes into a local model folder; {args.model} is not one")
        ship_scores(model, report, folder)
    path = report.save(args.json or cache_dir() / "ood" / report.digest / f"report-{Path(str(args.model)).name}.json")
    print(f"{args.model}: bits/dim are {report.bpd_kind}; Ĥ (training images) = {report.train_bpd:.3f}")
    print(text_table([{k: _fmt(v) for k, v in row.items()} for row in report.summary()]))
    print("AUROC: 1 finds every outlier, 0.5 is chance, below 0.5 ranks outliers as more in-distribution")
    print(f"wrote {path}")
    return 0


def run_sweep(args) -> int:
    temperatures = parse_temperatures(args.temperatures)
    for spec in args.models:
        model = load_model(spec, map_location=resolve_device(args.device))
        dataset = dataset_of(spec)
        folder = resolve_model_dir(spec) / names.SWEEP if Path(spec).exists() else None
        if args.ship and folder is None:
            raise ConfigError(f"--ship writes into a local model folder; {spec} is not one")
        if not args.json:
            print(f"{spec}: {len(temperatures)} temperatures, {args.n} samples each, against {dataset}", flush=True)

        def show(p, cached, spec=spec):
            if args.json:
                print(json.dumps({"model": str(spec), "cached": cached, **asdict(p)}), flush=True)
            else:
                print(
                    f"  T={p.temperature:<5g} FID@{p.samples} {p.fid:8.2f}  KID {p.kid:.4f} ± {p.kid_std:.4f}  "
                    f"precision {p.precision:.3f}  recall {p.recall:.3f}{'  (cached)' if cached else ''}",
                    flush=True,
                )

        sweep(model, dataset, temperatures, args.n, args.ref_n, args.seed, args.device, show, folder, args.ship)
    return 0


COMMANDS = {"ood": ood, "sweep": run_sweep}
