"""The GPU check (``make gpu-check``): CUDA tests, training images/s per family at default and
paper-sized widths, with and without ``--compile``, 1 process vs every visible GPU (torchrun + DDP),
and FID@1000 time, printed as one markdown table for docs/benchmarks.md.

Every training figure is genlab's own trainer end to end (``python -m genlab train``): the speed is
the median ``images_per_s`` of its logged rows after the first (warm-up, compilation) one. On a
machine without a GPU, ``--device cpu`` gives the same table for the CPU (1 and 2 processes, gloo).

    python bench/gpu_check.py                       # on a GPU machine; about 4 minutes on one H100
    python bench/gpu_check.py --device cpu --quick  # the same on the CPU, smaller
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genlab.runs.rundir import RunDir  # noqa: E402

# (label, genlab train arguments); paper width for RealNVP: 8 residual blocks x 64 features
SETTINGS = {
    "VAE 64x64, default": ["vae", "--image-size", "64", "--batch-size", "128"],
    "VAE 64x64, width 64": ["vae", "--image-size", "64", "--batch-size", "128", "--width", "64", "--max-width", "512"],
    "RealNVP 32x32, default": ["realnvp", "--image-size", "32", "--batch-size", "64"],
    "RealNVP 32x32, 8 blocks x 64": [
        "realnvp",
        "--image-size",
        "32",
        "--batch-size",
        "64",
        "--num-blocks",
        "8",
        "--features",
        "64",
    ],
}


def train_speed(args: list[str], steps: int, device: str, processes: int, compile_: bool) -> tuple[float, str]:
    """Median images/s of genlab's trainer after its first logged row; and the run's status."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        common = [
            "--dataset",
            "emoji",
            "--max-steps",
            str(steps),
            "--log-every",
            str(max(1, steps // 6)),
            "--eval-every",
            str(10**9),
            "--eval-batches",
            "1",
            "--sample-n",
            "4",
            "--device",
            device,
            "--out",
            str(out),
        ] + (["--compile"] if compile_ else [])
        if processes > 1:
            cmd = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                f"--nproc_per_node={processes}",
                "-m",
                "genlab",
                "train",
                *args,
                *common,
            ]
        else:
            cmd = [sys.executable, "-m", "genlab", "train", *args, *common]
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
        run = RunDir(out)
        if not run.exists():
            return float("nan"), f"failed to start: {(r.stderr or r.stdout)[-300:]}"
        rows = [x for x in run.read_metrics() if x.kind == "train"][1:]
        speed = statistics.median(x.images_per_s for x in rows) if rows else float("nan")
        return speed, str(run.status()) + (f" ({run.info().error})" if run.info().error else "")


def fid_seconds(device: str, n: int) -> float:
    from genlab.metrics.fid import FID
    from genlab.models import VAE, VAEConfig

    fid = FID(device=device)
    fid.stats_of_dataset("emoji", "train", 64, n, use_cache=False)  # warm-up: weights, data
    model = VAE(VAEConfig(image_size=64)).to(fid.features.device)
    if fid.features.device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    fid.stats_of_model(model, n)
    fid.stats_of_dataset("emoji", "train", 64, n, use_cache=False)
    if fid.features.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=None, help="training steps per measurement")
    p.add_argument("--quick", action="store_true", help="defaults only, fewer steps, no compile (a CPU smoke run)")
    p.add_argument("--no-tests", action="store_true", help="skip the CUDA-marked tests")
    p.add_argument("--json", default=None, help="also write the figures here")
    a = p.parse_args()
    cuda = a.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print("no CUDA GPU here: run with --device cpu for the CPU table")
        return 2
    gpus = torch.cuda.device_count() if cuda else 1
    procs = sorted({1, gpus if cuda else 2})
    steps = a.steps or (30 if a.quick else 120 if cuda else 60)
    name = torch.cuda.get_device_name(0) if cuda else f"{platform.processor() or platform.machine()} CPU"
    print(f"# gpu_check: {name} x{gpus if cuda else 1}, torch {torch.__version__}, {steps} steps per figure\n")

    if cuda and not a.no_tests:
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests"], cwd=ROOT)
        print(f"\nCUDA tests: {'passed' if r.returncode == 0 else 'FAILED'}\n")

    settings = dict(list(SETTINGS.items())[::2]) if a.quick else SETTINGS
    compiles = [False] if a.quick else [False, True]
    results = []
    print("| setting | processes | compile | images/s | per process | scaling | status |")
    print("|---|---|---|---|---|---|---|")
    for label, args in settings.items():
        base = None
        for n in procs:
            for c in compiles:
                if c and (n > 1 or "default" not in label):
                    continue  # compile is measured on one process at the default widths (it costs ~1 min each)
                speed, status = train_speed(args, steps, a.device, n, c)
                if n == 1 and not c:
                    base = speed
                scaling = f"{speed / (n * base):.0%}" if base and n > 1 else "-"
                results.append(
                    {"setting": label, "processes": n, "compile": c, "images_per_s": speed, "status": status}
                )
                print(
                    f"| {label} | {n} | {'on' if c else 'off'} | {speed:.0f} | {speed / n:.0f} | {scaling} "
                    f"| {status} |",
                    flush=True,
                )
    k = 1000 if not a.quick else 200
    secs = fid_seconds(a.device, k)
    print(f"\nFID@{k} (samples of a 64x64 VAE vs {k} emoji train images, statistics of both): {secs:.1f} s")
    if a.json:
        Path(a.json).write_text(
            json.dumps({"device": name, "steps": steps, "train": results, f"fid_at_{k}_seconds": secs}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
