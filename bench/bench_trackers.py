"""What logging to trackers costs a run: the same run with no tracker, then with each one, then all three.

    python bench/bench_trackers.py --steps 300 --repeats 2

Each run trains in this process (one at a time), on the CPU, with a VAE on MNIST 32×32 (the shipped
recipe's model), a row every 10 steps and an evaluation with its grids every 50. Printed per setting: the
run's wall time (trackers started and closed included) and the training images/s its rows report.
W&B is offline (no login) and trackio writes a throwaway store.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TRACKIO_DIR", tempfile.mkdtemp(prefix="bench-trackio-"))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

from genlab.runs.config import TrainConfig  # noqa: E402
from genlab.runs.rundir import RunDir  # noqa: E402
from genlab.runs.trainer import Trainer  # noqa: E402

SETTINGS = ["", "tensorboard", "wandb", "trackio", "tensorboard,wandb,trackio"]


def one(log: str, steps: int, folder: Path) -> tuple[float, float]:
    cfg = TrainConfig(
        model="vae",
        dataset="mnist",
        image_size=32,
        max_steps=steps,
        batch_size=64,
        log_every=10,
        eval_every=50,
        eval_batches=4,
        device="cpu",
        log=log,
    )
    t = time.perf_counter()
    assert Trainer(cfg, folder).fit() == "finished"
    wall = time.perf_counter() - t
    speeds = [r.images_per_s for r in RunDir(folder).read_metrics() if r.kind == "train"][1:]  # the first warms up
    return wall, statistics.median(speeds)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-trackers-"))
    results: dict[str, list[tuple[float, float]]] = {s: [] for s in SETTINGS}
    for r in range(args.repeats):  # interleaved, so that a slow minute of the machine hits every setting
        for s in SETTINGS:
            results[s].append(one(s, args.steps, root / f"{s.replace(',', '+') or 'none'}-{r}"))
    print(f"| --log | wall s ({args.steps} steps, median of {args.repeats}) | train images/s (median row) |")
    print("|---|---|---|")
    for s, rs in results.items():
        wall, speed = statistics.median(w for w, _ in rs), statistics.median(v for _, v in rs)
        print(f"| {s or '(none)'} | {wall:.1f} | {speed:.0f} |")


if __name__ == "__main__":
    main()
