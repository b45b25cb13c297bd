"""bf16 autocast against float32 on this machine's CPU (or GPU): training step rate, and what it does to
a trained model's test bits/dim.

The step rate is forward + backward + Adam on one resident batch of real images, for the shipped
recipes' model sizes. The bits/dim drift evaluates one model directory both ways on the same test
images with the same dequantization / posterior noise.

    python bench/bench_precision.py --threads 2
    python bench/bench_precision.py --threads 2 --eval checkpoints/vae-mnist-32 runs/ship/realnvp-mnist-32
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genlab import load_model  # noqa: E402
from genlab.catalog import model_entry  # noqa: E402
from genlab.data import load_dataset  # noqa: E402
from genlab.device import autocast, has_fast_bf16, resolve_device  # noqa: E402
from genlab.metrics.likelihood import nll_bound_bpd  # noqa: E402
from genlab.models import model_class  # noqa: E402

# (name, family, model config, dataset, image size, batch size): the shipped recipes' shapes
CASES = [
    ("realnvp-mnist-32", "realnvp", {}, "mnist", 32, 64),
    ("vae-mnist-32", "vae", {"latent_dim": 16}, "mnist", 32, 128),
    ("vae-emoji-64", "vae", {"latent_dim": 16}, "emoji-faces", 64, 32),
]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_rate(model, x, amp: bool, device, n_warm=3, n=8) -> float:
    """Images/s of forward + backward + Adam on one batch, median of n timed steps."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    times = []
    for i in range(n_warm + n):
        sync(device)
        t = time.perf_counter()
        with autocast(device, amp):
            loss, _ = model.loss(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync(device)
        if i >= n_warm:
            times.append(time.perf_counter() - t)
    return len(x) / statistics.median(times)


def bench_steps(device) -> None:
    print("| model | batch | float32 images/s | bf16 autocast images/s | speed-up |")
    print("|---|---|---|---|---|")
    for name, family, opts, dataset, size, bs in CASES:
        data = load_dataset(dataset, size)
        cls = model_class(family)
        x = (data.train[:bs].float() / 255).to(device)
        rates = {}
        for amp in (False, True):
            torch.manual_seed(0)
            model = cls(cls.config_class(**opts, image_size=size, channels=data.channels)).to(device)
            fmt = torch.channels_last if model.prefers_channels_last else torch.contiguous_format
            model.to(memory_format=fmt)
            rates[amp] = step_rate(model, x.contiguous(memory_format=fmt), amp, device)
        print(f"| {name} | {bs} | {rates[False]:.1f} | {rates[True]:.1f} | {rates[True] / rates[False]:.2f}× |")


def bench_eval(paths: list[str], device, n: int) -> None:
    print("\n| model | test images | float32 bits/dim | bf16 autocast bits/dim | drift | float32 s | bf16 s |")
    print("|---|---|---|---|---|---|---|")
    for path in paths:
        model = load_model(path, map_location=device)
        entry = model_entry(path)
        if entry is None or entry.dataset is None:
            raise SystemExit(f"{path}: not a model directory that says which data set it was trained on")
        ds = entry.dataset
        x = load_dataset(ds, model.config.image_size).test[:n]  # uint8
        out = {}
        for amp in (False, True):
            torch.manual_seed(0)  # the VAE's posterior noise; the flow's dequantization comes from the seed
            t = time.perf_counter()
            with autocast(device, amp):
                bpd = nll_bound_bpd(model, x, k=1, batch_size=128, seed=0)
            out[amp] = (bpd, time.perf_counter() - t)
        (f32, t32), (b16, t16) = out[False], out[True]
        print(f"| {path} | {len(x)} | {f32:.4f} | {b16:.4f} | {b16 - f32:+.4f} | {t32:.1f} | {t16:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--eval", nargs="*", default=[], help="model or run directories to evaluate both ways")
    ap.add_argument("--eval-n", type=int, default=1280, help="test images per evaluation")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"fast bf16 here: {has_fast_bf16(device)}\n"
    )
    bench_steps(device)
    if args.eval:
        bench_eval(args.eval, device, args.eval_n)


if __name__ == "__main__":
    main()
