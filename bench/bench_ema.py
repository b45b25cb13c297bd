"""The weights' moving average (``--ema``) against the training weights it averages, in one run directory:
test bits/dim of both on the same test images with the same dequantization / posterior noise, in float32.

    python bench/bench_ema.py runs/ship/realnvp-mnist-32 [--n 10000] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genlab import load_model  # noqa: E402
from genlab.catalog import model_entry  # noqa: E402
from genlab.data import load_dataset  # noqa: E402
from genlab.metrics.likelihood import nll_bound_bpd  # noqa: E402
from genlab.names import OPTIMIZER as OPTIM_NAME  # noqa: E402
from genlab.runs.checkpoint import TRAIN_PREFIX  # noqa: E402
from genlab.runs.rundir import RunDir  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--n", type=int, default=10000, help="test images")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run = RunDir(args.run)
    tensors = load_file(str(run.checkpoint / OPTIM_NAME))
    train = {k[len(TRAIN_PREFIX) :]: v for k, v in tensors.items() if k.startswith(TRAIN_PREFIX)}
    if not train:
        raise SystemExit(f"{args.run}: its checkpoint has no moving average (trained without --ema)")
    averaged = load_model(args.run)
    trained = load_model(args.run)
    trained.load_state_dict(train, strict=True)
    x = load_dataset(model_entry(args.run).dataset, averaged.config.image_size).test[: args.n]  # uint8
    step = run.read_metrics()[-1].step
    print(f"{args.run} at step {step}, ema {run.config().ema}, {len(x)} test images, {torch.get_num_threads()} threads")
    print("| weights | test bits/dim | seconds |\n|---|---|---|")
    for name, m in (("training weights", trained), ("moving average", averaged)):
        t = time.perf_counter()
        bpd = nll_bound_bpd(m, x, k=1, batch_size=200, seed=0)  # the same dequantization noise for both
        print(f"| {name} | {bpd:.4f} | {time.perf_counter() - t:.0f} |")


if __name__ == "__main__":
    main()
