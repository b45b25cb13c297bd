"""FID wall time and value: ``python -m genlab fid`` against ``python -m pytorch_fid``, in one invocation.

Both read the same two folders of 2,000 PNGs (emoji 64×64: A = the first 2,000 training
images, B = the other 1,608 training images and 392 test images) with the same Inception
weights (whatever ``genlab.metrics.fid.resolve_weights`` finds; offline that is the converted
TF-Inception, written into pytorch-fid's cache so that pytorch-fid uses it too).

Then the cost of one FID@K evaluation during training: K generated images against cached
reference statistics, which is what ``--fid-every`` pays.

    python bench/bench_fid.py [--n 2000] [--k 1000] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genlab.data import load_dataset  # noqa: E402
from genlab.metrics.fid import FID, fid_from_stats, resolve_weights  # noqa: E402

INCEPTION_GFLOPS = 5.7  # per 299×299 image


def write_folder(path: Path, images) -> None:
    path.mkdir(parents=True)
    for i, im in enumerate(images):
        Image.fromarray(im.permute(1, 2, 0).numpy()).save(path / f"{i:05d}.png")


def timed(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return wall, out.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--device", default="cpu")
    p.add_argument("--model", default="runs/vae-emoji", help="model for the FID@K cost (a fresh VAE if absent)")
    args = p.parse_args()
    weights = resolve_weights()
    data = load_dataset("emoji", 64)
    pool = torch.cat([data.train, data.test])
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a", Path(tmp) / "b"
        write_folder(a, pool[: args.n])
        write_folder(b, pool[args.n : 2 * args.n])
        t_theirs, out = timed([sys.executable, "-m", "pytorch_fid", str(a), str(b), "--device", args.device])
        theirs = float(re.search(r"FID:\s*([0-9.eE+-]+)", out).group(1))
        t_ours, out = timed([sys.executable, "-m", "genlab", "fid", str(a), str(b), "--device", args.device, "--json"])
        ours = json.loads(out)["fid"]

    # FID@K during training: reference statistics cached, only the generated side is computed
    fid = FID(device=args.device)
    ref = fid.stats_of_dataset("emoji", "train", 64)
    from genlab import load_model
    from genlab.models import VAE

    model = load_model(args.model) if Path(args.model).exists() else VAE()
    t = time.perf_counter()
    value = fid_from_stats(fid.stats_of_model(model, args.k), ref)
    t_k = time.perf_counter() - t

    dev = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else f"{platform.processor() or 'cpu'}, {torch.get_num_threads()} threads"
    )
    n_img = 2 * args.n
    print(f"\n{args.n} + {args.n} emoji PNGs (64×64), device {args.device} ({dev}), torch {torch.__version__}")
    print(f"weights: {weights.source}")
    print("| command | wall (s) | images/s | GFLOP/s (5.7 GFLOP/image) | FID |")
    print("|---|---|---|---|---|")
    for name, wall, val in (("python -m pytorch_fid", t_theirs, theirs), ("python -m genlab fid", t_ours, ours)):
        print(f"| {name} | {wall:.1f} | {n_img / wall:.1f} | {n_img / wall * INCEPTION_GFLOPS:.0f} | {val:.6f} |")
    print(f"speed-up {t_theirs / t_ours:.2f}x; relative difference {abs(ours - theirs) / theirs:.2e}")
    print(
        f"FID@{args.k} of {args.model} against cached emoji:train statistics ({ref.n} images): "
        f"{value:.2f} in {t_k:.1f} s ({args.k / t_k:.1f} generated images/s, sampling included)"
    )


if __name__ == "__main__":
    os.environ.setdefault("GENLAB_OFFLINE", "1")
    main()
